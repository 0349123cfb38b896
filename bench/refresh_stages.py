"""A refresh's stages in one process (sync): the producer's CPU per stage at sources x users, and a face's decode.

For each scale (``--scales``, sources x users per source), ``--moving`` of every source's users
change between two refreshes, as in ``bench/scale.py``. Each refresh runs what the producer's
tick runs on the event loop, stage by stage, on bodies of ``tests/support/fake_nat.py`` (no
HTTP): each source's body read (``NatBody``, as ``NatHttpSource`` does as the chunks arrive), the
ids (``merging.ids_of``), ``merging.merge``, ``packing.board_build``, ``board_wire.board_encode``
(what goes to Redis), and a face's ``orders.board_receive`` (decode, warm, carried from the
board before). Printed: the median CPU time (``time.process_time``) of each stage over
``--refreshes`` refreshes after two cold ones, the wire's size, the process's peak RSS, and each
stage's growth against the first scale, measured in the same run (the machine's speed varies).
Usage: .venv/bin/python bench/refresh_stages.py [--scales 1x100000,10x100000] [--moving 0.01] [--refreshes 5]
"""

from __future__ import annotations

import argparse
import gc
import os
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "companion"))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

from measure import peak_rss_mb  # noqa: E402  (bench/measure.py)

from tests.support.fake_nat import FakeNat  # noqa: E402
from usermetrics.board_wire import board_encode  # noqa: E402
from usermetrics.merging import ids_of, merge  # noqa: E402
from usermetrics.nat_body import NatBody  # noqa: E402
from usermetrics.orders import board_receive  # noqa: E402
from usermetrics.packing import BoardCache, board_build  # noqa: E402
from usermetrics.snapshot import SourceHealth  # noqa: E402

# Whether merge() takes the snapshot before, as the monitor gives it since issue 18 (the code before
# has no such argument: run with BENCH_BEFORE=1 there).
INCREMENTAL = not os.environ.get("BENCH_BEFORE")
STAGES = ("read bodies", "ids", "merge", "board_build", "encode", "face decode")


def scale_run(sources: int, users: int, moving: float, refreshes: int) -> dict[str, float]:
    """The median CPU ms of each stage over ``refreshes`` warm refreshes of ``sources`` x ``users``."""
    nats = [FakeNat(users, moving=moving, seed=n, prefix=f"s{n}-user") for n in range(sources)]
    parsers = [NatBody(UTC) for _ in nats]
    last = [([], []) for _ in nats]  # each source's users and ids, as MonitorService keeps them
    health = [SourceHealth(name=f"nat{n}", kind="nat") for n in range(sources)]
    cache, face_board, snapshot = BoardCache(), None, None
    times: dict[str, list[float]] = {stage: [] for stage in STAGES}
    wire_mb = 0.0
    gc.disable()  # as the producer runs (it collects every 100 refreshes)
    for seq in range(1, refreshes + 3):
        bodies = [nat.body() for nat in nats]  # the sources' own work, not timed
        clock = time.process_time
        began = clock()
        reports = [parser.read(body).users for parser, body in zip(parsers, bodies, strict=True)]
        t_read = clock()
        ids = [ids_of(users, *before) for users, before in zip(reports, last, strict=True)]
        last = list(zip(reports, ids, strict=True))
        t_ids = clock()
        names = [h.name for h in health]
        snapshot = merge(list(zip(names, reports, strict=True)), ids=ids, seq=seq, timestamp=datetime.now(UTC),
                         sources=health, **({"previous": snapshot} if INCREMENTAL else {}))  # fmt: skip
        t_merge = clock()
        board = board_build(snapshot, producer="bench", published_at=datetime.now(UTC), cache=cache)
        t_build = clock()
        wire = board_encode(board)
        t_encode = clock()
        face_board = board_receive(wire, face_board)
        t_decode = clock()
        wire_mb = len(wire) / 1e6
        if seq > 2:
            marks = (began, t_read, t_ids, t_merge, t_build, t_encode, t_decode)
            for stage, start, end in zip(STAGES, marks, marks[1:], strict=False):
                times[stage].append((end - start) * 1000)
        del wire, bodies
        gc.freeze()  # as the producer does after each refresh
    gc.unfreeze()
    gc.enable()
    result = {stage: statistics.median(values) for stage, values in times.items()}
    result["wire MB"] = wire_mb
    result["peak RSS MB"] = peak_rss_mb()
    return result


def main() -> None:
    """Each scale, then the table with each stage's growth against the first scale."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1x100000,10x100000")
    parser.add_argument("--moving", type=float, default=0.01)
    parser.add_argument("--refreshes", type=int, default=5)
    args = parser.parse_args()
    rows = {}
    for scale in args.scales.split(","):
        sources, users = map(int, scale.split("x"))
        rows[scale] = scale_run(sources, users, args.moving, args.refreshes)
        print(f"{scale}: {rows[scale]}", flush=True)
    first = next(iter(rows.values()))
    print(f"\nMedian CPU per refresh, {args.moving:.0%} of users changing (x: against {next(iter(rows))}):\n")
    print("| sources x users | " + " | ".join(STAGES) + " | total | wire | peak RSS (process) |")
    print("| --- |" + " ---: |" * (len(STAGES) + 3))
    for scale, r in rows.items():
        total = sum(r[s] for s in STAGES)
        base = sum(first[s] for s in STAGES)
        cells = [f"{r[s]:,.0f} ms ({r[s] / max(first[s], 0.01):.1f}x)" for s in STAGES]
        cells += [f"{total:,.0f} ms ({total / base:.1f}x)", f"{r['wire MB']:.1f} MB", f"{r['peak RSS MB']:,.0f} MB"]
        print(f"| {scale.replace('x', ' x ')} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
