"""usermetrics' NAT companion: per-user figures from inside every NAT worker, reported to a Redis stream.

``usermetrics_nat.CompanionWorker`` is NAT's FastAPI worker with a reporter in each worker process
(``general.front_end.runner_class`` in a NAT config). The modules that import no NAT —
``metrics`` (the seed's models and collector), ``histogram`` and ``report`` (the wire) — are the
Django-free core that the usermetrics dashboard imports too: one copy of each.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CompanionWorker"]


def __getattr__(name: str) -> Any:
    # The worker imports NAT: only when it is asked for, so that the dashboard can import the core.
    if name == "CompanionWorker":
        from .worker import CompanionWorker

        return CompanionWorker
    raise AttributeError(f"module 'usermetrics_nat' has no attribute {name!r}")
