"""Built-in demo workload: seedable, realistic per-user traffic on a runtime SessionManager (async).

It is the embedded default's data source. Users arrive, work in bursts and go idle long enough
to be evicted, then come back as a new life; latencies vary per user; a few per cent of requests
fail; a couple of users hold long requests in flight ("stuck"), and a couple leak resources so
their exit stack keeps growing. Every decision comes from one ``random.Random(seed)``, so the same
seed gives the same plan, tick by tick.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta

from usermetrics_nat.meters import record_llm, record_tool

from usermetrics.runtime import PerUserBuilder, SessionManager

logger = logging.getLogger(__name__)

_FIRST = (
    "ada", "grace", "alan", "edsger", "barbara", "donald", "frances", "ken", "margaret", "dennis",
    "radia", "john", "sophie", "linus", "katherine", "tim", "hedy", "claude", "annie", "guido",
)  # fmt: skip
_LAST = (
    "lovelace", "hopper", "turing", "dijkstra", "liskov", "knuth", "allen", "thompson", "hamilton", "ritchie",
    "perlman", "backus", "wilson", "torvalds", "johnson", "berners-lee", "lamarr", "shannon", "easley", "van-rossum",
)  # fmt: skip
# The demo's LLMs (made-up names, and no price anywhere unless an operator sets one, docs/costs.md): the
# large one reasons, both read part of their prompts from a cache.
DEMO_MODELS = ("demo-large", "demo-small")


class DemoRequestFailed(RuntimeError):
    """The error a demo request raises on purpose, so the runtime counts it."""


@dataclass(frozen=True)
class UserProfile:
    """How one demo user behaves."""

    user_id: str
    rate: float  # requests per second while in a burst
    latency_ms: float  # mean latency
    error_rate: float
    burst_ticks: int  # mean length of a burst of activity
    idle_ticks: int  # mean length of a pause (long pauses get the user evicted)
    functions: int
    function_groups: int
    stuck: bool = False  # sometimes holds a request in flight for minutes
    leaky: bool = False  # every request leaves a resource on the exit stack


# One LLM call of a demo request: its model, then prompt, completion, cached and reasoning tokens.
LlmCall = tuple[str, int, int, int, int]


@dataclass(frozen=True)
class PlannedRequest:
    """One request the workload will send, and the LLM and tool calls it makes."""

    user_id: str
    latency_ms: float
    fails: bool
    leaks: bool
    llm: tuple[LlmCall, ...] = ()
    tools: int = 0


def make_profiles(users: int, rng: random.Random) -> list[UserProfile]:
    """Draw ``users`` profiles; the first two are stuck-prone, the next two leak."""
    profiles = []
    for i in range(users):
        name = f"{_FIRST[i % len(_FIRST)]}.{_LAST[(i * 7 + i // len(_FIRST)) % len(_LAST)]}"
        if i >= len(_FIRST):
            name = f"{name}{i // len(_FIRST) + 1}"
        profiles.append(
            UserProfile(
                user_id=f"{name}@example.com",
                rate=rng.choice((0.2, 0.5, 1.0, 2.0)),
                latency_ms=rng.choice((40.0, 120.0, 350.0, 900.0, 2500.0)),
                error_rate=rng.choice((0.0, 0.01, 0.02, 0.05, 0.15)),
                burst_ticks=rng.randint(20, 120),
                idle_ticks=rng.randint(30, 400),
                functions=rng.randint(1, 4),
                function_groups=rng.randint(0, 2),
                stuck=i in (0, 1),
                leaky=i in (2, 3),
            )
        )
    return profiles


def _extra_profile(user_id: str, rng: random.Random) -> UserProfile:
    """A busy, well-behaved profile for an extra demo user id."""
    return UserProfile(
        user_id=user_id,
        rate=2.0,
        latency_ms=rng.choice((40.0, 120.0, 350.0)),
        error_rate=0.02,
        burst_ticks=rng.randint(60, 180),
        idle_ticks=rng.randint(5, 30),
        functions=1,
        function_groups=0,
    )


class DemoWorkload:
    """Drives a SessionManager with the traffic of ``users`` simulated people."""

    def __init__(
        self,
        manager: SessionManager,
        *,
        users: int = 40,
        seed: int = 0,
        tick_seconds: float = 1.0,
        time_scale: float = 1.0,
        extra_users: Sequence[str] = (),
    ) -> None:
        """Plan traffic for ``users`` from ``seed`` plus the ``extra_users`` ids; ``time_scale`` shrinks latencies."""
        self.manager = manager
        self.tick_seconds = tick_seconds
        self.time_scale = time_scale
        self._rng = random.Random(seed)
        self.profiles = make_profiles(users, self._rng)
        # Ticks left in the current burst (> 0) or pause (<= 0); half the users start busy.
        self._phase = {
            p.user_id: (p.burst_ticks if i % 2 == 0 else -self._rng.randint(0, 20)) for i, p in enumerate(self.profiles)
        }
        # Extra ids are drawn after the regular users so that a seed plans the same traffic for
        # those with or without extras; they start busy so that they show up at once.
        known = set(self._phase)
        for user_id in dict.fromkeys(extra_users):
            if not user_id or user_id in known:
                continue
            profile = _extra_profile(user_id, self._rng)
            self.profiles.append(profile)
            self._phase[user_id] = profile.burst_ticks
        self._by_id = {p.user_id: p for p in self.profiles}
        # The LLM calls come from their own generator (of the same seed), so that the requests a seed
        # plans stay what they were before the demo made LLM calls; each user has its share of the large model.
        self._llm_rng = random.Random(seed + 0x11A)
        self._large_share = {p.user_id: self._llm_rng.choice((0.0, 0.3, 0.7, 1.0)) for p in self.profiles}
        self._tasks: set[asyncio.Task[None]] = set()
        self.ticks = 0

    async def build_user(self, user_id: str) -> PerUserBuilder:
        """Builder factory for the manager: functions, groups and a base resource per user."""
        profile = self._by_id.get(user_id)
        builder = PerUserBuilder(user_id)
        functions = profile.functions if profile else 1
        groups = profile.function_groups if profile else 0
        for n in range(functions):
            builder.add_function(f"tool_{n}", object())
        for n in range(groups):
            builder.add_function_group(f"group_{n}", object())
        builder.push_resource(_release)
        return builder

    def plan_tick(self) -> list[PlannedRequest]:
        """Advance every user's phase by one tick and return the requests sent in it."""
        planned: list[PlannedRequest] = []
        rng = self._rng
        for p in self.profiles:
            phase = self._phase[p.user_id]
            if phase > 0:
                sends = _poisson(rng, p.rate * self.tick_seconds)
                for _ in range(sends):
                    latency = rng.expovariate(1.0 / p.latency_ms)
                    if p.stuck and rng.random() < 0.02:
                        latency = rng.uniform(60_000, 300_000)
                    planned.append(
                        PlannedRequest(
                            user_id=p.user_id,
                            latency_ms=latency,
                            fails=rng.random() < p.error_rate,
                            leaks=p.leaky,
                            llm=self._llm_calls(p.user_id),
                            tools=self._llm_rng.randint(0, 2),
                        )
                    )
                phase -= 1
                if phase == 0:
                    phase = -max(1, int(rng.expovariate(1.0 / p.idle_ticks)))
            else:
                phase += 1
                if phase == 0:
                    phase = max(1, int(rng.expovariate(1.0 / p.burst_ticks)))
            self._phase[p.user_id] = phase
        self.ticks += 1
        return planned

    def _llm_calls(self, user_id: str) -> tuple[LlmCall, ...]:
        """One to three LLM calls with their tokens, as NAT's usage_info counts them (cached within prompt)."""
        rng = self._llm_rng
        calls = []
        for _ in range(rng.randint(1, 3)):
            large = rng.random() < self._large_share.get(user_id, 0.5)
            prompt, completion = rng.randint(400, 3000), rng.randint(50, 600)
            cached = int(prompt * rng.choice((0.0, 0.25, 0.5)))
            reasoning = int(completion * rng.uniform(0.2, 0.6)) if large else 0
            calls.append((DEMO_MODELS[0 if large else 1], prompt, completion, cached, reasoning))
        return tuple(calls)

    async def _send(self, req: PlannedRequest) -> None:
        try:
            async with self.manager.session(req.user_id) as builder:
                await asyncio.sleep(req.latency_ms / 1000 * self.time_scale)
                stats = self.manager.stats_of(req.user_id)
                if stats is not None:  # the request's LLM and tool calls, as the NAT companion counts them
                    for model, prompt, completion, cached, reasoning in req.llm:
                        tokens = {"prompt_tokens": prompt, "completion_tokens": completion, "cached_tokens": cached}
                        tokens.update(reasoning_tokens=reasoning, total_tokens=prompt + completion)
                        record_llm(stats, model, tokens)
                    for _ in range(req.tools):
                        record_tool(stats)
                if req.leaks:
                    builder.push_resource(_release)
                if req.fails:
                    raise DemoRequestFailed(f"demo failure for {req.user_id}")
        except DemoRequestFailed:
            pass  # counted by the session manager; nothing else to do

    def send_tick(self) -> list[PlannedRequest]:
        """Plan one tick and start its requests in the background."""
        planned = self.plan_tick()
        loop = asyncio.get_running_loop()
        for req in planned:
            task = loop.create_task(self._send(req))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return planned

    async def run(self) -> None:
        """Send traffic forever, one tick every ``tick_seconds``."""
        while True:
            self.send_tick()
            await asyncio.sleep(self.tick_seconds)

    async def drain(self) -> None:
        """Wait for every request started so far to finish."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel the requests in flight."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)


async def _release() -> None:
    """Closing a demo resource costs nothing."""


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw by counting exponential gaps (means here are small)."""
    count, total = 0, rng.expovariate(1.0)
    while total < mean:
        count += 1
        total += rng.expovariate(1.0)
    return count


def demo_session_manager(
    *,
    users: int = 40,
    seed: int = 0,
    timeout_seconds: float = 120.0,
    cleanup_seconds: float = 10.0,
    extra_users: Sequence[str] = (),
) -> tuple[SessionManager, DemoWorkload]:
    """A session manager with a short eviction timeout and the workload that drives it."""
    holder: dict[str, DemoWorkload] = {}

    async def factory(user_id: str) -> PerUserBuilder:
        return await holder["workload"].build_user(user_id)

    manager = SessionManager(
        per_user_workflow_timeout=timedelta(seconds=timeout_seconds),
        per_user_workflow_cleanup_interval=timedelta(seconds=cleanup_seconds),
        builder_factory=factory,
    )
    holder["workload"] = DemoWorkload(manager, users=users, seed=seed, extra_users=extra_users)
    return manager, holder["workload"]
