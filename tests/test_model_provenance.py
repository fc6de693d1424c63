"""The provenance record inside a model file: embedded by format, carried into the result that benchmarks it.

Real runtimes on copies of the zoo's real files (the committed files are never written): the record
goes into the file's own metadata, the agent's CLI reads it back through the runtime session into
``model.provenance`` and prints it, and the model computes exactly what it did before.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
import sys
from pathlib import Path

import msgspec
import numpy as np
import pytest

from agent import contract, model_file, model_provenance, runtimes
from agent.contract import PROVENANCE_KEY, CalibrationBlock, PairedAccuracy, Provenance, RuntimeOptions
from agent.errors import ModelError

NEEDS_COREMLTOOLS = pytest.mark.skipif(sys.platform == "linux" and platform.machine() == "aarch64",
                                       reason="platform: Linux aarch64, for which coremltools publishes no wheel")

ROOT = Path(__file__).resolve().parent.parent
SOURCE = "fp32.onnx"


def record(source: Path, fmt: str, **changes) -> Provenance:
    """A record as ``edgeperf quantize`` writes it, its source the real fp32 file."""
    base = Provenance(
        schema=contract.PROVENANCE_SCHEMA, source_name=f"fashion-mnist-cnn/{source.name}",
        source_sha256=model_file.sha256_of(source), source_format="onnx", format=fmt, precision="int8",
        method="static QDQ, per-channel weights", settings={"per_channel": True, "activation_type": "int8"},
        calibration=CalibrationBlock(dataset="fashion-mnist", source="committed subset", n=200, samples_sha256="a" * 64),
        float_operators=("Softmax", "Gemm"), tool_versions={"onnxruntime": "1.22.0", "edgeperf": "0.1"},
        accuracy=PairedAccuracy(dataset="fashion-mnist", n=1000, samples_sha256="b" * 64, source_top1=0.912,
                                variant_top1=0.908, delta_pp=-0.4, ci95_pp=(-0.9, 0.1), method="Newcombe paired Wilson",
                                source_only=9, variant_only=5, p_value=0.42),
        budget_pp=1.0, budget_met=True, created_at="2026-12-07T12:00:00+00:00",
    )
    return msgspec.structs.replace(base, **changes)


@pytest.fixture
def copies(tmp_path, zoo_dir) -> Path:
    """The zoo's fashion-mnist files, copied: tests write only these."""
    folder = tmp_path / "models"
    folder.mkdir()
    for name in ("fp32.onnx", "int8.onnx", "int8.tflite"):
        shutil.copyfile(zoo_dir / name, folder / name)
    shutil.copytree(zoo_dir / "int8.mlpackage", folder / "int8.mlpackage")
    return folder


def bench(path: Path, tmp_path: Path) -> tuple[dict, str]:
    """``edgeperf-agent bench PATH --profile smoke --json`` in a child process: its result and printed table."""
    out = tmp_path / f"{path.name}.json"
    proc = subprocess.run([sys.executable, "-m", "agent.cli", "bench", str(path), "--profile", "smoke", "--engine", "native",
                           "--json", str(out)], capture_output=True, text=True, cwd=ROOT, timeout=180)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    doc = json.loads(out.read_text())
    contract.checked_result(doc)  # the document still meets the contract
    return doc, proc.stdout


def outputs(path: Path) -> list[np.ndarray]:
    """The model's outputs for fixed inputs in its own dtype."""
    model = model_file.resolve(str(path))
    session = runtimes.open_session(model, runtimes.runtime_for(model), RuntimeOptions(threads=1))
    rng = np.random.default_rng(7)
    feeds = {}
    for spec in session.info.inputs:
        shape = tuple(d if isinstance(d, int) and d > 0 else 1 for d in spec.shape)
        if spec.dtype.startswith(("int", "uint")):
            info = np.iinfo(spec.dtype)
            feeds[spec.name] = rng.integers(info.min, info.max, size=shape, endpoint=True).astype(spec.dtype)
        else:
            feeds[spec.name] = rng.standard_normal(shape).astype(spec.dtype)
    return [np.array(o) for o in session.run(feeds)]


def row(printed: str, label: str) -> list[str]:
    """The values of the printed table's rows labelled ``label`` (indented or not)."""
    return [line.strip()[len(label):].strip() for line in printed.splitlines() if line.strip().startswith(f"{label} ")]


def session_metadata(path: Path) -> dict[str, str]:
    model = model_file.resolve(str(path))
    return runtimes.open_session(model, runtimes.runtime_for(model), RuntimeOptions(threads=1)).info.metadata


# --- into the result ------------------------------------------------------------------------------


