"""The meters of a per-user workflow: LLM calls and their tokens per model, tool calls, as they travel."""

from __future__ import annotations

from usermetrics_nat.meters import UserStats, record_llm, record_tool
from usermetrics_nat.report import MODELS_MAX, OTHER_MODELS, Line, UserExtras, line_of

from tests.support.factories import usage


def test_meters_count_llm_calls_and_tokens_per_model_and_tool_calls():
    stats = UserStats(8)
    before = stats.fingerprint()
    record_llm(stats, "model-a", {"prompt_tokens": 100, "completion_tokens": 20, "total_tokens": 120})
    record_llm(stats, "model-a", {"prompt_tokens": 1, "cached_tokens": 4, "reasoning_tokens": 2, "total_tokens": 3})
    record_llm(stats, None, {})  # a client that reported no usage and no name: a call, no tokens
    record_tool(stats)
    assert stats.fingerprint() != before
    assert stats.llm == {"model-a": [2, 101, 20, 4, 2, 123], "(unnamed)": [1, 0, 0, 0, 0, 0]}
    assert stats.tool_calls == 1 and stats.llm_calls == 3
    # As it travels, and read back as the dashboard validates it.
    line = Line.model_validate_json(line_of(0, usage("alice"), stats.extras()))
    assert [(u.m, u.calls, u.prompt, u.completion, u.cached, u.reasoning, u.total) for u in line.x.llm] == [
        ("model-a", 2, 101, 20, 4, 2, 123),
        ("(unnamed)", 1, 0, 0, 0, 0, 0),
    ]
    assert line.x.tool_calls == 1


def test_meters_a_call_without_a_total_counts_prompt_and_completion():
    # NAT's TokenUsageBaseModel defaults total_tokens to 0: a client that leaves it out read as no tokens at all,
    # so the window's Tokens said 0 and an unpriced model's Cost "$0.00" (its unpriced tokens are its totals).
    stats = UserStats(8)
    record_llm(stats, "m", {"prompt_tokens": 100, "completion_tokens": 20, "cached_tokens": 40})
    record_llm(stats, "m", {"prompt_tokens": 5, "completion_tokens": 1, "total_tokens": 7})  # as reported
    assert stats.llm == {"m": [2, 105, 21, 40, 0, 127]}


def test_meters_bound_the_models_counted_apart():
    stats = UserStats(8)
    for n in range(MODELS_MAX + 5):
        record_llm(stats, f"model-{n}" + "x" * 500, {"total_tokens": 1})
    assert len(stats.llm) == MODELS_MAX + 1 and stats.llm[OTHER_MODELS] == [5, 0, 0, 0, 0, 5]
    assert all(len(name) <= 200 for name in stats.llm)
    Line.model_validate_json(line_of(0, usage("alice"), stats.extras()))  # still a valid line


def test_meters_a_line_of_an_earlier_companion_reads_as_no_llm_calls():
    old = b'{"latency":[[3,1]],"queued":0,"max_concurrency":8,"wait_ms":0.0,"run_ms":1.0}'
    extras = UserExtras.model_validate_json(old)
    assert extras.llm == [] and extras.tool_calls == 0
