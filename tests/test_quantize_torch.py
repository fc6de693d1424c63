"""``edgeperf quantize`` from PyTorch: int8 ONNX, int8 LiteRT and Core ML, then the campaign it writes on two agents.

The source is ``examples/quantize/fashion_cnn.py:model``: the zoo's trained CNN as an ``nn.Module``.
Everything is real: torch's ONNX export, litert-torch, the AI Edge Quantizer, coremltools, ONNX
Runtime and LiteRT scoring, mosquitto, two ``edgeperf-agent run`` processes and the controller.
"""

from __future__ import annotations

import json
import platform
import sys
from pathlib import Path

import msgspec
import pytest

from agent.contract import Provenance
from tests.cli_harness import edgeperf, edgeperf_here, edgeperf_in_process
from tests.fleet_harness import AgentProcess, Mosquitto

pytestmark = pytest.mark.slow
SOURCE = "examples/quantize/fashion_cnn.py:model"
needs_converters = pytest.mark.skipif(
    sys.platform == "linux" and platform.machine() == "aarch64",
    reason="platform: Linux aarch64, for which litert-torch's converter (litert-converter) and coremltools publish no wheels")


def provenance(path: Path) -> Provenance:
    return msgspec.json.decode(path.with_name(path.name + ".provenance.json").read_bytes(), type=Provenance)


@pytest.fixture(scope="module")
def quantised(tmp_path_factory):
    out = tmp_path_factory.mktemp("q") / "variants"
    proc = edgeperf_in_process("quantize", SOURCE, "--format", "onnx,tflite,coreml", "--calibration", "fashion-mnist:subset:200",
                    "--eval", "fashion-mnist:subset:800", "--accuracy-budget", "1pp", "-o", str(out),
                    "--campaign", str(out / "campaign.yaml"))
    assert proc.returncode == 0, proc.stderr[-3000:]
    return out


@needs_converters
def test_a_pytorch_source_becomes_int8_onnx_litert_and_core_ml_with_provenance(quantised):
    out = quantised
    fp32, onnx8, tflite8, coreml = (provenance(out / n) for n in ("fp32.onnx", "int8.onnx", "int8.tflite", "int8.mlpackage"))
    assert {r.source_sha256 for r in (fp32, onnx8, tflite8, coreml)} == {fp32.source_sha256}
    assert fp32.precision == "fp32" and fp32.source_format == "torch-module" and "torch.onnx.export" in fp32.method
    for record in (onnx8, tflite8):
        acc = record.accuracy
        assert record.budget_met is True and -acc.delta_pp <= 1.0 + 1e-9 and acc.n == 800
        assert acc.ci95_pp[0] <= acc.delta_pp <= acc.ci95_pp[1] and acc.method.startswith("Newcombe paired")
        assert 0.87 < acc.source_top1 < 0.91  # the zoo's trained weights, exported
    assert tflite8.method.startswith("AI Edge Quantizer") and tflite8.tool_versions["litert-torch"]
    assert tflite8.settings["recipe"] == "static_wi8_ai8"
    assert coreml.accuracy is None and "macOS" in coreml.accuracy_note and coreml.settings["weights"] == "linear symmetric int8"
    import coremltools as ct

    meta = ct.models.MLModel(str(out / "int8.mlpackage"), skip_model_load=True).user_defined_metadata
    assert msgspec.json.decode(meta["edgeperf.provenance"], type=Provenance) == coreml


