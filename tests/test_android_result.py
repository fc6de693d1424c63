"""A phone tool's run as a result document the contract accepts, judged by LoadGen's two minimums,
marked as not LoadGen, and shown in the scorecard with the tool that measured it."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import contract, model_file
from agent.android import latency
from agent.android.facts import parse_getprop, phone_facts
from agent.android.result import Tool, document
from agent.android.tool_output import parse_benchmark_model
from agent.jobs import settings_for
from controller.analysis import scorecard
from controller.reports import views

FIXTURES = Path(__file__).parent / "fixtures" / "android"


def _phone_result(min_queries: int) -> contract.Result:
    run = parse_benchmark_model((FIXTURES / "benchmark_model_litert.txt").read_text())
    settings = settings_for("quick", "SingleStream", "performance", contract.RunLength(min_queries=min_queries,
                                                                                       min_duration_s=0.5))
    facts = phone_facts(parse_getprop("[ro.product.manufacturer]: [Google]\n[ro.product.model]: [Pixel 7]\n"))
    tool = Tool("benchmark_model", "0" * 64, "2.16.1", ("/data/local/tmp/edgeperf/bin/benchmark_model", "--graph=m.tflite"))
    doc = document("phone-run-1", "pixel-7", facts, model_file.resolve("zoo:fashion-mnist-cnn/int8.tflite"), "int8", tool,
                   settings, latency.from_benchmark_model(run), run.init_ms, run.first_inference_us / 1000,
                   (1_700_000_000_000_000_000, 1_700_000_001_500_000_000), run.memory_overall_mb, threads=4)
    return contract.checked_result(doc)[0]


def test_a_benchmark_model_run_is_a_result_marked_as_not_loadgen():
    result = _phone_result(min_queries=1000)
    assert result.engine == "benchmark_model" and result.valid and result.runtime.name == "litert"
    loadgen = next(c for c in result.checks if c.name == "loadgen")
    assert not loadgen.ok and "not LoadGen" in loadgen.detail
    assert result.kpis.latency_ms.p50 == pytest.approx(0.174) and result.kpis.latency_ms.p99 is None
    assert result.kpis.early_stopping_latency_ms is None and result.kpis.query_count == 5503
    assert result.settings.derived["latency_basis"] == latency.AGGREGATE


def test_a_run_short_of_the_minimum_queries_is_invalid_with_the_reason():
    result = _phone_result(min_queries=10_000)
    assert not result.valid and result.invalid_reasons == ("min_queries: 5503 runs, at least 10000 required",)


def test_the_scorecard_row_names_the_tool_that_measured_it():
    rows = scorecard.build([_phone_result(min_queries=1000)])
    (line,) = views.scorecard(rows, "phones").rows
    assert "SS perf (benchmark_model, not LoadGen)" in line
    assert rows[0].value("latency_ms.p50") == pytest.approx(0.174) and rows[0].value("latency_ms.p99") is None
