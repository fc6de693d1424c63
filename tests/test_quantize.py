"""``edgeperf quantize`` on ONNX sources: the zoo's fp32 model within budget, the fall-back at work, bad input.

Two runs go through a child process, as a user runs the command; the others call the same typer app in
this process (``edgeperf_in_process``), so the worker imports ONNX Runtime once.

The fall-back is tested on a model built so that one operator cannot be quantised: one of its
inputs spans ±1,000 beside inputs in ±1, and the first layer, the only operator that reads the
input, ignores it. Per-tensor int8 activations then round every useful input to zero or near it
(top-1 falls by tens of points, on any CPU), and only leaving that operator in float restores it.
Labels are the float model's own predictions.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import msgspec
import numpy as np
import pytest

from agent.contract import PROVENANCE_KEY, Provenance
from agent.model_file import sha256_of
from tests.cli_harness import edgeperf, edgeperf_in_process, one_error_line
from tests.conftest import save_onnx

ZOO_FP32 = "zoo:fashion-mnist-cnn/fp32.onnx"


def outlier_model(folder: Path, samples: int = 600) -> tuple[Path, Path]:
    """The model described above and a folder of its inputs with labels (its own arg-max)."""
    from onnx import TensorProto, helper, numpy_helper  # here, not at collection: every pytest worker collects this file
    rng = np.random.default_rng(0)
    w0 = np.zeros((9, 8), np.float32)
    w0[:8] = rng.normal(size=(8, 8))  # input 8, the outlier, is read by nothing
    w1 = rng.normal(size=(8, 8)).astype(np.float32)
    w2 = rng.normal(size=(8, 4)).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W0"], ["p"], name="first"),  # the one operator that reads the outlier
         helper.make_node("Relu", ["p"], ["h0"], name="relu"),
         helper.make_node("MatMul", ["h0", "W1"], ["h1"], name="hidden"),
         helper.make_node("MatMul", ["h1", "W2"], ["logits"], name="logits")],
        "outlier", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 9])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["batch", 4])],
        [numpy_helper.from_array(w0, "W0"), numpy_helper.from_array(w1, "W1"), numpy_helper.from_array(w2, "W2")])
    model = save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), folder / "outlier.onnx")
    x = rng.uniform(-1, 1, size=(samples, 9)).astype(np.float32)
    x[:, 8] *= 1000.0
    data = folder / "data"
    data.mkdir()
    np.save(data / "x.npy", x)
    np.save(data / "labels.npy", (np.maximum(x @ w0, 0) @ w1 @ w2).argmax(1).astype(np.int64))
    return model, data


def records(proc) -> list[dict]:
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)


def embedded(path: Path) -> Provenance:
    """The record inside an ONNX file's own metadata, decoded through the contract."""
    import onnx

    props = {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}
    return msgspec.json.decode(props[PROVENANCE_KEY], type=Provenance)


def dequantised_inputs(path: Path) -> set[str]:
    """Names of the nodes of a QDQ model that read a dequantised tensor."""
    import onnx

    graph = onnx.load(str(path)).graph
    dq = {o for n in graph.node if n.op_type == "DequantizeLinear" for o in n.output}
    return {n.name for n in graph.node if n.op_type not in ("QuantizeLinear", "DequantizeLinear") and set(n.input) & dq}


