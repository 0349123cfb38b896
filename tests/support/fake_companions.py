"""NAT companions without NAT for benchmarks (sync, a thread): workers' reports of many users into a Redis stream.

``FakeCompanions`` plays ``workers`` NAT worker processes of one deployment, with ``users`` users
spread over them. Every ``interval`` each worker moves a share of its users (``moving``: a request
more, a later activity, one more count in their latency histogram) and adds a report to the stream
as the real companion does (``usermetrics_nat.report``): the moved users, and every user each
``full_every`` reports. Each user's line is kept serialized and only the moved ones are written
again, so what a benchmark measures is the reader.
"""

from __future__ import annotations

import random
import threading
from datetime import UTC, datetime, timedelta

import redis
from usermetrics_nat.histogram import bucket_of
from usermetrics_nat.report import FIELD, VERSION, Header, ModelUsage, UserExtras, WorkerIdentity, encode, line_of

from usermetrics.metrics import PerUserResourceUsage

# The models of ``FakeCompanions(llm=True)``'s users: give the first a price, leave the second without one.
LLM_MODELS = ("gpt-4o-mini", "local-llama")


class FakeCompanions:
    """``workers`` companions of deployment ``deployment`` reporting ``users`` users to ``stream``."""

    def __init__(
        self,
        url: str,
        *,
        users: int,
        deployment: str,
        workers: int = 2,
        moving: float = 0.01,
        interval: float = 1.0,
        full_every: int = 15,
        seed: int = 0,
        saturated: int = 0,
        llm: bool = False,
    ) -> None:
        """Generate the users (``user-000000@example.com``...), user i on worker ``i % workers``.

        ``llm``: each request of a user also makes LLM calls (``LLM_MODELS``: user i calls the first model
        with i + 1 times the tokens, every third user the second, unpriced in the tests, as well).
        """
        self.redis = redis.Redis.from_url(url)
        self.deployment = deployment
        self.stream = f"usermetrics:nat:{deployment}"
        self.moving, self.interval, self.full_every = moving, interval, full_every
        self.rng = random.Random(seed)
        self.saturated = saturated
        self.llm = llm
        started = datetime.now(UTC).replace(microsecond=0)
        self.identities = [
            WorkerIdentity(host="fake", pid=1000 + n, started_at=started, nat_version="1.9.0", config="fake")
            for n in range(workers)
        ]
        self.seq = [0] * workers
        self.records: list[PerUserResourceUsage] = []
        self.latency: list[list[int]] = []
        for i in range(users):
            created = started - timedelta(hours=1)
            self.records.append(
                PerUserResourceUsage.model_validate(
                    {
                        "user_id": f"user-{i:06d}@example.com",
                        "session": {
                            "created_at": created,
                            "last_activity": created,
                            "ref_count": 0,
                            "is_active": False,
                        },
                        "requests": {
                            "total_requests": 1,
                            "active_requests": 0,
                            "avg_latency_ms": 120.0,
                            "error_count": 0,
                        },
                        "memory": {
                            "per_user_functions_count": 2,
                            "per_user_function_groups_count": 1,
                            "exit_stack_size": 3,
                        },
                    }
                )
            )
            self.latency.append([bucket_of(120.0), 1])
        self.lines = [self._line(i) for i in range(users)]
        self.workers = workers
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reports = 0

    def _line(self, i: int) -> bytes:
        # The first ``saturated`` users have requests waiting on their semaphore (8) now.
        queued = 2 if i < self.saturated else 0
        requests = self.latency[i][1]
        llm = []
        if self.llm:
            prompt, completion = 900 * (i + 1) * requests, 150 * (i + 1) * requests
            llm.append(ModelUsage(m=LLM_MODELS[0], calls=requests, prompt=prompt, completion=completion,
                                  total=prompt + completion))  # fmt: skip
            if i % 3 == 0:
                llm.append(ModelUsage(m=LLM_MODELS[1], calls=requests, prompt=400 * requests, total=400 * requests))
        extras = UserExtras(
            latency=[tuple(self.latency[i])],
            queued=queued,
            max_concurrency=8,
            run_ms=120.0 * requests,
            llm=llm,
            tool_calls=requests if self.llm else 0,
        )
        return line_of(0, self.records[i], extras)

    def _move(self, i: int, now: datetime) -> None:
        u = self.records[i]
        total = u.requests.total_requests + 1
        self.records[i] = u.model_copy(
            update={
                "session": u.session.model_copy(update={"last_activity": now}),
                "requests": u.requests.model_copy(update={"total_requests": total}),
            }
        )
        self.latency[i][1] += 1
        self.lines[i] = self._line(i)

    def report_all(self) -> None:
        """One report of every worker: its moved users, or all of them every ``full_every``."""
        now = datetime.now(UTC)
        count = int(len(self.records) * self.moving)
        moved = self.rng.sample(range(len(self.records)), count) if count else []
        for i in moved:
            self._move(i, now)
        for n, identity in enumerate(self.identities):
            self.seq[n] += 1
            full = self.seq[n] % self.full_every == 1
            mine = range(n, len(self.lines), self.workers) if full else [i for i in moved if i % self.workers == n]
            header = Header(
                v=VERSION,
                deployment=self.deployment,
                worker=identity,
                seq=self.seq[n],
                full=full,
                interval=self.interval,
                sent_at=now,
            )
            self.redis.xadd(self.stream, {FIELD: encode(header, [self.lines[i] for i in mine])}, maxlen=10_000)
            self.reports += 1

    def start(self) -> FakeCompanions:
        """Report every ``interval`` in a daemon thread."""

        def run() -> None:
            while not self._stop.is_set():
                self.report_all()
                self._stop.wait(self.interval)

        self._thread = threading.Thread(target=run, name="fake-companions", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop reporting and remove the stream."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        self.redis.delete(self.stream)
        self.redis.close()
