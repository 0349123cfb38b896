"""Registers ``usermetrics_probe``, a per-user NAT workflow driven by its input text (async).

The input ``message`` says what one request does, so a test can shape NAT's counters exactly:

- ``"fail"`` raises, so NAT counts an error;
- ``"sleep:<seconds>"`` takes that long, so NAT records that latency;
- ``"hold:<path>"`` stays in flight until the file ``path`` exists (at most ``hold_limit`` s),
  so a test can observe ``ref_count`` 1;
- ``"steps:<step>,<step>..."`` reports calls on NAT's event stream as LLM clients and tools do,
  each ``llm:<model>:<prompt>:<completion>[:<cached>:<reasoning>]`` an LLM call (``LLM_START``,
  then ``LLM_END`` with its token usage) and each ``tool:<name>`` a tool call;
- anything else answers at once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

from nat.builder.builder import Builder
from nat.builder.context import Context
from nat.builder.function_info import FunctionInfo
from nat.cli.register_workflow import register_per_user_function
from nat.data_models.function import FunctionBaseConfig
from nat.data_models.intermediate_step import IntermediateStepPayload, IntermediateStepType, UsageInfo
from nat.data_models.token_usage import TokenUsageBaseModel
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
        if message.startswith("steps:"):
            for step in message.removeprefix("steps:").split(","):
                _report(step)
        elif message.startswith("sleep:"):
            await asyncio.sleep(float(message.removeprefix("sleep:")))
        elif message.startswith("hold:"):
            release = Path(message.removeprefix("hold:"))
            for _ in range(int(config.hold_limit / _POLL)):
                if await asyncio.to_thread(release.exists):
                    break
                await asyncio.sleep(_POLL)
        return ProbeOutput(result=f"done: {message}")

    yield FunctionInfo.from_fn(_run, description="Sleeps, fails or holds on demand; for tests.")


def _report(step: str) -> None:
    """Push one LLM or tool call's start and end on the running workflow's event stream."""
    kind, name, *numbers = step.split(":")
    steps = Context.get().intermediate_step_manager
    if kind == "llm":
        prompt, completion, cached, reasoning = [*map(int, numbers), 0, 0][:4]
        usage = TokenUsageBaseModel(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            reasoning_tokens=reasoning,
            total_tokens=prompt + completion + reasoning,
        )
        start, end = IntermediateStepType.LLM_START, IntermediateStepType.LLM_END
        info = UsageInfo(token_usage=usage, num_llm_calls=1)
    elif kind == "tool":
        start, end, info = IntermediateStepType.TOOL_START, IntermediateStepType.TOOL_END, None
    else:
        raise ValueError(f"unknown step {step!r}")
    opened = IntermediateStepPayload(event_type=start, name=name)
    steps.push_intermediate_step(opened)
    steps.push_intermediate_step(IntermediateStepPayload(event_type=end, name=name, UUID=opened.UUID, usage_info=info))