def test_zoo_fp32_onnx_to_int8_within_1pp_with_a_paired_interval(tmp_path):
    out = tmp_path / "out"
    proc = edgeperf("quantize", ZOO_FP32, "--calibration", "fashion-mnist:subset:200", "--eval", "fashion-mnist:subset:800",
                    "--accuracy-budget", "1pp", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    (record,) = records(proc)
    assert record["file"] == str(out / "int8.onnx")
    beside = msgspec.json.decode((out / "int8.onnx.provenance.json").read_bytes(), type=Provenance)
    assert embedded(out / "int8.onnx") == beside  # the same record travels inside the file
    assert beside.source_sha256 == sha256_of(Path("agent/zoo/fashion-mnist-cnn/fp32.onnx"))
    assert beside.format == "onnx" and beside.method.startswith("ONNX Runtime quantize_static")
    assert beside.settings["per_channel"] is True and beside.settings["calibration_method"] == "minmax"
    assert beside.calibration.n == 200 and beside.calibration.source.endswith("samples 800-999")
    assert beside.tool_versions["onnxruntime"] and beside.tool_versions["edgeperf"]
    acc = beside.accuracy
    assert acc.n == 800 and acc.dataset == "fashion-mnist:subset:800" and acc.method.startswith("Newcombe paired")
    # within the budget: the point estimate of the drop, with the paired interval around it
    assert beside.budget_met is True and beside.budget_pp == 1.0 and -acc.delta_pp <= 1.0 + 1e-9
    assert acc.ci95_pp[0] < acc.delta_pp < acc.ci95_pp[1] or acc.ci95_pp[0] <= acc.delta_pp == 0 <= acc.ci95_pp[1]
    assert acc.delta_pp == pytest.approx((acc.variant_top1 - acc.source_top1) * 100)
    assert acc.delta_pp == pytest.approx((acc.variant_only - acc.source_only) / acc.n * 100)
    assert 0.87 < acc.source_top1 < 0.91  # the zoo's fp32 on the first 800 committed images
    # evaluation took samples 0-799 and calibration 800-999: no overlap, no warning
    assert "warning" not in proc.stderr


def test_overlapping_calibration_and_evaluation_is_warned(tmp_path):
    model, data = outlier_model(tmp_path)
    proc = edgeperf_in_process("quantize", str(model), "--calibration", f"{data}:200", "--eval", f"{data}:500",
                               "-o", str(tmp_path / "o"), "--calibration-method", "percentile", "--json")
    assert proc.returncode == 0, proc.stderr
    assert "warning: 100 of the 500 evaluation samples were also used to calibrate" in proc.stderr
    (record,) = records(proc)  # ONNX Runtime's percentile calibrator prints its progress: to stderr, not into the JSON
    assert record["settings"]["calibration_method"] == "percentile"


def test_a_tight_budget_falls_back_the_operators_that_need_float_and_names_them(tmp_path):
    model, data = outlier_model(tmp_path)
    out = tmp_path / "out"
    proc = edgeperf("quantize", str(model), "--calibration", f"{data}:100", "--eval", f"{data}:500",
                    "--accuracy-budget", "5pp", "-o", str(out), "--json")
    assert proc.returncode == 0, proc.stderr
    (record,) = records(proc)
    first = re.search(r"all operators quantised: top-1 [0-9.]+ \(([-+][0-9.]+) pp\)", proc.stderr)
    assert first and float(first.group(1)) < -30, proc.stderr  # the outlier ruins the fully quantised model
    floats = record["float_operators"]
    assert floats == ["first"] and record["budget_met"] is True and record["precision"] == "mixed"
    assert record["accuracy"]["delta_pp"] >= -5.0
    for name in floats:
        assert f"sensitivity of {name}:" in proc.stderr  # each measured one by one before it fell back
    written = dequantised_inputs(out / "int8.onnx")
    assert not set(floats) & written, "an operator named as float still reads int8 tensors"
    assert "logits" in written, "the layers quantisation does not hurt stay int8"


def test_an_unmet_budget_writes_the_best_variant_says_the_miss_and_exits_1(tmp_path):
    model, data = outlier_model(tmp_path)
    out = tmp_path / "out"
    proc = edgeperf_in_process("quantize", str(model), "--calibration", f"{data}:100", "--eval", f"{data}:500",
                    "--accuracy-budget", "1pp", "--max-trials", "1", "-o", str(out))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    record = msgspec.json.decode((out / "int8.onnx.provenance.json").read_bytes(), type=Provenance)
    assert record.budget_met is False and record.accuracy.delta_pp < -10
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    missed = -record.accuracy.delta_pp - 1.0
    assert f"int8.onnx misses the 1 pp budget by {missed:.2f} pp" in line and "--max-trials 1" in line


def test_without_eval_the_variant_is_written_unmeasured_and_a_campaign_benchmarks_it(tmp_path):
    out = tmp_path / "out"
    proc = edgeperf_in_process("quantize", ZOO_FP32, "--calibration", "synthetic:16", "-o", str(out),
                               "--campaign", str(out / "c.yaml"))
    assert proc.returncode == 0, proc.stderr
    record = msgspec.json.decode((out / "int8.onnx.provenance.json").read_bytes(), type=Provenance)
    assert record.accuracy is None and record.budget_met is None and "no --eval" in record.accuracy_note
    assert record.calibration.dataset == "synthetic" and record.calibration.n == 16
    from controller.fleet import campaign

    spec = campaign.load(out / "c.yaml")  # the campaign reader accepts what quantize wrote
    variants = [(v.name, v.artifact) for m in spec.models for v in m.variants]
    assert variants == [("fp32", ZOO_FP32), ("int8-onnx", str(out / "int8.onnx"))]
    assert spec.modes == ("performance",)


@pytest.mark.parametrize(("args", "code", "fragments"), [
    (("nope.onnx",), 2, ("nope.onnx", "not found")),
    ((ZOO_FP32, "--format", "onnx,gguf"), 2, ("--format", "onnx, tflite, coreml")),
    ((ZOO_FP32, "--format", "tflite"), 2, ("--format tflite", "TensorFlow", "PyTorch")),
    ((ZOO_FP32, "--format", "coreml"), 2, ("--format coreml", "no ONNX converter")),
    ((ZOO_FP32, "--eval", "fashion-mnist:subset", "--accuracy-budget", "1%"), 2, ("percentage points", "1pp")),
    ((ZOO_FP32, "--accuracy-budget", "1pp"), 2, ("--accuracy-budget needs --eval",)),
    ((ZOO_FP32, "--eval", "synthetic"), 2, ("--eval synthetic has no labels",)),
    ((ZOO_FP32, "--eval", "fashion-mnist:subset:5000"), 2, ("holds 1000 samples",)),
    ((ZOO_FP32, "--calibration-method", "kl"), 2, ("--calibration-method", "entropy")),
    (("zoo:fashion-mnist-cnn/int8.mlpackage",), 2, ("mlpackage", "quantise from ONNX")),
    (("examples/fmnist.yaml",), 2, ("not a model edgeperf quantises",)),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, code, fragments):
    source, *rest = args
    proc = edgeperf_in_process("quantize", source, "--calibration", "fashion-mnist:subset:100", *rest, "-o", str(tmp_path / "o"))
    one_error_line(proc, code, *fragments)


def test_calibration_that_does_not_fit_the_model_and_outputs_that_cannot_be_written(tmp_path):
    model, data = outlier_model(tmp_path)
    proc = edgeperf_in_process("quantize", str(model), "--calibration", "fashion-mnist:subset:10", "-o", str(tmp_path / "o"))
    one_error_line(proc, 2, "--calibration fashion-mnist:subset:10", "input 'x'")
    (tmp_path / "file").write_text("")
    proc = edgeperf_in_process("quantize", str(model), "--calibration", f"{data}:10", "-o", str(tmp_path / "file"))
    one_error_line(proc, 2, "is a file")
    (tmp_path / "made").mkdir()
    (tmp_path / "made" / "int8.onnx").write_bytes(b"an earlier variant")
    proc = edgeperf_in_process("quantize", str(model), "--calibration", f"{data}:10", "-o", str(tmp_path / "made"))
    one_error_line(proc, 2, "already holds int8.onnx", "new folder")
    assert (tmp_path / "made" / "int8.onnx").read_bytes() == b"an earlier variant"  # never overwritten


def test_a_model_with_nothing_to_quantise_is_one_line(tmp_path):
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Neg", ["x"], ["y"], name="neg")], "neg",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])])
    model = save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "neg.onnx")
    proc = edgeperf_in_process("quantize", str(model), "--calibration", "synthetic:8", "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]  # after the progress lines
    assert "could be quantised to int8 for onnx" in line and "benchmark the float model" in line


def test_compute_inside_control_flow_is_named_as_the_reason(tmp_path):
    """ONNX Runtime's static quantiser stays in the main graph: a model whose MatMul sits in an If
    branch (Silero VAD's layout) has nothing it can take, and the line says why."""
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.eye(4, dtype=np.float32), "W")
    then = helper.make_graph([helper.make_node("MatMul", ["x", "W"], ["y_then"], name="mm")], "then", [],
                             [helper.make_tensor_value_info("y_then", TensorProto.FLOAT, ["batch", 4])])
    other = helper.make_graph([helper.make_node("Identity", ["x"], ["y_else"], name="id")], "else", [],
                              [helper.make_tensor_value_info("y_else", TensorProto.FLOAT, ["batch", 4])])
    graph = helper.make_graph(
        [helper.make_node("If", ["c"], ["y"], name="branch", then_branch=then, else_branch=other)], "if",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 4]),
         helper.make_tensor_value_info("c", TensorProto.BOOL, [])],  # an input: nothing folds the branch away
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4])], [w])
    model = save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), tmp_path / "if.onnx")
    data = tmp_path / "data"
    data.mkdir()
    np.save(data / "x.npy", np.ones((8, 4), np.float32))
    np.save(data / "c.npy", np.ones(8, bool))  # ONNX Runtime's calibrator fails on a bool input that varies
    proc = edgeperf_in_process("quantize", str(model), "--calibration", str(data), "-o", str(tmp_path / "o"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert "If subgraphs, which ONNX Runtime's static quantiser does not enter" in line