@needs_converters
def test_the_written_campaign_benchmarks_source_and_variants_on_two_agents(quantised, tmp_path):
    out = quantised
    text = (out / "campaign.yaml").read_text()
    assert "# - artifact: int8.mlpackage" in text  # Core ML waits for a campaign of Macs
    # the smoke profile keeps the test short; everything else runs as written
    (out / "campaign.yaml").write_text(text.replace("profile: quick", "profile: smoke\noverrides: {min_duration_s: 0.2}")
                                       .replace("scenarios: [SingleStream, Offline]", "scenarios: [SingleStream]"))
    broker = Mosquitto(tmp_path).start()
    agents = [AgentProcess(broker.url, f"q-{i}", tmp_path).start() for i in (1, 2)]
    db = tmp_path / "c.db"
    try:
        run = edgeperf("campaign", "run", str(out / "campaign.yaml"), "--broker", broker.url, "--db", str(db),
                       "--artifact-host", "127.0.0.1", "--artifact-advertise", "127.0.0.1", timeout=600)
    finally:
        for agent in agents:
            agent.terminate()
        broker.stop()
    assert run.returncode == 0, run.stderr[-3000:]
    docs = json.loads(edgeperf_here("results", "latest", "--db", str(db), "--format", "json").stdout)
    seen = {(d["device"]["id"], d["model"]["name"].rsplit("/", 1)[-1], d["scenario"], d["mode"]) for d in docs}
    for device in ("q-1", "q-2"):
        for variant in ("fp32", "int8-onnx", "int8-tflite"):
            assert (device, variant, "SingleStream", "performance") in seen
            assert (device, variant, "SingleStream", "accuracy") in seen
    sources = {d["model"]["provenance"]["source_sha256"] for d in docs}
    assert len(sources) == 1 and all(d["model"]["provenance"] for d in docs)  # every result carries its provenance
    accuracy = {d["model"]["name"].rsplit("/", 1)[-1]: d for d in docs if d["mode"] == "accuracy" and d["device"]["id"] == "q-1"}
    assert accuracy["int8-tflite"]["model"]["provenance"]["format"] == "tflite"
    assert 0.86 < accuracy["int8-onnx"]["kpis"]["accuracy"]["top1"] < 0.91  # scored on the device, 1,000 images
    report = tmp_path / "report.html"
    made = edgeperf_here("report", "latest", "--db", str(db), "-o", str(report))
    assert made.returncode == 0, made.stderr
    page = report.read_text()
    assert "top-1 accuracy vs p90 latency" in page and 'class="front"' in page


def test_torch_files_are_sources_too(tmp_path):
    """A torch.export file and a TorchScript file quantise like a function; what they cannot do is refused
    with its reason (in this process: torch is imported once, the CLI's one-line errors are tested above)."""
    import torch

    from agent.errors import ModelError, SettingsError
    from controller.quantize import pipeline, sources
    from controller.quantize.request import DataSpec, Request
    from examples.quantize.fashion_cnn import model

    net, example = model()
    calibration = DataSpec("fashion-mnist:subset", 64)
    torch.export.save(torch.export.export(net, example), str(tmp_path / "cnn.pt2"))
    report = pipeline.run(Request(str(tmp_path / "cnn.pt2"), calibration, ("onnx",), tmp_path / "a"))
    assert provenance(report.outputs[0].path).source_format == "torch.export"
    torch.jit.save(torch.jit.trace(net, example), str(tmp_path / "cnn.pt"))
    with pytest.raises(SettingsError, match=r"cnn.pt is TorchScript, which records no input shapes; .*--shape input=1x"):
        sources.load(str(tmp_path / "cnn.pt"), {})
    script = sources.load(str(tmp_path / "cnn.pt"), {"input": (1, 1, 28, 28)})
    with pytest.raises(SettingsError, match=r"--format tflite .*litert-torch converts torch\.export-able modules"):
        sources.check_formats(script, ("onnx", "tflite"))
    report = pipeline.run(Request(str(tmp_path / "cnn.pt"), calibration, ("onnx",), tmp_path / "b",
                                  shapes={"input": (1, 1, 28, 28)}))
    assert provenance(report.outputs[0].path).source_format == "torchscript"
    torch.save(net, str(tmp_path / "pickled.pt"))
    with pytest.raises(ModelError, match=r"not a TorchScript file .* FILE\.py:FUNCTION"):
        sources.load(str(tmp_path / "pickled.pt"), {})


@needs_converters
def test_core_ml_palettes_and_a_float_tflite_source(tmp_path):
    from controller.quantize import pipeline, sources
    from controller.quantize.request import DataSpec, Request

    calibration, evaluation = DataSpec("fashion-mnist:subset", 200), DataSpec("fashion-mnist:subset", 800)
    report = pipeline.run(Request(SOURCE, calibration, ("coreml",), tmp_path / "c", coreml_weights="palette4"))
    palette = provenance(report.outputs[0].path)
    assert report.outputs[0].path.name == "palette4.mlpackage" and palette.settings["weights"] == "k-means palettisation, 4 bits"
    float_tflite = tmp_path / "float.tflite"
    sources.export_tflite(sources.load(SOURCE, {}), float_tflite)
    report = pipeline.run(Request(str(float_tflite), calibration, ("tflite",), tmp_path / "t", eval=evaluation, budget_pp=1.0))
    record = provenance(report.outputs[0].path)
    assert record.source_format == "tflite" and record.budget_met is True and record.accuracy.n == 800
    assert 0.87 < record.accuracy.source_top1 < 0.91  # the float .tflite scored by LiteRT
