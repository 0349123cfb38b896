"""What fires, as a board carries it (sync, no Django): the alert counts the producer puts in ``Board.meta``.

The producer's alert engine writes these keys after each evaluation; the pages' header, the
frames, the alerts page and ``/metrics`` read them back here, so every face shows the count the
producer published (in one process or through Redis) and none of them reads the database for it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

FIRING = "alerts_firing"  # incidents firing with a subject not silenced
SILENCED = "alerts_silenced"  # incidents firing whose every subject is silenced
SEVERITY = "alerts_severity"  # the worst firing: 0 none, 1 info, 2 warning, 3 critical
RULE_PREFIX = "alerts_rule:"  # + rule name: that rule's firing subjects (every enabled rule, 0 included)
SEVERITIES = ("", "info", "warning", "critical")


@dataclass(frozen=True)
class Firing:
    """The alerts firing as of one board."""

    firing: int
    silenced: int
    severity: str  # "" when nothing fires
    by_rule: dict[str, int]
    known: bool  # False: the producer evaluates no alerts (off, or not yet)

    @property
    def words(self) -> str:
        """'No alert firing', '1 alert firing', '3 alerts firing' (the header's words, the script's too)."""
        if not self.firing:
            return "No alert firing"
        return f"{self.firing} alert{'s' if self.firing != 1 else ''} firing"

    def as_dict(self) -> dict[str, object]:
        """What a frame carries (``frame.alerts``)."""
        return {
            "firing": self.firing,
            "silenced": self.silenced,
            "severity": self.severity,
            "words": self.words,
            "known": self.known,
        }


def firing_meta(*, firing: int, silenced: int, severity: int, by_rule: Mapping[str, int]) -> dict[str, float]:
    """The meta keys of one evaluation."""
    meta = {FIRING: float(firing), SILENCED: float(silenced), SEVERITY: float(severity)}
    meta.update({RULE_PREFIX + name: float(count) for name, count in by_rule.items()})
    return meta


def firing_of(meta: Mapping[str, float]) -> Firing:
    """The alerts firing, read back from a board's meta."""
    rank = int(meta.get(SEVERITY, 0))
    return Firing(
        firing=int(meta.get(FIRING, 0)),
        silenced=int(meta.get(SILENCED, 0)),
        severity=SEVERITIES[rank] if 0 <= rank < len(SEVERITIES) else "",
        by_rule={k[len(RULE_PREFIX) :]: int(v) for k, v in meta.items() if k.startswith(RULE_PREFIX)},
        known=FIRING in meta,
    )
