"""The actions service: the outcome over every worker's answer, a silent deployment, the running hold."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from asgiref.sync import sync_to_async
from usermetrics_nat.commands import command_new

from tests.support.fake_workers import workers_answering
from usermetrics import services
from usermetrics.services.commands import Target, command_send, outcome_of, outcome_words


def answers(*statuses: str, in_flight: int = 0) -> dict[str, dict]:
    return {f"w{i}": {"status": s, "in_flight": in_flight if s == "refused" else 0} for i, s in enumerate(statuses)}


@pytest.mark.parametrize(
    ("statuses", "outcome"),
    [
        (("done", "done"), "done"),
        (("done", "absent"), "done"),
        (("absent", "absent"), "done"),  # nothing of the user anywhere: nothing left to do
        (("done", "no answer"), "partly"),
        (("done", "refused"), "partly"),
        (("refused", "absent"), "refused"),
        (("failed", "absent"), "failed"),
        (("expired", "no answer"), "failed"),
        (("absent", "no answer"), "no answer"),
        (("no answer", "no answer"), "no answer"),
        ((), "no answer"),
    ],
)
def test_services_actions_outcome_over_the_workers_answers(statuses, outcome):
    assert outcome_of(answers(*statuses)) == outcome


def test_services_actions_outcome_words_count_the_running_requests_and_the_silent():
    assert outcome_words("refused", answers("refused", "absent", in_flight=1)) == "refused: 1 request running"
    assert outcome_words("partly", answers("done", "refused", "no answer", in_flight=3)) == (
        "partly: 3 requests running, 1 worker did not answer"
    )
    assert outcome_words("no answer", answers("no answer", "no answer")) == "no answer"


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_services_actions_no_worker_answers_each_is_no_answer_within_the_timeout(acting):
    done = await services.user_action_do(user_id="bob", action="evict", by_user=None, by_label="test")
    assert done.outcome == "no answer"
    assert {w: r["status"] for w, r in done.results.items()} == {"nat-1:101": "no answer", "nat-1:102": "no answer"}
    # The command expired with the wait: a worker that reads it now does not carry it out.
    async with workers_answering(acting, "nat-1:101"):
        late = await services.user_action_do(user_id="bob", action="release", by_user=None, by_label="test")
    assert late.results["nat-1:101"]["status"] == "absent"  # no hold to release; the expired eviction was not done


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_services_actions_the_running_hold_is_the_latest_taken_and_not_released(acting, acting_staff):
    hold_get = sync_to_async(services.user_hold_get)
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        first = await services.user_action_do(
            user_id="ada", action="hold", by_user=acting_staff, by_label="staff", reason="one", hold_seconds=60
        )
        second = await services.user_action_do(
            user_id="ada", action="hold", by_user=acting_staff, by_label="staff", reason="two", hold_seconds=600
        )
        assert (await hold_get(user_id="ada")).pk == second.pk != first.pk
        assert await hold_get(user_id="bob") is None
    async with workers_answering(acting, "nat-1:101"):  # nat-1:102 silent: it still refuses ada
        partly = await services.user_action_do(user_id="ada", action="release", by_user=None, by_label="x")
    assert partly.outcome == "partly" and (await hold_get(user_id="ada")).pk == second.pk
    async with workers_answering(acting, "nat-1:101", "nat-1:102"):
        await services.user_action_do(user_id="ada", action="release", by_user=None, by_label="token:…abcd")
    assert await hold_get(user_id="ada") is None
    log = await sync_to_async(services.user_actions_list)(user_id="ada", limit=3)
    assert [a.action for a in log] == ["release", "release", "hold"]
    # A hold no worker took (none answered) is not running.
    await services.user_action_do(user_id="ada", action="hold", by_user=None, by_label="x", hold_seconds=60)
    assert await hold_get(user_id="ada") is None


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_services_actions_refuse_what_cannot_be_asked_before_sending(acting):
    with pytest.raises(services.ActionRefused, match="Unknown action"):
        await services.user_action_do(user_id="ada", action="reboot", by_user=None, by_label="x")
    with pytest.raises(services.ActionRefused, match="too long"):
        await services.user_action_do(user_id="ada", action="evict", by_user=None, by_label="x", reason="r" * 1001)
    with pytest.raises(services.ActionRefused, match="A hold needs seconds"):
        await services.user_action_do(user_id="ada", action="hold", by_user=None, by_label="x", hold_seconds=0)


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_services_actions_a_hold_no_worker_took_is_not_taken_up_by_a_worker_that_starts_later(acting):
    # Every worker silent: the hold is "no answer", and the page says the user is not held.
    nobody = await services.user_action_do(user_id="ada", action="hold", by_user=None, by_label="x", hold_seconds=600)
    assert nobody.outcome == "no answer" and await sync_to_async(services.user_hold_get)(user_id="ada") is None
    # A worker (re)started by gunicorn reads the stream from its start: it must not hold the user behind the page.
    async with workers_answering(acting, "nat-1:101", "nat-1:102") as holds:
        await services.user_action_do(user_id="bob", action="release", by_user=None, by_label="x")  # caught up
        assert all(h.get("ada") is None for h in holds.values())
    # A hold a worker took is taken up by one that starts later (a hold is state).
    async with workers_answering(acting, "nat-1:101"):
        taken = await services.user_action_do(
            user_id="ada", action="hold", by_user=None, by_label="x", hold_seconds=600
        )
    assert taken.outcome == "partly"
    async with workers_answering(acting, "nat-1:102") as holds:
        await services.user_action_do(user_id="bob", action="release", by_user=None, by_label="x")
        assert holds["nat-1:102"].get("ada") is not None


@pytest.mark.redis
async def test_services_commands_the_stream_keeps_no_command_older_than_the_longest_hold(redis):
    stream = f"{redis.test_prefix}:nat"
    await redis.xadd(f"{stream}:commands", {"c": b"{}"}, id="1-0")  # sent long ago (1970)
    url = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
    target = Target(source="nat", url=url, stream=stream, workers=())
    await command_send(target, command_new("evict", "ada", expires_in=timedelta(seconds=1)), wait=0.1)
    # The old one trimmed; ours taken back (no worker carried it out).
    assert [entry for entry, _ in await redis.xrange(f"{stream}:commands")] == []


@pytest.mark.redis
@pytest.mark.parametrize(("workers", "labels"), [(("w1", "w2"), {"w1", "w2"}), ((), {"nat"})])
async def test_services_commands_redis_unreachable_is_failed_with_the_error_even_with_no_worker_expected(
    workers, labels
):
    target = Target(source="nat", url="redis://127.0.0.1:1/0", stream="nowhere", workers=workers)
    answers = await command_send(target, command_new("evict", "ada", expires_in=timedelta(seconds=1)), wait=1.0)
    assert set(answers) == labels and outcome_of(answers) == "failed"
    assert all("cannot reach the companions' Redis: ConnectionError" in a["message"] for a in answers.values())


@pytest.mark.django_db(transaction=True)
@pytest.mark.redis
async def test_services_actions_workers_of_another_deployment_on_the_same_stream_do_not_act(acting):
    # The source reads only its deployment's reports from a shared stream; its commands are for those workers alone.
    async with (
        workers_answering(acting, "nat-1:101", "nat-1:102"),
        workers_answering(acting, "elsewhere:7", deployment="elsewhere") as elsewhere,
    ):
        done = await services.user_action_do(user_id="ada", action="hold", by_user=None, by_label="x", hold_seconds=60)
        assert elsewhere["elsewhere:7"].get("ada") is None
    assert set(done.results) == {"nat-1:101", "nat-1:102"} and done.outcome == "done"
