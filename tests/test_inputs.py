"""``--input`` and ``inputs:``: a model with a configuration input runs its real branch, string
inputs come from a file, and every mistake is one line naming the option."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from agent import contract, datasets
from agent.datasets import input_values
from agent.errors import SettingsError
from agent.runtimes.base import TensorSpec
from tests.conftest import save_onnx
from tests.test_cli import agent, assert_one_line_error

FAST = ("--profile", "smoke", "--engine", "native", "--scenario", "SingleStream", "--threads", "1", "--warmup", "2")


def vad_like_onnx(path: Path) -> Path:
    """A real ONNX graph shaped like a voice-activity model: audio ``x`` (batch x 16 float) and a scalar
    int64 ``sr``. ``If(sr == 16000)`` sums the audio; the 8 kHz branch reshapes 16 values into rows
    of 3, which fails at run time, as the real model's 8 kHz branch does on 16 kHz-sized audio."""
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 16])
    sr = helper.make_tensor_value_info("sr", TensorProto.INT64, [])
    out = helper.make_tensor_value_info("prob", TensorProto.FLOAT, [])
    then_out = helper.make_tensor_value_info("then_y", TensorProto.FLOAT, [])
    else_out = helper.make_tensor_value_info("else_y", TensorProto.FLOAT, [])
    then_branch = helper.make_graph([helper.make_node("ReduceSum", ["x"], ["then_y"], keepdims=0)], "khz16", [], [then_out])
    rows = helper.make_tensor("rows", TensorProto.INT64, [2], [-1, 3])
    else_branch = helper.make_graph([helper.make_node("Constant", [], ["rows_c"], value=rows),
                                     helper.make_node("Reshape", ["x", "rows_c"], ["else_y"])], "khz8", [], [else_out])
    nodes = [
        helper.make_node("Constant", [], ["k16"], value=helper.make_tensor("k", TensorProto.INT64, [], [16000])),
        helper.make_node("Equal", ["sr", "k16"], ["is16"]),
        helper.make_node("If", ["is16"], ["prob"], then_branch=then_branch, else_branch=else_branch),
    ]
    model = helper.make_model(helper.make_graph(nodes, "vad_like", [x, sr], [out]), opset_imports=[helper.make_opsetid("", 17)])
    return save_onnx(model, path)


