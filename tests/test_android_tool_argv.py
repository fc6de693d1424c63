"""A job's options and run length as the phone tools' flags, and what the tools cannot do refused in
one line rather than approximated."""

from __future__ import annotations

import pytest

from agent import contract
from agent.android import tool_argv
from agent.errors import SettingsError
from agent.jobs import settings_for
from agent.scenarios.settings import RunSettings

TOOL = "/data/local/tmp/edgeperf/bin/tool"


def _settings(scenario: str = "SingleStream", mode: str = "performance", **run):
    return settings_for("quick", scenario, mode, contract.RunLength(**run))


def _options(**given):
    return contract.build(contract.RuntimeOptions, given)


def test_benchmark_model_takes_threads_delegates_shapes_and_both_minimums():
    argv = tool_argv.command("tflite", TOOL, "/data/local/tmp/edgeperf/m.tflite",
                             _options(threads=4, xnnpack=False, delegates=["gpu", "/vendor/lib64/libQnnTFLiteDelegate.so"],
                                      shapes={"x": [1, 96, 96, 3]}),
                             _settings(min_duration_s=2.5, min_queries=300, max_duration_s=60))
    assert argv == [TOOL, "--graph=/data/local/tmp/edgeperf/m.tflite", "--use_xnnpack=false", "--num_runs=300",
                    "--min_secs=2.625", "--max_secs=60", "--num_threads=4", "--use_gpu=true",  # 2.5 s and the 5 % margin
                    "--external_delegate_path=/vendor/lib64/libQnnTFLiteDelegate.so", "--input_layer=x",
                    "--input_layer_shape=1,96,96,3"]
    quick = _settings()
    assert f"--max_secs={quick.max_duration_ms / 1000:g}" in tool_argv.command("tflite", TOOL, "m.tflite", _options(), quick)
    no_cap = tool_argv.command("tflite", TOOL, "m.tflite", _options(), RunSettings())  # no maximum: the tool's own cap
    assert "--max_secs=150" in no_cap and "--use_xnnpack=true" in no_cap


def test_perf_test_is_verbose_with_random_inputs_for_the_minimum_duration():
    argv = tool_argv.command("onnx", TOOL, "/data/local/tmp/edgeperf/m.onnx",
                             _options(threads=2, providers=["NnapiExecutionProvider", "CPUExecutionProvider"],
                                      optimization="basic"),
                             _settings(min_duration_s=1.2))
    assert argv == [TOOL, "-v", "-I", "-e", "nnapi", "-o", "1", "-m", "duration", "-t", "2", "-x", "2",
                    "/data/local/tmp/edgeperf/m.onnx"]


@pytest.mark.parametrize(("fmt", "options", "settings", "message"), [
    ("tflite", {}, {"scenario": "Offline"}, "measures SingleStream only, not Offline"),
    ("onnx", {}, {"scenario": "Server"}, "measures SingleStream only, not Server"),
    ("tflite", {}, {"mode": "accuracy"}, "does not write the outputs accuracy is scored from"),
    ("tflite", {"delegates": ["edgetpu"]}, {}, "benchmark_model has no delegate 'edgetpu'; use gpu, nnapi, hexagon"),
    ("tflite", {"delegates": ["/a.so", "/b.so"]}, {}, "loads one external delegate library, not 2"),
    ("onnx", {"providers": ["CUDAExecutionProvider"]}, {}, "no execution provider 'CUDAExecutionProvider'"),
    ("onnx", {"providers": ["NnapiExecutionProvider", "QNNExecutionProvider"]}, {}, "one execution provider at a time"),
    ("onnx", {"shapes": {"x": [1, 3]}}, {}, "sets free dimensions by dimension name"),
    ("tflite", {"inputs": {"sr": "16000"}}, {}, "feeds the model random inputs"),
    ("coreml", {}, {}, "a phone runs .tflite models"),
])
def test_what_a_tool_cannot_do_is_one_clear_line(fmt, options, settings, message):
    with pytest.raises(SettingsError, match=message) as info:
        tool_argv.command(fmt, TOOL, "m", _options(**options), _settings(**settings))
    assert "\n" not in str(info.value)
