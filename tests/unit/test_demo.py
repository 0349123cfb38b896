"""Demo workload: deterministic plans and realistic effects on a session manager."""

from __future__ import annotations

from usermetrics.demo import DemoWorkload, demo_session_manager
from usermetrics.metrics import PerUserMetricsCollector
from usermetrics.runtime import SessionManager


def _plan(seed: int, ticks: int) -> list:
    workload = DemoWorkload(SessionManager(), users=40, seed=seed)
    return [workload.plan_tick() for _ in range(ticks)]


def test_demo_same_seed_same_plan():
    assert _plan(7, 60) == _plan(7, 60)
    assert _plan(7, 60) != _plan(8, 60)


def test_demo_plan_is_realistic():
    workload = DemoWorkload(SessionManager(), users=40, seed=1)
    plans = [req for _ in range(600) for req in workload.plan_tick()]
    users = {req.user_id for req in plans}
    assert len(workload.profiles) == 40 and len({p.user_id for p in workload.profiles}) == 40
    assert len(users) > 30  # nearly everyone shows up over ten minutes
    error_share = sum(req.fails for req in plans) / len(plans)
    assert 0.005 < error_share < 0.15  # a few per cent
    latencies = sorted(req.latency_ms for req in plans)
    assert latencies[len(latencies) // 10] < 200 < latencies[-len(latencies) // 10]  # varied
    assert any(req.latency_ms > 60_000 for req in plans)  # a few long in-flight requests
    assert {req.user_id for req in plans if req.leaks} == {p.user_id for p in workload.profiles if p.leaky}


async def test_demo_drives_a_session_manager():
    manager, workload = demo_session_manager(users=12, seed=3)
    workload.time_scale = 0.0  # requests finish at once, so the test does not wait on latencies
    for _ in range(200):
        workload.send_tick()
        await workload.drain()
    response = await PerUserMetricsCollector(manager).collect_all_metrics()
    assert response.total_active_users >= 6
    by_id = {u.user_id: u for u in response.users}
    assert sum(u.requests.error_count for u in response.users) > 0
    assert all(u.memory.per_user_functions_count >= 1 for u in response.users)
    leaky = [p.user_id for p in workload.profiles if p.leaky and p.user_id in by_id]
    assert leaky and max(by_id[u].memory.exit_stack_size for u in leaky) > 5  # the exit stack grows
    await manager.aclose()


def test_demo_plans_llm_calls_by_seed_without_changing_the_requests():
    plan = _plan(7, 60)
    calls = [call for ticks in plan for req in ticks for call in req.llm]
    assert calls and {model for model, *_ in calls} == {"demo-large", "demo-small"}
    assert all(cached <= prompt and reasoning <= completion for _, prompt, completion, cached, reasoning in calls)
    assert all(reasoning == 0 for model, *_, reasoning in calls if model == "demo-small")
    assert plan == _plan(7, 60)  # the same seed, the same LLM calls


async def test_demo_counts_its_llm_and_tool_calls_in_the_users_meters():
    manager, workload = demo_session_manager(users=12, seed=3)
    workload.time_scale = 0.0
    sent = []
    for _ in range(50):
        sent += workload.send_tick()
        await workload.drain()
    for user_id in {req.user_id for req in sent}:
        stats = manager.stats_of(user_id)
        if stats is None:  # evicted meanwhile
            continue
        assert stats.llm_calls == sum(n for n, *_ in stats.llm.values()) > 0
        for model, (_calls, prompt, completion, cached, reasoning, total) in stats.llm.items():
            assert model in ("demo-large", "demo-small") and total == prompt + completion
            assert cached <= prompt and reasoning <= completion
    await manager.aclose()
