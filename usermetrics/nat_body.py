"""NAT ``/monitor/users`` bodies (sync, no Django): read as they stream in, validating only the users that changed.

NAT (FastAPI) writes its response compactly, each user an object that opens with its
``user_id``: ``{"timestamp":...,"users":[{"user_id":...},{"user_id":...}]}``. A body is cut at
each ``,{"user_id":`` as its chunks arrive, so it is never held whole and never parsed into
Python objects; a user whose bytes are the same as in the previous body gets the very record it
got then (already converted to UTC), and only the others are validated, one by one, straight from
their JSON. That is exact: a cut can only fall between two users of the list, because inside a
JSON string every ``"`` is escaped, and a cut inside any nested value leaves a piece that does not
validate. A body not written that way (another layout, a piece that does not validate) is
validated whole instead, which also gives an error its place (``users.3.session``).

What one body can make us hold is bounded: a user's record over ``MAX_USER_BYTES``, or a body
that cannot be cut over ``MAX_WHOLE_BYTES``, is refused as soon as it is read that far (a JSON
parser holds a number array dozens of times its size, so neither is handed to one).
"""

from __future__ import annotations

from datetime import tzinfo
from itertools import compress, count, repeat
from operator import is_, ne
from typing import Any

from pydantic import BaseModel, ValidationError

from usermetrics.clock import to_utc_in_place
from usermetrics.metrics import PerUserMonitorResponse, PerUserResourceUsage

OPEN = b'{"user_id":'  # how NAT opens each user's object
# The bytes between two users that a body may use: NAT's compact ``,`` or ``json.dumps``'s ``, ``.
SEPARATORS = (b", ", b",")
DETECT_BYTES = 64 * 1024  # read this much before telling which separator a body uses
MAX_USER_BYTES = 1024 * 1024  # NAT writes about 400 bytes per user; ids of 10,000 characters fit easily
MAX_WHOLE_BYTES = 4 * 1024 * 1024  # a body that cannot be cut by users (about 10,000 users' worth)
END_TRIES = 8  # places tried, from the right, for the end of the users' list in the last piece


class SourceError(Exception):
    """A source answered, but not with per-user metrics we can use."""

    # True when retrying soon will not help (the service then calls the source down at once).
    down_at_once = False


class NatBody:
    """Reads successive bodies of one NAT server; ``reader()`` takes one body chunk by chunk."""

    def __init__(self, zone: tzinfo | None) -> None:
        """Read naive timestamps in ``zone`` (None: this host's)."""
        self.zone = zone
        # Each user's bytes after ``{"user_id":`` in the previous body, and the records made of them.
        self._keys: list[bytes] = []
        self._records: list[PerUserResourceUsage] = []
        self.reused = 0
        self.validated = 0
        self.whole_bodies = 0  # bodies not cut by users (another layout): validated whole

    def reader(self) -> BodyReader:
        """A reader for the next body."""
        return BodyReader(self)

    def read(self, body: bytes) -> PerUserMonitorResponse:
        """Parse one whole body; SourceError says where it is not a PerUserMonitorResponse."""
        reader = self.reader()
        reader.feed(body)
        return reader.finish()

    def known(self, key: bytes) -> bool:
        """Whether the previous body had a user of exactly these bytes."""
        return key in self._keys

    def parse_cut(self, top: PerUserMonitorResponse, keys: list[bytes]) -> PerUserMonitorResponse:
        """The response of a body cut by users (``keys``: each one's bytes after OPEN); Uncut: one does not validate."""
        # Every pass over all users runs in C; Python touches only the changed ones. Users mostly
        # stay where they were, so bytes are compared place by place first (no hashing); a body
        # whose users moved about is matched by bytes instead.
        previous, records_before = self._keys, self._records
        if len(keys) == len(previous):
            records: list[Any] = records_before[:]
            changed = list(compress(count(), map(ne, keys, previous)))
            if len(changed) > len(keys) // 4:
                by_key = dict(zip(previous, records_before, strict=True))
                for i in changed:
                    records[i] = by_key.get(keys[i])
                changed = [i for i in changed if records[i] is None]
        else:
            by_key = dict(zip(previous, records_before, strict=True))
            records = list(map(by_key.get, keys))
            changed = list(compress(count(), map(is_, records, repeat(None))))
        for i in changed:
            try:
                usage = PerUserResourceUsage.model_validate_json(OPEN + keys[i])
            except ValidationError as exc:
                raise Uncut(exc, where=f"users.{i}") from None
            records[i] = to_utc_in_place(usage, self.zone)
        self._keys, self._records = keys, records
        self.validated += len(changed)
        self.reused += len(records) - len(changed)
        return PerUserMonitorResponse.model_construct(
            timestamp=top.timestamp, total_active_users=top.total_active_users, users=records
        )

    def parse_whole(self, body: bytes | bytearray) -> PerUserMonitorResponse:
        """Validate a body that could not be cut by users: every user validated, nothing reused."""
        if len(body) > MAX_WHOLE_BYTES:
            raise _too_large_whole()
        self._keys, self._records = [], []
        self.whole_bodies += 1
        response = _validated(PerUserMonitorResponse, body)
        for usage in response.users:
            to_utc_in_place(usage, self.zone)
        self.validated += len(response.users)
        return response