def test_an_onnx_record_travels_into_the_result_and_the_model_computes_the_same(copies, tmp_path):
    path, original = copies / "int8.onnx", tmp_path / "original.onnx"
    shutil.copyfile(path, original)
    rec = record(copies / SOURCE, "onnx")
    model_provenance.embed(path, rec)

    doc, printed = bench(path, tmp_path)
    assert msgspec.convert(doc["model"]["provenance"], Provenance) == rec
    assert contract.checked_result(doc)[0].model.provenance == rec
    assert doc["model"]["sha256"] == model_file.sha256_of(path) != model_file.sha256_of(original)
    assert "provenance_warning" not in doc["model"]
    assert row(printed, "quantised") == [
        f"from fashion-mnist-cnn/fp32.onnx (sha256 {rec.source_sha256[:12]}) by static QDQ, per-channel weights; "
        "top-1 0.9080 vs 0.9120 on fashion-mnist (1000 samples): −0.4 pp [−0.9, +0.1] paired; 2 operators left in float"]
    for got, want in zip(outputs(path), outputs(original), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    # the ONNX Runtime quantiser's own entries are still there
    assert {"onnx.quant.pre_process", "onnx.infer"} <= set(session_metadata(path))


def test_a_tflite_record_travels_into_the_result_and_the_model_computes_the_same(copies, tmp_path):
    path, original = copies / "int8.tflite", tmp_path / "original.tflite"
    shutil.copyfile(path, original)
    rec = record(copies / SOURCE, "tflite", accuracy=None, budget_met=None, float_operators=("SOFTMAX",),
                 accuracy_note="not measured: --no-accuracy")
    model_provenance.embed(path, rec)

    doc, printed = bench(path, tmp_path)
    assert msgspec.convert(doc["model"]["provenance"], Provenance) == rec
    assert row(printed, "quantised") == [
        f"from fashion-mnist-cnn/fp32.onnx (sha256 {rec.source_sha256[:12]}) by static QDQ, per-channel weights; "
        "not measured: --no-accuracy; 1 operator left in float"]
    for got, want in zip(outputs(path), outputs(original), strict=True):
        assert got.dtype == want.dtype and np.array_equal(got, want)
    # the converter's entries and the signature survive the rewrite
    before, after = session_metadata(original), session_metadata(path)
    assert after == before | {PROVENANCE_KEY: msgspec.json.encode(rec).decode()}
    assert before["min_runtime_version"] == "2.0.0"  # NUL padding dropped
    from ai_edge_litert.interpreter import Interpreter

    signatures = [Interpreter(model_path=str(p)).get_signature_list() for p in (original, path)]
    assert signatures[0] == signatures[1] and signatures[0]


def test_an_onnx_model_with_external_weights_keeps_them(copies, tmp_path):
    import onnx

    path = copies / "external.onnx"
    onnx.save_model(onnx.load(str(copies / SOURCE)), str(path), save_as_external_data=True,
                    all_tensors_to_one_file=True, location="external.weights", size_threshold=0)
    weights = (copies / "external.weights").read_bytes()
    rec = record(copies / SOURCE, "onnx", precision="fp32")
    model_provenance.embed(path, rec)
    assert (copies / "external.weights").read_bytes() == weights
    assert path.stat().st_size < 10_000  # the weights stayed outside the graph
    assert model_provenance.from_metadata(session_metadata(path)) == (rec, None)
    for got, want in zip(outputs(path), outputs(copies / SOURCE), strict=True):
        assert np.array_equal(got, want)


def test_a_result_of_a_model_without_a_record_has_none(copies, tmp_path):
    doc, printed = bench(copies / "int8.tflite", tmp_path)
    assert doc["model"]["provenance"] is None
    assert "quantised" not in printed and "warning" not in printed


# --- replacing, junk ------------------------------------------------------------------------------


def tflite_entries(path: Path) -> tuple[list[str], int]:
    from ai_edge_litert import schema_py_generated as schema

    model = schema.Model.GetRootAsModel(path.read_bytes(), 0)
    return [model.Metadata(i).Name().decode() for i in range(model.MetadataLength())], model.BuffersLength()


def test_embedding_twice_replaces_the_record(copies):
    first, second = record(copies / SOURCE, "onnx"), record(copies / SOURCE, "onnx", method="dynamic")
    import onnx

    onnx_path = copies / "int8.onnx"
    model_provenance.embed(onnx_path, first)
    model_provenance.embed(onnx_path, second)
    props = [p for p in onnx.load(str(onnx_path)).metadata_props if p.key == PROVENANCE_KEY]
    assert len(props) == 1 and msgspec.json.decode(props[0].value, type=Provenance) == second

    tflite_path = copies / "int8.tflite"
    model_provenance.embed(tflite_path, msgspec.structs.replace(first, format="tflite"))
    names, buffers = tflite_entries(tflite_path)
    model_provenance.embed(tflite_path, msgspec.structs.replace(second, format="tflite"))
    assert tflite_entries(tflite_path) == (names, buffers)  # the old record's buffer is reused: the file does not grow
    assert names.count(PROVENANCE_KEY) == 1
    got = model_provenance.from_metadata(session_metadata(tflite_path))
    assert got == (msgspec.structs.replace(second, format="tflite"), None)


# each kind of junk once, across both formats (from_metadata's own test covers every kind on its own)
@pytest.mark.parametrize(("name", "junk"), [("int8.onnx", '{"schema": "x"}'), ("int8.tflite", "not json {"),
                                            ("int8.onnx", '{"schema": "edgeperf.quantize/1"}')])
def test_a_junk_record_is_left_out_with_a_warning_and_the_run_succeeds(copies, tmp_path, name, junk):
    path = copies / name
    if name.endswith(".onnx"):
        model_provenance._embed_onnx(path, junk)  # another tool's entry under the same key
    else:
        model_provenance._embed_tflite(path, junk)
    doc, printed = bench(path, tmp_path)
    assert doc["model"]["provenance"] is None
    warning = doc["model"]["provenance_warning"]
    assert warning.startswith("the model's edgeperf.provenance metadata is not a valid provenance record (")
    assert warning.endswith("); the result carries none")
    assert row(printed, "warning") == [warning]
    assert "quantised" not in printed


def test_from_metadata():
    assert model_provenance.from_metadata({}) == (None, None)
    assert model_provenance.from_metadata({"other": "x"}) == (None, None)
    record_, warning = model_provenance.from_metadata({PROVENANCE_KEY: '{"schema": "edgeperf.quantize/1"}'})
    assert record_ is None and "Object missing required field source_name" in warning
    for junk in ('{"schema": "x"}', "not json {"):
        record_, warning = model_provenance.from_metadata({PROVENANCE_KEY: junk})
        assert record_ is None and warning.startswith(f"the model's {PROVENANCE_KEY} metadata is not a valid provenance record")
    deep = "[" * 10_000 + "]" * 10_000  # never an exception, whatever a third-party file holds
    assert model_provenance.from_metadata({PROVENANCE_KEY: deep})[0] is None


def test_embedding_into_an_unknown_file_type_is_one_line(tmp_path):
    path = tmp_path / "model.pt"
    path.write_bytes(b"x")
    with pytest.raises(ModelError, match=r"^model.pt: cannot embed a provenance record in a '.pt' file; .*\.tflite") as err:
        model_provenance.embed(path, record(path, "onnx"))
    assert "\n" not in str(err.value)


def test_a_corrupt_file_is_refused_and_left_as_it_was(copies):
    path = copies / "int8.tflite"
    cut = path.read_bytes()[:3000]
    path.write_bytes(cut)
    with pytest.raises(ModelError, match="cannot embed its provenance"):
        model_provenance.embed(path, record(copies / SOURCE, "tflite"))
    assert path.read_bytes() == cut
    assert sorted(p.name for p in copies.iterdir()) == ["fp32.onnx", "int8.mlpackage", "int8.onnx", "int8.tflite"]


# --- Core ML --------------------------------------------------------------------------------------


@NEEDS_COREMLTOOLS
def test_a_core_ml_record_is_embedded_on_any_system(copies):
    import coremltools as ct

    path = copies / "int8.mlpackage"
    before = dict(ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata)
    first, rec = record(copies / SOURCE, "coreml", method="linear"), record(copies / SOURCE, "coreml")
    model_provenance.embed(path, first)
    model_provenance.embed(path, rec)
    after = dict(ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata)
    assert after == before | {PROVENANCE_KEY: msgspec.json.encode(rec).decode()}
    assert model_provenance.from_metadata(after) == (rec, None)
    assert sorted(p.name for p in copies.iterdir()) == ["fp32.onnx", "int8.mlpackage", "int8.onnx", "int8.tflite"]
    assert (path / "Manifest.json").is_file()


@pytest.mark.skipif(sys.platform != "darwin", reason="platform: a Core ML session loads a model only on macOS")
def test_a_core_ml_session_reports_the_record(copies):
    path = copies / "int8.mlpackage"
    rec = record(copies / SOURCE, "coreml")
    model_provenance.embed(path, rec)
    assert model_provenance.from_metadata(session_metadata(path)) == (rec, None)


@NEEDS_COREMLTOOLS
def test_a_core_ml_record_is_embedded_in_an_mlmodel_file(tmp_path):
    import coremltools as ct
    from coremltools.models import datatypes
    from coremltools.models.neural_network import NeuralNetworkBuilder

    builder = NeuralNetworkBuilder([("x", datatypes.Array(3))], [("y", datatypes.Array(3))])
    builder.add_activation("relu", "RELU", "x", "y")
    path = tmp_path / "relu.mlmodel"
    ct.models.MLModel(builder.spec).save(str(path))
    rec = record(path, "coreml", precision="fp32")
    model_provenance.embed(path, rec)
    metadata = ct.models.MLModel(str(path), skip_model_load=True).user_defined_metadata
    assert model_provenance.from_metadata(metadata) == (rec, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relu.mlmodel"]
