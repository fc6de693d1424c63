"""``--input`` on real models nobody here wrote (issue 13): Silero's voice-activity models, whose
int64 ``sr`` picks a 16 kHz or an 8 kHz branch, ONNX's own StringNormalizer test models, whose
input is strings, and two LiteRT graphs (a string input; a Gather that fails at invoke on synthetic
indices). Each must run its real branch once ``--input`` gives the values, or stop with one line
that names the fix; the result must record what each input was fed.

silero-vad is installed with ``pip install --no-deps`` (.ci/run): only its ONNX files are used,
found without importing the package (its ``__init__`` imports torch). ONNX Runtime's
StringNormalizer needs the ``en_US.UTF-8`` locale, which slim images lack, so those runs get it
from a folder ``localedef`` writes (``LOCPATH``); an empty ``LOCPATH`` shows the message without it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from agent import contract
from tests.test_cli import agent, assert_one_line_error

FAST = ("--profile", "smoke", "--engine", "native", "--scenario", "SingleStream", "--threads", "1", "--warmup", "2")
# Silero's chunk sizes: 512 samples at 16 kHz, 256 at 8 kHz; the LSTM state is 2 x batch x 128.
VAD_16K = ("--shape", "input=1x512", "--shape", "state=2x1x128")
VAD_8K = ("--shape", "input=1x256", "--shape", "state=2x1x128")


def _result(proc: subprocess.CompletedProcess[str], out: Path) -> dict[str, Any]:
    """The run's result file, checked against the contract the controller reads it with."""
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(out.read_text())
    contract.convert("result", doc)
    return doc


