"""Assembly (sync): the monitor service the settings describe, with its listeners (recorder, feed)."""

from __future__ import annotations

from usermetrics.conf import Config, get_config
from usermetrics.demo import demo_session_manager
from usermetrics.history.recorder import Recorder
from usermetrics.monitor import MonitorService
from usermetrics.sources import LocalSource, Source, nat_sources_build


def service_build(*, config: Config | None = None, record: bool = True) -> tuple[MonitorService, Recorder | None]:
    """The configured sources (NAT servers, and the demo when it is on) behind one monitor service.

    ``record``: install a history recorder on it when the history is on (a one-off check passes
    False, so that it neither writes history nor replaces the process's recorder).
    """
    cfg = config or get_config()
    sources: list[Source] = list(nat_sources_build(cfg.sources, default_timeout=cfg.source_timeout))
    if cfg.demo.enabled:
        demo = cfg.demo
        manager, workload = demo_session_manager(
            users=demo.users,
            seed=demo.seed,
            timeout_seconds=demo.timeout,
            cleanup_seconds=demo.cleanup_interval,
            extra_users=demo.extra_users,
        )
        sources.append(LocalSource("demo", manager, workload=workload))
    service = MonitorService(
        sources, interval=cfg.refresh_interval, timeout=cfg.source_timeout, down_after=cfg.source_down_after
    )
    recorder = None
    if record and cfg.history.enabled:
        recorder = Recorder(cfg.history)
        service.add_listener(recorder)  # records every refresh into the history store
    return service, recorder
