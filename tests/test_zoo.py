"""The committed zoo: files match their manifest, and the int8 models keep fp32's accuracy."""

from __future__ import annotations

import pytest

from agent import bench, model_file, zoo
from agent.contract import RuntimeOptions
from agent.scenarios.settings import Mode, Scenario, for_profile


def test_every_file_matches_its_manifest_entry():
    entries = zoo.entries()
    assert {e.name.split("/")[1] for e in entries} == {"fp32.onnx", "int8.onnx", "int8.tflite", "int8.mlpackage"}
    for entry in entries:
        assert model_file.sha256_of(entry.path) == entry.facts["sha256"], entry.name
        assert model_file.size_of(entry.path) == entry.facts["size_bytes"], entry.name
    spec = zoo.manifest()["models"]["fashion-mnist-cnn"]
    assert spec["build_command"] and spec["training"]


def test_int8_files_are_small():
    sizes = {e.name.split("/")[1]: e.facts["size_bytes"] for e in zoo.entries()}
    assert sizes["int8.tflite"] < 150_000 and sizes["int8.onnx"] < 150_000
    assert sizes["fp32.onnx"] > 3 * sizes["int8.onnx"]


def accuracy(name: str, engine: str) -> dict:
    request = bench.BenchRequest(
        model=f"zoo:fashion-mnist-cnn/{name}", settings=for_profile("smoke", Scenario.OFFLINE, Mode.ACCURACY),
        options=RuntimeOptions(threads=1), dataset="fashion-mnist:subset", engine=engine, warmup_runs=1,
    )
    doc = bench.run(request)
    assert doc["valid"], doc["invalid_reasons"]
    return doc["kpis"]["accuracy"]


@pytest.mark.parametrize("engine", ["native", "loadgen"])
def test_int8_accuracy_on_the_committed_subset(engine):
    """Acceptance: int8 TFLite and int8 ONNX >= 0.86 top-1 and within one point of fp32."""
    top1 = {name: accuracy(name, engine) for name in ("fp32.onnx", "int8.onnx", "int8.tflite")}
    for name in ("int8.onnx", "int8.tflite"):
        assert top1[name]["n"] == 1000
        assert top1[name]["top1"] >= 0.86, name
        assert abs(top1[name]["top1"] - top1["fp32.onnx"]["top1"]) <= 0.01, name
    for name, measured in top1.items():  # the agent reproduces the build script's own measurement
        assert measured["top1"] == pytest.approx(zoo.resolve(f"zoo:fashion-mnist-cnn/{name}").facts["accuracy"]["subset_top1"])