class Uncut(Exception):  # a signal between two methods, never an error anyone sees
    """A body cut by users that does not validate that way: ``error`` at ``where``."""

    def __init__(self, error: ValidationError | None, *, where: str) -> None:
        """What did not validate (None: the cut found no list of users) and where in the body."""
        super().__init__(where)
        self.error = error
        self.where = where


class BodyReader:
    """One body, fed chunk by chunk: cut at each user as it arrives, holding at most one unfinished piece."""

    def __init__(self, parser: NatBody) -> None:
        """Read for ``parser`` (which keeps the previous body's records)."""
        self.parser = parser
        self.size = 0
        self._marker: bytes | None = None  # separator + OPEN, once known
        self._whole: bytearray | None = None  # a body that is not cut by users, as read so far
        self._pieces: list[bytes] = []  # the body up to the last cut, cut at each marker
        self._chunks: list[bytes] = []  # what came after the last cut
        self._unfinished = 0  # bytes in _chunks
        self._tail = b""  # the last bytes read, for a marker split across two chunks

    def feed(self, chunk: bytes) -> None:
        """Take the next chunk of the body; SourceError as soon as it is more than can be held."""
        self.size += len(chunk)
        if self._whole is not None:
            self._whole += chunk
            if len(self._whole) > MAX_WHOLE_BYTES:
                raise _too_large_whole()
        elif self._marker is None:
            self._chunks.append(chunk)
            if self.size >= DETECT_BYTES:
                self._detect(final=False)
        else:
            self._cut(chunk)

    def finish(self) -> PerUserMonitorResponse:
        """The response of the whole body; SourceError says where it is not a PerUserMonitorResponse."""
        if self._marker is None and self._whole is None:
            self._detect(final=True)
        if self._marker is None:
            assert self._whole is not None
            return self.parser.parse_whole(self._whole)
        pieces = self._pieces
        pieces.append(b"".join(self._chunks))
        self._chunks = []
        try:
            return self._cut_response(pieces)
        except Uncut as uncut:
            # Most likely a user that is not valid; but a cut in the wrong place reads the same, so
            # a body small enough is validated whole, which tells the two apart.
            if self.size > MAX_WHOLE_BYTES:
                raise _source_error(uncut.error, where=uncut.where) from None
        return self.parser.parse_whole(self._marker.join(pieces))  # the body as it came

    def _detect(self, *, final: bool) -> None:
        """Tell the separator between users from the first two; read whole when there is none to tell."""
        data = b"".join(self._chunks)
        first = data.find(OPEN)
        second = data.find(OPEN, first + 1) if first >= 0 else -1
        before = data[:second] if second >= 0 else b""
        sep = next((sep for sep in SEPARATORS if before.endswith(sep)), None)
        if sep is None:
            if second >= 0 or final or self.size > MAX_USER_BYTES:
                # One user or none, users on lines of their own, or another layout: read it whole.
                self._chunks = []
                self._whole = bytearray()
                self.size = 0
                self.feed(data)
            return
        self._marker = sep + OPEN
        self._chunks = []
        self._cut(data)

    def _cut(self, chunk: bytes) -> None:
        """Cut at every marker in what has arrived; a chunk without one is only kept (no copy)."""
        marker = self._marker
        assert marker is not None
        reach = len(marker) - 1
        if marker not in chunk and marker not in self._tail + chunk[:reach]:
            self._chunks.append(chunk)
            self._unfinished += len(chunk)
            self._tail = (self._tail + chunk)[-reach:]
            if self._unfinished > MAX_USER_BYTES:
                raise SourceError(f"not a PerUserMonitorResponse: a user's record is over {MAX_USER_BYTES // 1024} KiB")
            return
        data = b"".join([*self._chunks, chunk]) if self._chunks else chunk
        self._chunks = []
        parts = data.split(marker)
        self._tail = data[-reach:]
        del data
        last = parts.pop()
        if max(map(len, parts)) > MAX_USER_BYTES:
            raise SourceError(f"not a PerUserMonitorResponse: a user's record is over {MAX_USER_BYTES // 1024} KiB")
        self._pieces.extend(parts)
        self._chunks.append(last)
        self._unfinished = len(last)

    def _cut_response(self, pieces: list[bytes]) -> PerUserMonitorResponse:
        """The users of a body cut into ``pieces``: the head with the first user, the others, the last with the end."""
        first = pieces[0]
        start = first.find(OPEN)
        head = first[:start]
        opening = head.rstrip()
        if start < 0 or len(pieces) < 2 or not (opening.endswith(b"[") and opening[:-1].rstrip().endswith(b'"users":')):
            raise Uncut(None, where="users")  # the first user is not in the top-level list of users
        keys = pieces[1:]
        keys.insert(0, first[start + len(OPEN) :])
        last = keys[-1]
        # The users' list ends at a "]" near the right (NAT writes nothing after it but "}"); what
        # follows it must complete the document, and what precedes it must be the last user.
        end = len(last)
        error: ValidationError | None = None
        for _ in range(END_TRIES):
            end = last.rfind(b"]", 0, end)
            if end < 0:
                break
            key = last[:end].rstrip()
            try:
                top = PerUserMonitorResponse.model_validate_json(head + last[end:])
                if not self.parser.known(key):
                    PerUserResourceUsage.model_validate_json(OPEN + key)  # a whole user precedes the end
            except ValidationError as exc:
                error = error or exc
                continue
            keys[-1] = key
            return self.parser.parse_cut(top, keys)
        raise Uncut(error, where="")


def _too_large_whole() -> SourceError:
    return SourceError(
        f"not a PerUserMonitorResponse it can read: a body over {MAX_WHOLE_BYTES // (1024 * 1024)} MiB must list its "
        'users the way NAT writes them, one after another, each opening with {"user_id":'
    )


def _validated(model: type[BaseModel], body: bytes | bytearray) -> Any:
    """``model`` from JSON ``body``; SourceError names the first place it is wrong."""
    try:
        return model.model_validate_json(body)
    except ValidationError as exc:
        raise _source_error(exc, where="") from None


def _source_error(exc: ValidationError | None, *, where: str) -> SourceError:
    """The SourceError of a validation error at ``where`` (a prefix of its location)."""
    if exc is None:
        return SourceError("not a PerUserMonitorResponse: no list of users where NAT writes it")
    first = exc.errors(include_url=False)[0]
    if first["type"] == "json_invalid":
        return SourceError(f"not a PerUserMonitorResponse: the body is not JSON ({first['msg']})")
    loc = ".".join([*([where] if where else []), *(str(part) for part in first["loc"])]) or "body"
    return SourceError(f"not a PerUserMonitorResponse: {exc.error_count()} error(s), first at {loc}: {first['msg']}")
