"""The NAT companion inside a real NAT 1.9.0 with two gunicorn workers, reporting through Redis to a real dashboard.

NAT's own ``/monitor/users`` answers from whichever worker takes the poll; the companion in each
worker reports to a Redis stream and the dashboard's producer merges the workers: every poll shows
every user and every request. A worker SIGKILLed: its share ends after three of its intervals and
the figures stay steady. A producer SIGKILLed with reports read but not acknowledged: the standby
takes them over, and nothing is counted twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import redis
from usermetrics_nat.commands import COMMAND_FIELD, Command, Outcome, command_new
from usermetrics_nat.report import FIELD, Line, decode

from tests.support.daphne import Runmonitor, http_get, manage, server_env, serving, staff_session, wait_until
from tests.support.leftovers import children
from tests.support.nat_server import NatServer, ensure_nat_venv
from usermetrics.extras import Extras
from usermetrics.nat_stream import GROUP, NatStreamSource

pytestmark = [pytest.mark.nat, pytest.mark.redis]

TOKEN = "companion-test-token-" + "c" * 24
INTERVAL = 0.5  # the companions' and the producer's
USERS, REQUESTS = 20, 3
WAIT = 30.0  # the bound on every wait for a process to reach a state (a loaded 2-core machine)


def workers_of(nat: NatServer) -> list[int]:
    """The gunicorn worker pids of ``nat serve`` (it is gunicorn's master: they are its children)."""
    assert nat.proc is not None
    return children(nat.proc.pid)


def call(nat: NatServer, user: str, message: str = "hi", *, path: str = "/generate") -> None:
    """One request of ``user`` (its ``nat-session`` cookie names it), on a connection of its own."""
    request = urllib.request.Request(
        nat.url + path,
        data=json.dumps({"message": message}).encode(),
        headers={"Content-Type": "application/json", "Cookie": f"nat-session={user}"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        response.read()  # a streamed answer ends with its last event


def nat_user_id(cookie: str) -> str:
    """The user id NAT 1.9.0 gives the ``nat-session`` cookie ``cookie`` (``UserInfo._from_session_cookie``)."""
    return str(uuid.uuid5(uuid.uuid5(uuid.NAMESPACE_DNS, "nemo-agent-toolkit"), cookie))


def figures(base: str) -> tuple[int, int] | None:
    """(users, requests) of the dashboard's ``/monitor/users``, NAT's own shape (None: no 200 yet)."""
    code, body = http_get(base + "/monitor/users", TOKEN)
    if code != 200:
        return None
    doc = json.loads(body)
    return len(doc["users"]), sum(u["requests"]["total_requests"] for u in doc["users"])


def stream_truth(store: redis.Redis, stream: str) -> dict[str, dict[str, int]]:
    """Each worker's last state read straight from the stream: worker key -> user -> requests."""
    state: dict[str, dict[str, int]] = {}
    for _, fields in store.xrange(stream):
        header, lines = decode(fields[FIELD])
        users = state.setdefault(header.worker.key, {})
        if header.full:
            users.clear()
        for gone in header.gone:
            users.pop(gone[1], None)
        for line in map(Line.model_validate_json, lines):
            users[line.u.user_id] = line.u.requests.total_requests
    return state


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[tuple[NatServer, str, redis.Redis]]:
    """A NAT server with two gunicorn workers and the companion, its stream of its own; removed after."""
    name = f"nat-{uuid.uuid4().hex[:8]}"
    companion = {
        "USERMETRICS_NAT_REDIS_URL": os.environ["REDIS_URL"],
        "USERMETRICS_NAT_DEPLOYMENT": name,
        "USERMETRICS_NAT_INTERVAL": str(INTERVAL),
    }
    nat = NatServer(ensure_nat_venv(), tmp_path, name=name, workers=2, companion=companion)
    store = redis.Redis.from_url(os.environ["REDIS_URL"])
    nat.start()
    try:
        nat.wait_ready()
        wait_until(lambda: len(workers_of(nat)) == 2, what="two gunicorn workers", deadline=WAIT)
        yield nat, name, store
    finally:
        nat.stop()
        # The reports' stream, and the commands' stream and results of the tests that act.
        for key in store.scan_iter(match=f"usermetrics:nat:{name}*"):
            store.delete(key)
        store.close()


def dashboard_env(tmp_path: Path, name: str, **extra: str) -> dict[str, str]:
    """The dashboard reading the deployment's companion stream as its one source."""
    return server_env(
        tmp_path,
        NAT_SOURCES=f"{name}={os.environ['REDIS_URL']}",
        USERMETRICS_API_TOKENS=TOKEN,
        USERMETRICS_REFRESH_INTERVAL=str(INTERVAL),
        **extra,
    )


def test_companion_every_poll_shows_every_user_and_request_and_a_killed_worker_settles(deployment, tmp_path):
    nat, name, store = deployment
    for user in range(USERS):
        for _ in range(REQUESTS):
            call(nat, f"user-{user:02d}")
    env = dashboard_env(tmp_path, name)
    manage(env, "migrate", "--noinput", "-v", "0")
    with serving(env, tmp_path / "daphne.log") as face:
        every = (USERS, USERS * REQUESTS)
        wait_until(lambda: figures(face.base) == every, what="every user and request", deadline=WAIT)
        # Every poll the same: no worker's view alternating with the other's, no counter reset.
        assert [figures(face.base) for _ in range(10)] == [every] * 10
        truth = stream_truth(store, f"usermetrics:nat:{name}")
        assert len(truth) == 2 and sum(sum(u.values()) for u in truth.values()) == USERS * REQUESTS

        # One worker SIGKILLed (gunicorn starts another, with no users): its share ends after three
        # intervals. Users that ran on the other one stay, with every request (the ended share's too);
        # users that ran only on the killed one leave, as if NAT had evicted them.
        # The worker with users of its own is killed, so that some users leave (gunicorn spreads the
        # connections unevenly: most often both workers have some).
        (key_a, users_a), (key_b, users_b) = truth.items()
        own_a, own_b = len(set(users_a) - set(users_b)), len(set(users_b) - set(users_a))
        victim_key, survivor = (key_a, users_b) if own_a >= own_b else (key_b, users_a)
        killed = next(pid for pid in workers_of(nat) if f":{pid}:" in victim_key)
        os.kill(killed, signal.SIGKILL)
        expected = (len(survivor), sum(sum(u.get(uid, 0) for u in truth.values()) for uid in survivor))
        wait_until(lambda: figures(face.base) == expected, what=f"the figures to settle at {expected}", deadline=WAIT)
        assert [figures(face.base) for _ in range(10)] == [expected] * 10

        def workers() -> list[dict[str, object]]:
            return json.loads(http_get(face.base + "/api/sources", TOKEN)[1])["sources"][0]["workers"]

        wait_until(lambda: any(w["pid"] == killed and w["state"] == "ended" for w in workers()),
                   what=f"worker {killed} listed as ended", deadline=WAIT)  # fmt: skip
        assert "Traceback" not in face.log(), face.log()[-3000:]


def test_companion_a_standby_producer_takes_over_pending_reports_counting_nothing_twice(deployment, tmp_path):
    nat, name, store = deployment
    prefix = f"umcomp-{uuid.uuid4().hex[:8]}"
    env = dashboard_env(tmp_path, name, REDIS_URL=os.environ["REDIS_URL"], USERMETRICS_REDIS_PREFIX=prefix)
    manage(env, "migrate", "--noinput", "-v", "0")
    leader = Runmonitor(env, tmp_path / "leader.log")
    standby = Runmonitor(env, tmp_path / "standby.log")
    face_env = {**env, "USERMETRICS_PRODUCER": "external"}
    try:
        leader.start()
        for user in range(5):
            call(nat, f"user-{user}")
        with serving(face_env, tmp_path / "face.log") as face:
            wait_until(lambda: figures(face.base) == (5, 5), what="the first users", deadline=WAIT)
            standby.start()
            # Freeze the leader, let new reports arrive, and read them as the leader would: they
            # are pending under its name when it is SIGKILLed.
            assert leader.proc is not None
            os.kill(leader.proc.pid, signal.SIGSTOP)
            for user in range(5):
                call(nat, f"user-{user}")
                call(nat, f"late-{user}")
            stream = f"usermetrics:nat:{name}"
            consumer = f"{os.uname().nodename}:{leader.proc.pid}"
            wait_until(
                lambda: (
                    len(stream_truth(store, stream)) == 2
                    and sum(sum(u.values()) for u in stream_truth(store, stream).values()) == 15
                ),
                what="the companions to report the new requests",
                deadline=WAIT,
            )
            taken = store.xreadgroup(GROUP, consumer, {stream: ">"})
            assert taken and taken[0][1], "no report was left for the leader to hold"
            leader.kill()
            assert store.xpending(stream, GROUP)["pending"] >= 1
            wait_until(lambda: figures(face.base) == (10, 15), what="the standby's figures", deadline=WAIT)
            assert [figures(face.base) for _ in range(5)] == [(10, 15)] * 5  # each request once
            wait_until(lambda: store.xpending(stream, GROUP)["pending"] == 0, what="nothing pending", deadline=WAIT)
    finally:
        if leader.proc is not None:
            leader.kill()
        standby.stop()
        for key in store.scan_iter(match=f"{prefix}*"):
            store.delete(key)


def test_companion_without_redis_nat_keeps_serving(tmp_path: Path):
    # Redis unreachable from the start: requests are served as before; the companion says so once.
    companion = {"USERMETRICS_NAT_REDIS_URL": "redis://127.0.0.1:1/0", "USERMETRICS_NAT_INTERVAL": "0.2"}
    nat = NatServer(ensure_nat_venv(), tmp_path, name="nat-no-redis", workers=2, companion=companion)
    nat.start()
    try:
        nat.wait_ready()
        for user in range(5):
            call(nat, f"user-{user}")
        # NAT's own endpoint answers from one of its two workers, which may hold none of the five users
        # (all five requests can land on the other): every answer a 200, and some answer lists users.
        answers = [http_get(nat.url + "/monitor/users") for _ in range(20)]
        assert {code for code, _ in answers} == {200}
        assert any(json.loads(body)["users"] for _, body in answers)
        wait_until(lambda: "cannot report to Redis" in nat.log_tail(200), what="the companion's warning", deadline=WAIT)
        assert sum(line.count("cannot report to Redis") for line in nat.log_tail(400).splitlines()) <= 2  # once each
    finally:
        nat.stop()


LLM_STEPS = "steps:llm:model-a:100:20,llm:model-b:7:3:2:1,tool:search"


def test_companion_counts_each_users_llm_calls_and_tokens_per_model_from_nats_event_stream(deployment):
    """A workflow whose LLM client reports its calls on NAT's event stream, served by two workers: each
    user's calls and tokens per model exact, added up over the workers that served it."""
    nat, name, _ = deployment
    cookies = {f"spender-{k}": k + 1 for k in range(6)}  # cookie -> requests, each request the same calls
    for cookie, requests in cookies.items():
        for _ in range(requests):
            call(nat, cookie, LLM_STEPS)
    call(nat, "quiet", "hi")  # a request that calls no LLM
    call(nat, "streamer", LLM_STEPS, path="/generate/stream")  # the streaming route runs the workflow too
    users = {nat_user_id(cookie): n for cookie, n in {**cookies, "streamer": 1}.items()}
    quiet = nat_user_id("quiet")
    reader = NatStreamSource("nat", os.environ["REDIS_URL"], deployment=name, interval=INTERVAL)

    def extras() -> dict[str, Extras]:
        async def read() -> dict[str, Extras]:
            try:
                await reader.fetch()
                return dict(reader.extras())
            finally:
                await reader.aclose()

        return asyncio.run(read())

    def all_counted() -> bool:
        seen = extras()
        return all(user in seen and seen[user].tool_calls == n for user, n in users.items()) and quiet in seen

    wait_until(all_counted, what="every user's LLM and tool calls", deadline=WAIT)
    seen = extras()
    for user, n in users.items():
        assert dict(seen[user].llm) == {
            "model-a": (n, 100 * n, 20 * n, 0, 0, 120 * n),
            "model-b": (n, 7 * n, 3 * n, 2 * n, 1 * n, 11 * n),
        }, user
        doc = seen[user].as_dict()["llm"]
        assert (doc["prompt_tokens"], doc["completion_tokens"], doc["calls"]) == (107 * n, 23 * n, 2 * n)
    assert seen[quiet].llm == () and seen[quiet].tool_calls == 0


# model-b's price per million tokens (prompt, completion, cached); model-a has none.
PRICE_B = (2.5, 10.0, 1.25)


def test_companion_costs_each_user_from_the_dashboards_price_table(deployment, tmp_path):
    """The same LLM calls seen by a dashboard whose USERMETRICS_PRICES prices model-b only: each user's cost of
    model-b exact by the docs' formula, model-a "no price" (null), the total incomplete; /metrics per model."""
    nat, name, _ = deployment
    cookies = {f"payer-{k}": k + 1 for k in range(3)}
    for cookie, requests in cookies.items():
        for _ in range(requests):
            call(nat, cookie, LLM_STEPS)
    prompt, completion, cached = PRICE_B
    prices = {"model-b": {"prompt": prompt, "completion": completion, "cached": cached}}
    env = dashboard_env(tmp_path, name, USERMETRICS_PRICES=json.dumps(prices), USERMETRICS_METRICS_TOKENS=TOKEN)
    manage(env, "migrate", "--noinput", "-v", "0")
    with serving(env, tmp_path / "daphne.log") as face:

        def user_doc(cookie: str) -> dict:
            code, body = http_get(f"{face.base}/api/users/{nat_user_id(cookie)}", TOKEN)
            return json.loads(body) if code == 200 else {}

        def counted() -> bool:
            return all((user_doc(c).get("llm") or {}).get("calls") == 2 * n for c, n in cookies.items())

        wait_until(counted, what="every user's LLM calls on the dashboard", deadline=WAIT)
        whole = 0.0
        for cookie, n in cookies.items():
            doc = user_doc(cookie)
            # model-b per request: 7 prompt tokens (2 of them cached), 3 completion (1 of them reasoning).
            b_prompt, b_completion, b_cached = 7 * n, 3 * n, 2 * n
            expected = ((b_prompt - b_cached) * prompt + b_cached * cached + b_completion * completion) / 1_000_000
            whole += expected
            assert doc["llm"]["by_model"]["model-b"]["cached_tokens"] == b_cached
            assert doc["cost"]["by_model"] == {"model-a": None, "model-b": pytest.approx(expected, rel=1e-12)}
            assert doc["cost"]["total"] == pytest.approx(expected, rel=1e-12)
            assert (doc["cost"]["complete"], doc["cost"]["unpriced"], doc["cost"]["currency"]) == (
                False, ["model-a"], "USD"
            )  # fmt: skip
        metrics = http_get(face.base + "/metrics", TOKEN)[1].decode()
        costs = [line for line in metrics.splitlines() if line.startswith("usermetrics_llm_cost{")]
        assert len(costs) == 1 and 'model="model-b"' in costs[0], costs
        assert float(costs[0].rsplit(" ", 1)[1]) == pytest.approx(whole, rel=1e-9)
        assert "Traceback" not in face.log(), face.log()[-3000:]


def command(store: redis.Redis, stream: str, sent: Command, workers: int) -> dict[str, Outcome]:
    """Add ``sent`` to the deployment's command stream; each worker's answer (all ``workers`` of them)."""
    store.xadd(f"{stream}:commands", {COMMAND_FIELD: sent.model_dump_json()})
    key = f"{stream}:results:{sent.id}"
    wait_until(lambda: store.hlen(key) == workers, what=f"{workers} workers' answers to {sent.action}", deadline=WAIT)
    return {worker.decode(): Outcome.model_validate_json(raw) for worker, raw in store.hgetall(key).items()}


def status(nat: NatServer, user: str, message: str = "hi") -> tuple[int, dict[str, str], str]:
    """One request of ``user``: its status, headers and body, whatever the status."""
    request = urllib.request.Request(
        nat.url + "/generate",
        data=json.dumps({"message": message}).encode(),
        headers={"Content-Type": "application/json", "Cookie": f"nat-session={user}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode()


def test_companion_holds_and_evicts_a_user_in_every_worker_on_command(deployment, tmp_path):
    """Hold: the held user's requests get 429 from every worker, another user's do not; released, they work.
    Evict: refused while a request of the user runs; done when none does, and NAT no longer lists the user."""
    nat, name, store = deployment
    stream, workers = f"usermetrics:nat:{name}", len(workers_of(nat))
    for _ in range(4):  # connections of their own: most often both workers build a workflow for each
        call(nat, "held-user")
        call(nat, "other-user")
    until = datetime.now(UTC) + timedelta(minutes=10)
    hold = command_new(
        "hold", nat_user_id("held-user"), expires_in=timedelta(seconds=30), until=until, by="ops@example.com",
        reason="runaway",
    )  # fmt: skip
    assert {o.status for o in command(store, stream, hold, workers).values()} == {"done"}
    for _ in range(6):  # whichever worker takes it
        code, headers, body = status(nat, "held-user")
        assert code == 429 and 590 <= int(headers["retry-after"]) <= 600, (code, body)
        assert "ops@example.com" in body and "runaway" in body
        assert status(nat, "other-user")[0] == 200
    release = command_new("release", nat_user_id("held-user"), expires_in=timedelta(seconds=30))
    assert {o.status for o in command(store, stream, release, workers).values()} == {"done"}
    assert [status(nat, "held-user")[0] for _ in range(6)] == [200] * 6

    # A request of the user in flight: the worker that runs it refuses, saying how many run.
    release_file = tmp_path / "release"
    busy = threading.Thread(target=call, args=(nat, "held-user", f"hold:{release_file}"))
    busy.start()
    try:
        wait_until(lambda: any(u["session"]["ref_count"] for u in nat_users(nat)), what="a request in flight",
                   deadline=WAIT)  # fmt: skip
        evict = command_new("evict", nat_user_id("held-user"), expires_in=timedelta(seconds=30))
        answers = command(store, stream, evict, workers)
        refused = [o for o in answers.values() if o.status == "refused"]
        assert len(refused) == 1 and refused[0].in_flight == 1 and "1 request(s)" in refused[0].message
    finally:
        release_file.touch()
        busy.join(timeout=WAIT)
    # Nothing in flight: evicted wherever it ran; every worker's NAT endpoint no longer lists the user.
    evict = command_new("evict", nat_user_id("held-user"), expires_in=timedelta(seconds=30))
    answers = command(store, stream, evict, workers)
    assert {o.status for o in answers.values()} <= {"done", "absent"} and "done" in {o.status for o in answers.values()}
    for _ in range(10):
        assert nat_user_id("held-user") not in {u["user_id"] for u in nat_users(nat)}
    # The same command again (read twice after a restart, say): the same answers, nothing done twice.
    store.delete(f"{stream}:results:{evict.id}")
    assert command(store, stream, evict, workers) == answers
    # An expired command is answered so, and not carried out.
    late = Command(action="hold", user_id=nat_user_id("other-user"), until=datetime.now(UTC) + timedelta(minutes=1),
                   expires_at=datetime.now(UTC) - timedelta(seconds=1))  # fmt: skip
    assert {o.status for o in command(store, stream, late, workers).values()} == {"expired"}
    assert status(nat, "other-user")[0] == 200


def nat_users(nat: NatServer) -> list[dict[str, object]]:
    """NAT's own ``/monitor/users`` (from whichever worker takes the connection)."""
    with urllib.request.urlopen(nat.url + "/monitor/users", timeout=30) as response:
        return json.loads(response.read())["users"]


def actor_session(env: dict[str, str], username: str, *, permitted: bool) -> str:
    """A logged-in staff session (``sessionid``) of ``username``: an operator (acts on users and reads the admin's
    list of actions) when ``permitted``, else staff without those permissions."""
    return staff_session(env, username, permissions=("act_on_users", "view_useraction") if permitted else ())


def page(base: str, path: str, session: str) -> tuple[str, str]:
    """A dashboard page as ``session`` sees it, and the CSRF token Django set with it ("" when none)."""
    request = urllib.request.Request(base + path, headers={"Cookie": f"sessionid={session}"})
    with urllib.request.urlopen(request, timeout=30) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
        html = response.read().decode()
    token = next((c.split(";")[0].partition("=")[2] for c in cookies if c.startswith("csrftoken=")), "")
    return html, token


def act(base: str, session: str, user_id: str, action: str, **body: object) -> tuple[int, dict[str, object]]:
    """``POST /api/users/<id>/actions/<action>`` from ``session`` with its CSRF token: the status and the JSON body."""
    _, token = page(base, f"/users/{user_id}/", session)
    assert token, "the user page set no CSRF token"
    request = urllib.request.Request(
        f"{base}/api/users/{user_id}/actions/{action}",
        data=json.dumps(body).encode(),
        headers={
            "Content-Type": "application/json",
            "Cookie": f"sessionid={session}; csrftoken={token}",
            "X-CSRFToken": token,
        },
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def test_companion_dashboard_evicts_and_holds_a_user_with_permission_and_logs_it(deployment, tmp_path):
    """Through the dashboard's API: evict refused without the permission, done with it (and logged, and NAT's
    every worker no longer lists the user); refused up front while a request runs (nothing sent); a hold makes NAT
    answer 429, a release 200."""
    nat, name, store = deployment
    for _ in range(4):  # connections of their own: most often both workers build a workflow for each
        call(nat, "evict-me")
        call(nat, "held-user")
        call(nat, "other-user")
    evictee, held = nat_user_id("evict-me"), nat_user_id("held-user")
    env = dashboard_env(tmp_path, name, USERMETRICS_ACTIONS_TIMEOUT="20")
    manage(env, "migrate", "--noinput", "-v", "0")
    bystander = actor_session(env, "bystander", permitted=False)
    operator = actor_session(env, "operator", permitted=True)
    with serving(env, tmp_path / "daphne.log") as face:

        def reported(user_id: str) -> bool:
            return http_get(f"{face.base}/api/users/{user_id}", TOKEN)[0] == 200

        def in_flight(user_id: str) -> int | None:
            code, body = http_get(f"{face.base}/api/users/{user_id}", TOKEN)[:2]
            return json.loads(body)["session"]["ref_count"] if code == 200 else None

        def workers_ok() -> int:
            sources = json.loads(http_get(face.base + "/api/sources", TOKEN)[1])["sources"]
            return sum(w["state"] == "ok" for w in sources[0]["workers"] or [])

        wait_until(lambda: reported(evictee) and reported(held) and workers_ok() == 2, what="the users and two workers",
                   deadline=WAIT)  # fmt: skip

        # Evict: a staff member without the permission is refused; one with it evicts, everywhere.
        code, doc = act(face.base, bystander, evictee, "evict", reason="try")
        assert code == 403 and "Can evict, hold and release users" in doc["detail"]
        code, doc = act(face.base, operator, evictee, "evict", reason="leaking memory")
        assert code == 200 and doc["outcome"] == "done", doc
        answers = doc["results"]
        assert len(answers) == 2 and {a["status"] for a in answers.values()} <= {"done", "absent"}
        assert "done" in {a["status"] for a in answers.values()}
        for _ in range(10):  # each poll answers from whichever worker takes it
            assert evictee not in {u["user_id"] for u in nat_users(nat)}
        # Logged: the admin's list of actions (the evicted user's own page is gone with it).
        log_html, _ = page(face.base, "/admin/usermetrics/useraction/?q=" + evictee, operator)
        assert "leaking memory" in log_html and "operator" in log_html

        # A user whose one request is in flight: refused at once, saying how many run, and no worker is asked
        # (all or none: a user idle on one worker and busy on another is never half-evicted).
        release_file, busy_user = tmp_path / "release", nat_user_id("busy-user")
        busy = threading.Thread(target=call, args=(nat, "busy-user", f"hold:{release_file}"))
        busy.start()
        try:
            wait_until(lambda: in_flight(busy_user) == 1, what="the dashboard showing the busy request", deadline=WAIT)
            sent = store.xinfo_stream(f"usermetrics:nat:{name}:commands")["entries-added"]  # taken back ones too
            code, doc = act(face.base, operator, busy_user, "evict")
            assert code == 409 and doc["outcome"] == "refused" and doc["words"] == "refused: 1 request running", doc
            assert list(doc["results"]) == ["dashboard"] and doc["command_id"] == "", doc
            assert store.xinfo_stream(f"usermetrics:nat:{name}:commands")["entries-added"] == sent
        finally:
            release_file.touch()
            busy.join(timeout=WAIT)

        # Hold: NAT answers the held user 429 from every worker, another user 200; released early, 200 again.
        code, doc = act(face.base, operator, held, "hold", seconds=600, reason="runaway")
        assert code == 200 and doc["outcome"] == "done", doc
        for _ in range(6):  # whichever worker takes it
            code, headers, body = status(nat, "held-user")
            assert code == 429 and 590 <= int(headers["retry-after"]) <= 600, (code, body)
            assert "operator" in body and "runaway" in body
            assert status(nat, "other-user")[0] == 200
        html, _ = page(face.base, f"/users/{held}/", operator)
        assert "by <strong>operator</strong>: runaway." in html
        code, doc = act(face.base, operator, held, "release", reason="calm again")
        assert code == 200 and doc["outcome"] == "done", doc
        assert [status(nat, "held-user")[0] for _ in range(6)] == [200] * 6
        html, _ = page(face.base, f"/users/{held}/", operator)
        assert "Not held" in html and html.count("<tr data-outcome=") == 2  # the release, the hold
        assert "Traceback" not in face.log(), face.log()[-3000:]
