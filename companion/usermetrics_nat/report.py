"""A worker's report (sync, no Django, no NAT): what a companion adds to the Redis stream, and reading it back.

One stream entry carries one report of one NAT worker, in its field ``r``: zlib-compressed text
whose first line is the ``Header`` (JSON) and every further line one ``Line`` (JSON): a user of one
of the worker's endpoints (``e``, the session manager's index) with the seed's record of it
(``u``, times in UTC) and what NAT's endpoint cannot say (``x``). A report lists the users that
changed since the worker's previous one and names those that left (``gone``); now and then it is
``full`` and lists every user. Both sides import this module: one definition of the wire.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .metrics import PerUserResourceUsage

VERSION = 1
FIELD = b"r"  # the stream entry's one field
# What one report may decompress to at most; a larger one is skipped as garbage (it would be a
# million users in one worker). A consumer may set its own bound.
MAX_REPORT_BYTES = 256 * 1024 * 1024
# A model's name as counted (longer names are cut), and how many models a user's workflow has
# counted apart at most; calls of any further model count under OTHER_MODELS.
MODEL_NAME_MAX = 200
MODELS_MAX = 50
OTHER_MODELS = "(other models)"


class WorkerIdentity(BaseModel):
    """Which NAT worker process reports: a pid on a host, from a start time on."""

    model_config = ConfigDict(frozen=True)

    host: str = Field(min_length=1, max_length=255)
    pid: int = Field(ge=1)
    started_at: AwareDatetime
    nat_version: str = Field(max_length=64)
    config: str = Field(max_length=255, description="The NAT config the worker serves (its workflow's name)")

    @property
    def key(self) -> str:
        """Unique per process, even when a pid is used again after a restart."""
        return f"{self.host}:{self.pid}:{self.started_at.timestamp():.6f}"

    @property
    def label(self) -> str:
        """What pages call the worker."""
        return f"{self.host}:{self.pid}"


class ModelUsage(BaseModel):
    """One model's LLM calls in a user's workflow and their tokens (NAT's ``LLM_END`` steps), summed."""

    model_config = ConfigDict(frozen=True)

    m: str = Field(max_length=MODEL_NAME_MAX, description="The model: the LLM_END step's name")
    calls: int = Field(ge=0, default=0)
    prompt: int = Field(ge=0, default=0, description="Prompt tokens")
    completion: int = Field(ge=0, default=0, description="Completion tokens")
    cached: int = Field(ge=0, default=0, description="Prompt tokens read from the provider's cache")
    reasoning: int = Field(ge=0, default=0, description="Reasoning tokens")
    total: int = Field(ge=0, default=0, description="Total tokens, as the LLM client reported them")


class UserExtras(BaseModel):
    """What a worker sees of a user that NAT's ``/monitor/users`` does not say."""

    model_config = ConfigDict(frozen=True)

    # Cumulative latency histogram of the user's requests (``histogram.sparse`` pairs).
    latency: list[tuple[int, int]] = Field(default_factory=list)
    queued: int = Field(ge=0, default=0, description="Requests waiting on the user's semaphore now")
    max_concurrency: int = Field(ge=0, default=0, description="The semaphore's size (0: unlimited)")
    wait_ms: float = Field(ge=0, default=0.0, description="Time spent waiting on the semaphore, summed")
    run_ms: float = Field(ge=0, default=0.0, description="Time spent holding it (running), summed")
    # Cumulative, per model; added in a later companion: a report without them reads as none.
    llm: list[ModelUsage] = Field(default_factory=list, max_length=MODELS_MAX + 1)
    tool_calls: int = Field(ge=0, default=0, description="Tool calls that ended (NAT's TOOL_END steps)")


class Header(BaseModel):
    """The first line of a report."""

    v: Literal[1]
    deployment: str = Field(min_length=1, max_length=255)
    worker: WorkerIdentity
    seq: int = Field(ge=1, description="The worker's report number, from 1")
    full: bool = Field(description="Every user of the worker is listed (else only those that changed)")
    interval: float = Field(gt=0, description="Seconds between two reports of this worker")
    sent_at: AwareDatetime
    gone: list[tuple[int, str]] = Field(default_factory=list, description="(endpoint, user) gone since the last")
    dropped: int = Field(ge=0, default=0, description="Reports this worker could not send since it started")
    bye: bool = Field(default=False, description="The worker is stopping: its share ends with this report")


class Line(BaseModel):
    """One user of one endpoint of the worker."""

    e: int = Field(ge=0)
    u: PerUserResourceUsage
    x: UserExtras = Field(default_factory=UserExtras)


def line_of(endpoint: int, usage: PerUserResourceUsage, extras: UserExtras) -> bytes:
    """One user's line (``usage``'s times must be aware; the companion converts NAT's local times)."""
    return Line.model_construct(e=endpoint, u=usage, x=extras).model_dump_json().encode()


def encode(header: Header, lines: Iterable[bytes]) -> bytes:
    """The ``r`` field of a stream entry."""
    return zlib.compress(b"\n".join([header.model_dump_json().encode(), *lines]), 1)


class BadReport(ValueError):
    """A stream entry that is not a report of this version (garbage, too large, another format)."""


def decode(payload: bytes, *, max_bytes: int = MAX_REPORT_BYTES) -> tuple[Header, list[bytes]]:
    """The header (validated) and the raw user lines of a report; BadReport when it is not one.

    The lines are left as bytes: a consumer compares each with the worker's previous line of that
    user and validates only those that changed (``Line.model_validate_json``).
    """
    inflater = zlib.decompressobj()
    try:
        text = inflater.decompress(payload, max_bytes)
    except zlib.error as exc:
        raise BadReport(f"not zlib data: {exc}") from None
    if inflater.unconsumed_tail or not inflater.eof:
        raise BadReport(f"larger than {max_bytes} bytes, or cut short")
    head, _, rest = text.partition(b"\n")
    try:
        header = Header.model_validate_json(head)
    except ValueError as exc:
        raise BadReport(f"no report header: {str(exc)[:300]}") from None
    return header, rest.split(b"\n") if rest else []


def utc_now() -> datetime:
    """Now, aware UTC (what ``sent_at`` says)."""
    return datetime.now(UTC)
