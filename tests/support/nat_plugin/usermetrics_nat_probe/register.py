"""Registers ``usermetrics_probe``, a per-user NAT workflow driven by its input text (async).

The input ``message`` says what one request does, so a test can shape NAT's counters exactly:

- ``"fail"`` raises, so NAT counts an error;
- ``"sleep:<seconds>"`` takes that long, so NAT records that latency;
- ``"hold:<path>"`` stays in flight until the file ``path`` exists (at most ``hold_limit`` s),
  so a test can observe ``ref_count`` 1;
- anything else answers at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from nat.builder.builder import Builder
from nat.builder.function_info import FunctionInfo
from nat.cli.register_workflow import register_per_user_function
from nat.data_models.function import FunctionBaseConfig
from pydantic import BaseModel

_POLL = 0.05  # seconds between two looks at a hold's release file


class ProbeConfig(FunctionBaseConfig, name="usermetrics_probe"):
    """Configuration of the probe workflow."""

    # Upper bound on a "hold" so that a test that forgets to release never hangs the server.
    hold_limit: float = 60.0


class ProbeInput(BaseModel):
    """What one request asks the probe to do."""

    message: str = ""


class ProbeOutput(BaseModel):
    """What the probe answers."""

    result: str


@register_per_user_function(config_type=ProbeConfig, input_type=ProbeInput, single_output_type=ProbeOutput)
async def usermetrics_probe(config: ProbeConfig, builder: Builder) -> AsyncIterator[FunctionInfo]:
    """Build one user's probe workflow."""

    async def _run(request: ProbeInput) -> ProbeOutput:
        message = request.message
        if message == "fail":
            raise RuntimeError("probe asked to fail")
        if message.startswith("sleep:"):
            await asyncio.sleep(float(message.removeprefix("sleep:")))
        elif message.startswith("hold:"):
            release = Path(message.removeprefix("hold:"))
            for _ in range(int(config.hold_limit / _POLL)):
                if await asyncio.to_thread(release.exists):
                    break
                await asyncio.sleep(_POLL)
        return ProbeOutput(result=f"done: {message}")

    yield FunctionInfo.from_fn(_run, description="Sleeps, fails or holds on demand; for tests.")