def _inputs(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """``dataset.inputs`` by input name: what each input was fed is what these tests are about."""
    return {record["name"]: record for record in doc["dataset"]["inputs"]}


# --- Silero VAD (silero-vad on PyPI, MIT) ----------------------------------------------------------


@pytest.fixture(scope="module")
def silero() -> Path:
    """The folder of Silero's ONNX files; found by spec, since importing silero_vad imports torch."""
    spec = importlib.util.find_spec("silero_vad")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("silero-vad is not installed: python -m pip install --no-deps 'silero-vad>=6.2,<7' (.ci/run does)")
    folder = Path(spec.submodule_search_locations[0]) / "data"
    assert (folder / "silero_vad.onnx").is_file(), sorted(p.name for p in folder.iterdir())
    return folder


def test_the_vad_audio_length_is_free_and_named_in_one_line(silero: Path) -> None:
    """Silero declares its audio as batch x (unnamed) samples; no length is safe to guess."""
    assert_one_line_error(agent("bench", str(silero / "silero_vad.onnx"), *FAST),
                          "input 'input' has a free dimension at axis 1", "--shape input=")


@pytest.mark.parametrize("engine", ["native", "loadgen"])
def test_without_sr_the_vad_fails_in_one_line_naming_input(silero: Path, engine: str) -> None:
    """Synthetic int64 values are 0..99, never 16000: the model takes its 8 kHz branch, whose LSTM
    fails on 512 samples. Under either engine (LoadGen calls the model from its own thread) that is
    one line naming ``--input``, not a traceback and not a run of the wrong branch."""
    fast = [*FAST]
    fast[fast.index("native")] = engine
    proc = agent("bench", str(silero / "silero_vad.onnx"), *fast, *VAD_16K)
    assert_one_line_error(proc, "the model failed at run time on sample", "values with --input")


def test_sr_16000_runs_the_vad_and_the_result_records_every_input(silero: Path, tmp_path: Path) -> None:
    """The command the docs give: 512 samples of audio in [-1, 1], a zero state, sr 16000; and
    ``bench --from`` its result feeds the model the same way again."""
    out = tmp_path / "r.json"
    proc = agent("bench", str(silero / "silero_vad.onnx"), *FAST, *VAD_16K,
                 "--input", "sr=16000", "--input", "input=-1:1", "--input", "state=0", "--json", str(out))
    doc = _result(proc, out)
    assert doc["valid"] is True and doc["dataset"]["name"] == "synthetic"
    assert _inputs(doc) == {
        "input": {"name": "input", "shape": [1, 512], "dtype": "float32", "source": "range", "low": -1, "high": 1},
        "state": {"name": "state", "shape": [2, 1, 128], "dtype": "float32", "source": "constant", "value": 0},
        "sr": {"name": "sr", "shape": [], "dtype": "int64", "source": "constant", "value": 16000},
    }
    lines = proc.stdout.splitlines()
    assert any(line.startswith("inputs") and line.endswith("input=-1:1, state=0, sr=16000") for line in lines), proc.stdout
    argv = doc["reproduce"]["argv"]
    for flag, value in [("--shape", "input=1x512"), ("--shape", "state=2x1x128"), ("--input", "sr=16000")]:
        assert any(argv[i : i + 2] == [flag, value] for i in range(len(argv) - 1)), argv
    again = tmp_path / "again.json"
    replay = _result(agent("bench", "--from", str(out), "--json", str(again)), again)
    assert replay["dataset"]["inputs"] == doc["dataset"]["inputs"]  # the record is enough to feed it the same way


@pytest.mark.parametrize("shapes, ok", [(VAD_8K, True), (VAD_16K, False)], ids=["256-samples", "512-samples"])
def test_sr_8000_runs_with_its_own_chunk_size_only(silero: Path, tmp_path: Path, shapes: tuple[str, ...], ok: bool) -> None:
    """The 8 kHz branch is real too: it takes Silero's 256-sample chunk; fed 16 kHz's 512 it fails,
    in one line that says which two options to look at."""
    out = tmp_path / "r.json"
    proc = agent("bench", str(silero / "silero_vad.onnx"), *FAST, *shapes, "--input", "sr=8000", "--json", str(out))
    if not ok:
        assert_one_line_error(proc, "the model failed at run time", "--shape", "--input")
        return
    record = _inputs(_result(proc, out))
    assert record["sr"]["value"] == 8000 and record["input"]["shape"] == [1, 256]
    assert record["input"]["source"] == "synthetic"  # not given: its default range, and recorded as such


def test_the_vad_runs_under_loadgen_with_sr_given(silero: Path, tmp_path: Path) -> None:
    """LoadGen's engine feeds the same recorded inputs and counts every query it issued."""
    out = tmp_path / "r.json"
    proc = agent("bench", str(silero / "silero_vad.onnx"), "--profile", "smoke", "--engine", "loadgen",
                 "--scenario", "SingleStream", "--threads", "1", "--warmup", "2", *VAD_16K, "--input", "sr=16000",
                 "--json", str(out))
    doc = _result(proc, out)
    assert doc["engine"] == "loadgen" and doc["valid"] is True
    assert _inputs(doc)["sr"] == {"name": "sr", "shape": [], "dtype": "int64", "source": "constant", "value": 16000}
    assert doc["kpis"]["latency_histogram"]["n"] >= 64  # the smoke profile's minimum query count


def test_the_op18_export_runs_either_branch_so_the_record_and_a_warning_tell_which(silero: Path, tmp_path: Path) -> None:
    """A limit, kept visible: Silero's opset-18 export does not fail on 512 samples at 8 kHz, so
    synthetic ``sr`` silently times the 8 kHz branch. edgeperf cannot know which inputs are settings;
    the record says ``sr`` was synthetic 0..99, not 16000, and the printed result warns that a random
    one-value integer input may be a setting, naming ``--input``. Given, the warning goes."""
    model = silero / "silero_vad_op18_ifless.onnx"
    synthetic, given = tmp_path / "synthetic.json", tmp_path / "given.json"
    proc = agent("bench", str(model), *FAST, *VAD_16K, "--json", str(synthetic))
    first = _inputs(_result(proc, synthetic))
    assert first["sr"] == {"name": "sr", "shape": [], "dtype": "int64", "source": "synthetic", "low": 0, "high": 99}
    warnings = [line for line in proc.stdout.splitlines() if "warning" in line and "'sr'" in line]
    assert len(warnings) == 1 and "--input sr=VALUE" in warnings[0], proc.stdout
    assert "'input'" not in proc.stdout and "'state'" not in proc.stdout  # float inputs are data, not settings
    proc = agent("bench", str(model), *FAST, *VAD_16K, "--input", "sr=16000", "--json", str(given))
    second = _inputs(_result(proc, given))
    assert second["sr"]["source"] == "constant" and second["sr"]["value"] == 16000
    assert "--input sr=VALUE" not in proc.stdout


# --- ONNX's StringNormalizer test models (shipped in the onnx wheel) -------------------------------

STRNORM = Path(importlib.util.find_spec("onnx").submodule_search_locations[0]) / "backend" / "test" / "data" / "simple"


def _test_strings(model: str) -> np.ndarray:
    """The strings ONNX's own test data set feeds the model (``test_data_set_0/input_0.pb``)."""
    import onnx
    from onnx import numpy_helper

    tensor = onnx.TensorProto()
    tensor.ParseFromString((STRNORM / model / "test_data_set_0" / "input_0.pb").read_bytes())
    return numpy_helper.to_array(tensor)


@pytest.fixture(scope="module")
def en_us_locale(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A LOCPATH folder holding en_US.UTF-8, which ONNX Runtime's StringNormalizer opens by default."""
    folder = tmp_path_factory.mktemp("locales")
    proc = subprocess.run(["localedef", "-i", "en_US", "-f", "UTF-8", str(folder / "en_US.UTF-8")],
                          capture_output=True, text=True, check=False)
    if proc.returncode not in (0, 1) or not (folder / "en_US.UTF-8" / "LC_CTYPE").is_file():  # 1: warnings only
        pytest.fail(f"localedef cannot build en_US.UTF-8 here (Debian: package locales): {proc.stderr.strip()[:200]}")
    return folder


@pytest.mark.parametrize("model, shape", [
    ("test_strnorm_model_monday_casesensintive_upper", [4]),
    ("test_strnorm_model_monday_insensintive_upper_twodim", [1, 6]),
])
def test_strnorm_runs_on_its_own_test_strings_from_a_text_file(en_us_locale: Path, monkeypatch: pytest.MonkeyPatch,
                                                               tmp_path: Path, model: str, shape: list[int]) -> None:
    """A string input has no synthetic default: without ``--input`` one line names the .txt form;
    with ONNX's own test strings, one per line, it runs and the file is recorded by sha256."""
    monkeypatch.setenv("LOCPATH", str(en_us_locale))
    path = STRNORM / model / "model.onnx"
    assert_one_line_error(agent("bench", str(path), *FAST), "input 'x' takes strings", "--input x=PATH.txt")
    words = tmp_path / "words.txt"
    words.write_text("".join(f"{s}\n" for s in _test_strings(model).ravel()))
    out = tmp_path / "r.json"
    record = _inputs(_result(agent("bench", str(path), *FAST, "--input", f"x={words}", "--json", str(out)), out))["x"]
    assert record == {"name": "x", "shape": shape, "dtype": "string", "source": "file", "path": str(words.resolve()),
                      "sha256": hashlib.sha256(words.read_bytes()).hexdigest()}


def test_strnorm_takes_strings_from_npy_and_cycles_them(en_us_locale: Path, monkeypatch: pytest.MonkeyPatch,
                                                        tmp_path: Path) -> None:
    """Eight strings in a .npy fill two 4-string samples; three do not fill one, and the line says so."""
    monkeypatch.setenv("LOCPATH", str(en_us_locale))
    path = STRNORM / "test_strnorm_model_monday_casesensintive_upper" / "model.onnx"
    eight, three = tmp_path / "eight.npy", tmp_path / "three.npy"
    np.save(eight, np.array(["monday", "tuesday", "wednesday", "thursday", "Grüße", "MONDAY", "", "straße"]))
    np.save(three, np.array(["monday", "tuesday", "wednesday"]))
    out = tmp_path / "r.json"
    record = _inputs(_result(agent("bench", str(path), *FAST, "--input", f"x={eight}", "--json", str(out)), out))["x"]
    assert record["source"] == "file" and record["sha256"] == hashlib.sha256(eight.read_bytes()).hexdigest()
    assert_one_line_error(agent("bench", str(path), *FAST, "--input", f"x={three}"), "3 strings do not fill samples of 4")


def test_strnorm_without_its_locale_names_the_fix_in_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty LOCPATH stands for a slim image without en_US.UTF-8: ONNX Runtime cannot even build
    the session, and the one line says which locale and the command that makes it, not 'try another
    execution provider'."""
    (tmp_path / "no-locales").mkdir()
    monkeypatch.setenv("LOCPATH", str(tmp_path / "no-locales"))
    words = tmp_path / "words.txt"
    words.write_text("monday\ntuesday\nwednesday\nthursday\n")
    path = STRNORM / "test_strnorm_model_monday_casesensintive_upper" / "model.onnx"
    assert_one_line_error(agent("bench", str(path), *FAST, "--input", f"x={words}"),
                          "needs the en_US.UTF-8 locale", "localedef -i en_US -f UTF-8 en_US.UTF-8")


# --- LiteRT: a string input and an invoke-time failure ----------------------------------------------


def _tflite(path: Path, tensors: list[tuple[str, list[int], int, int]], inputs: list[int], op_inputs: list[int],
            outputs: list[int], op: int, options_type: int, options: Any, buffers: tuple[bytes, ...] = ()) -> Path:
    """A one-operator .tflite written with LiteRT's own flatbuffer schema (no TensorFlow needed):
    ``tensors`` are (name, shape, TensorType, buffer), buffer 0 the empty one, ``buffers`` 1.. the
    constants' bytes."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as schema

    model = schema.ModelT()
    model.version, model.description = 3, "edgeperf test"
    model.buffers = [schema.BufferT()]
    for data in buffers:
        buffer = schema.BufferT()
        buffer.data = list(data)
        model.buffers.append(buffer)
    code = schema.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = op, op, 1
    model.operatorCodes = [code]
    graph = schema.SubGraphT()
    graph.tensors = []
    for name, shape, kind, buffer_index in tensors:
        tensor = schema.TensorT()
        tensor.name, tensor.shape, tensor.type, tensor.buffer = name, shape, kind, buffer_index
        graph.tensors.append(tensor)
    operator = schema.OperatorT()
    operator.opcodeIndex, operator.inputs, operator.outputs = 0, op_inputs, outputs
    operator.builtinOptionsType, operator.builtinOptions = options_type, options
    graph.operators, graph.inputs, graph.outputs, graph.name = [operator], inputs, outputs, "main"
    model.subgraphs = [graph]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    return path


def test_litert_string_input_comes_from_a_text_file(tmp_path: Path) -> None:
    """TFLite's STRING tensors (``words`` == ``words``, an EQUAL node) get the same one-line refusal
    on synthetic data and run from a .txt, non-ASCII included; LiteRT calls the dtype ``bytes``."""
    from ai_edge_litert import schema_py_generated as schema

    kind = schema.TensorType
    model = _tflite(tmp_path / "strings.tflite", [("words", [2], kind.STRING, 0), ("same", [2], kind.BOOL, 0)],
                    [0], [0, 0], [1], schema.BuiltinOperator.EQUAL, schema.BuiltinOptions.EqualOptions,
                    schema.EqualOptionsT())
    assert_one_line_error(agent("bench", str(model), *FAST), "input 'words' takes strings", "--input words=PATH.txt")
    words = tmp_path / "words.txt"
    words.write_text("Grüße\n日本\nhello\nworld\n")
    out = tmp_path / "r.json"
    doc = _result(agent("bench", str(model), *FAST, "--input", f"words={words}", "--json", str(out)), out)
    assert doc["runtime"]["name"] == "litert"
    assert _inputs(doc)["words"] == {"name": "words", "shape": [2], "dtype": "bytes", "source": "file",
                                     "path": str(words.resolve()), "sha256": hashlib.sha256(words.read_bytes()).hexdigest()}


def test_litert_invoke_failure_is_one_line_and_input_fixes_it(tmp_path: Path) -> None:
    """GATHER from a 3-row table: synthetic int32 indices (0..99) are out of bounds, which LiteRT
    finds only at invoke; that is one line naming ``--input``, and ``--input index=0:2`` runs."""
    from ai_edge_litert import schema_py_generated as schema

    kind, options = schema.TensorType, schema.GatherOptionsT()
    options.axis = 0
    model = _tflite(tmp_path / "gather.tflite",
                    [("table", [3], kind.FLOAT32, 1), ("index", [1], kind.INT32, 0), ("row", [1], kind.FLOAT32, 0)],
                    [1], [0, 1], [2], schema.BuiltinOperator.GATHER, schema.BuiltinOptions.GatherOptions, options,
                    buffers=(np.array([10, 20, 30], dtype=np.float32).tobytes(),))
    assert_one_line_error(agent("bench", str(model), *FAST), "gather index out of bounds", "values with --input")
    out = tmp_path / "r.json"
    doc = _result(agent("bench", str(model), *FAST, "--input", "index=0:2", "--json", str(out)), out)
    assert _inputs(doc)["index"] == {"name": "index", "shape": [1], "dtype": "int32", "source": "range", "low": 0, "high": 2}