def string_input_onnx(path: Path) -> Path:
    """A real ONNX graph with a string input, as a tokenizer front end: ``LabelEncoder`` maps two words to ids."""
    from onnx import TensorProto, helper

    words = helper.make_tensor_value_info("words", TensorProto.STRING, [2])
    out = helper.make_tensor_value_info("ids", TensorProto.INT64, [2])
    node = helper.make_node("LabelEncoder", ["words"], ["ids"], domain="ai.onnx.ml", keys_strings=["hello", "world"],
                            values_int64s=[1, 2], default_int64=0)
    model = helper.make_model(helper.make_graph([node], "strings", [words], [out]),
                              opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    return save_onnx(model, path)


@pytest.fixture
def vad(tmp_path: Path) -> Path:
    return vad_like_onnx(tmp_path / "vad.onnx")


def test_a_configuration_input_set_with_input_runs_the_real_branch(vad, tmp_path):
    out = tmp_path / "r.json"
    proc = agent("bench", str(vad), *FAST, "--input", "sr=16000", "--input", "x=-1:1", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    contract.convert("result", doc)
    inputs = {i["name"]: i for i in doc["dataset"]["inputs"]}
    assert inputs["sr"] == {"name": "sr", "shape": [], "dtype": "int64", "source": "constant", "value": 16000}
    assert inputs["x"] == {"name": "x", "shape": [1, 16], "dtype": "float32", "source": "range", "low": -1, "high": 1}
    lines = proc.stdout.splitlines()
    assert any(line.startswith("inputs") and line.endswith("x=-1:1, sr=16000") for line in lines), proc.stdout
    assert any(line.startswith("reproduce") and "--input sr=16000" in line for line in lines), proc.stdout


def test_without_the_input_the_random_value_takes_the_failing_branch(vad):
    """The reason the option exists: synthetic data alone cannot run this model."""
    proc = agent("bench", str(vad), *FAST)
    assert proc.returncode != 0 and "cannot be reshaped" in proc.stderr  # ONNX Runtime's words for the 8 kHz branch


def test_constants_broadcast_and_ranges_stay_in_range():
    specs = [TensorSpec("sr", (), "int64"), TensorSpec("x", (1, 50), "float32"), TensorSpec("ids", (1, 40), "int32")]
    samples = datasets.synthetic(specs, {}, count=8, values={"sr": "16000", "x": "-2:-1", "ids": "5:7"})
    for feed in samples.feeds:
        assert feed["sr"].shape == () and feed["sr"] == 16000 and feed["sr"].dtype == np.int64
        assert feed["x"].dtype == np.float32 and feed["x"].min() >= -2 and feed["x"].max() < -1
        assert feed["ids"].dtype == np.int32 and set(np.unique(feed["ids"])) == {5, 6, 7}
    assert samples.inputs[2] == {"name": "ids", "shape": [1, 40], "dtype": "int32", "source": "range", "low": 5, "high": 7}


def test_quantised_inputs_take_real_values_and_default_to_their_declared_range():
    spec = TensorSpec("q", (1, 400), "int8", scale=0.5, zero_point=0)
    fixed = datasets.synthetic([spec], {}, count=1, values={"q": "3"}).feeds[0]["q"]
    assert (fixed == 6).all()  # 3.0 / 0.5
    default = datasets.synthetic([spec], {}, count=4)
    assert default.inputs[0] | {} == {"name": "q", "shape": [1, 400], "dtype": "int8", "source": "synthetic",
                                      "low": -64.0, "high": 63.5}
    drawn = np.concatenate([f["q"] for f in default.feeds])
    assert drawn.min() < -100 and drawn.max() > 100  # the whole range the quantisation declares, not [0, 1)


def test_npy_files_give_every_sample_or_cycle_and_are_recorded_by_sha256(tmp_path):
    spec = TensorSpec("x", (1, 3), "float32")
    one, many = tmp_path / "one.npy", tmp_path / "many.npy"
    np.save(one, np.array([[1, 2, 3]], dtype=np.float32))
    np.save(many, np.arange(6, dtype=np.float32).reshape(2, 3))
    fed = datasets.synthetic([spec], {}, count=3, values={"x": str(one)})
    assert all((f["x"] == [[1, 2, 3]]).all() for f in fed.feeds)
    import hashlib

    assert fed.inputs[0]["sha256"] == hashlib.sha256(one.read_bytes()).hexdigest() and fed.inputs[0]["source"] == "file"
    cycled = [f["x"].tolist() for f in datasets.synthetic([spec], {}, count=3, values={"x": str(many)}).feeds]
    assert cycled == [[[0, 1, 2]], [[3, 4, 5]], [[0, 1, 2]]]


@pytest.mark.parametrize("array, fragment", [
    (np.zeros((1, 3), dtype=np.float64), "holds float64, input 'x' takes float32"),
    (np.zeros((1, 4), dtype=np.float32), "the array is 1x4, input 'x' takes 1x3"),
])
def test_npy_files_that_do_not_fit_say_how(tmp_path, array, fragment):
    path = tmp_path / "bad.npy"
    np.save(path, array)
    with pytest.raises(SettingsError, match=fragment):
        datasets.synthetic([TensorSpec("x", (1, 3), "float32")], {}, values={"x": str(path)})


@pytest.mark.parametrize("item, fragment", [
    ("sr", "bad --input 'sr'"),
    ("sr=fast", "not a finite number"),
    ("x=1:-1", "LOW 1 is above HIGH -1"),
    ("x=nan:1", "a range is two finite numbers"),
])
def test_bad_input_syntax_is_one_line(item, fragment):
    with pytest.raises(SettingsError, match=fragment):
        input_values.parse_input_overrides([item])


def test_values_that_the_dtype_cannot_hold_are_refused():
    with pytest.raises(SettingsError, match=r"int8, which holds integers -128\.\.127"):
        datasets.synthetic([TensorSpec("k", (1,), "int8")], {}, values={"k": "16000"})


def test_cli_mistakes_name_the_input_and_the_fix(vad, tmp_path):
    assert_one_line_error(agent("bench", str(vad), *FAST, "--input", "rate=16000"),
                          "--input names input 'rate'", "x, sr")
    assert_one_line_error(agent("bench", str(vad), *FAST, "--input", "sr=0.5"), "--input sr=0.5", "int64")
    assert_one_line_error(agent("bench", str(vad), *FAST, "--input", f"x={tmp_path / 'absent.npy'}"), "no such file")


def test_string_inputs_come_from_a_text_file(tmp_path):
    model = string_input_onnx(tmp_path / "strings.onnx")
    assert_one_line_error(agent("bench", str(model), *FAST), "takes strings", "--input words=PATH.txt")
    assert_one_line_error(agent("bench", str(model), *FAST, "--input", "words=7"), "takes strings", "--input words=PATH.txt")
    words = tmp_path / "words.txt"
    words.write_text("Hello\nWorld\nEdge\nPerf\n")
    out = tmp_path / "r.json"
    proc = agent("bench", str(model), *FAST, "--input", f"words={words}", "--json", str(out))
    assert proc.returncode == 0, proc.stderr
    record = json.loads(out.read_text())["dataset"]["inputs"][0]
    assert record["source"] == "file" and record["dtype"] == "string" and len(record["sha256"]) == 64


def test_string_inputs_from_npy_are_cycled_in_samples():
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "w.npy"
        np.save(path, np.array(["a", "b", "c", "d"]))
        feeds = datasets.synthetic([TensorSpec("w", (2,), "string")], {}, count=3, values={"w": str(path)}).feeds
    assert [f["w"].tolist() for f in feeds] == [["a", "b"], ["c", "d"], ["a", "b"]]
