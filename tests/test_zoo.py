"""The committed zoo: files match their manifest, and the int8 models keep fp32's accuracy.

Remote (fetchable) entries of the packaged manifest are checked in tests/test_zoo_fetch.py against a local server;
here only the committed files count, so adding remote models to the manifest changes nothing below."""

from __future__ import annotations

import pytest

from agent import bench, cli, model_file, zoo
from agent.contract import RuntimeOptions
from agent.scenarios.settings import Mode, Scenario, for_profile


def committed() -> list[zoo.ZooEntry]:
    return [e for e in zoo.entries() if not e.remote]


def test_every_file_matches_its_manifest_entry():
    entries = committed()
    assert {e.name.split("/")[1] for e in entries} == {"fp32.onnx", "int8.onnx", "int8.tflite", "int8.mlpackage"}
    for entry in entries:
        assert model_file.sha256_of(entry.path) == entry.facts["sha256"], entry.name
        assert model_file.size_of(entry.path) == entry.facts["size_bytes"], entry.name
    spec = zoo.manifest()["models"]["fashion-mnist-cnn"]
    assert spec["build_command"] and spec["training"]


def test_int8_files_are_small():
    sizes = {e.name.split("/")[1]: e.facts["size_bytes"] for e in committed() if e.model.name == "fashion-mnist-cnn"}
    assert sizes["int8.tflite"] < 150_000 and sizes["int8.onnx"] < 150_000
    assert sizes["fp32.onnx"] > 3 * sizes["int8.onnx"]


def reproduces(entry: zoo.ZooEntry, top1: float) -> bool:
    """Whether ``top1``, measured on the committed subset, reproduces the manifest's on this CPU: within the
    band any instruction set holds (``zoo.top1_band``), never the build machine's exact value."""
    band = zoo.top1_band(entry)
    return band is not None and band[0] <= top1 <= band[1]


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
    for name, measured in top1.items():  # the agent reproduces the build's measurement, within the band any ISA holds
        assert reproduces(zoo.resolve(f"zoo:fashion-mnist-cnn/{name}"), measured["top1"]), (name, measured["top1"])


def test_top1_bands_hold_the_build_value_and_every_isa_seen(capsys):
    """int8.onnx measures 0.879 with AVX2 and 0.886 with AVX-512 VNNI: one band holds both, and not a point off."""
    entry = zoo.resolve("zoo:fashion-mnist-cnn/int8.onnx")
    assert reproduces(entry, 0.879) and reproduces(entry, 0.886)
    assert not reproduces(entry, 0.86) and not reproduces(entry, 0.90)
    for e in committed():
        band, built = zoo.top1_band(e), e.facts["accuracy"].get("subset_top1")
        assert (band is None) == (built is None), e.name
        if band:
            assert band[0] < built < band[1] and round(band[1] - band[0], 9) <= 0.02, e.name
    assert not reproduces(zoo.resolve("zoo:fashion-mnist-cnn/int8.mlpackage"), 0.88)  # never measured
    assert cli.main(["zoo"]) == 0 and "top-1 0.869–0.889" in capsys.readouterr().out  # the listing shows the band


def test_every_entry_carries_what_the_listing_and_fetch_need():
    """Every model in the packaged manifest names its task, suite, source, licence and accuracy target (what
    ``zoo`` lists), a post-processing the scorer knows or refuses by name, and each remote file its pinned https
    URL (and https mirrors), precision and runtime."""
    from agent import postprocess

    for model in zoo.models():
        assert all((model.task, model.suite, model.source, model.licence)), model.name
        target = model.accuracy_target
        assert target is None or (target["metric"] and target["reference"] > 0 and 0 < target["fraction"] <= 1), model.name
        assert model.postprocess is None or isinstance(model.postprocess.get("kind"), str), model.name
        for facts in (f for f in model.facts["files"].values() if "url" in f):
            assert facts["url"].startswith("https://") and facts["precision"] and facts["runtime"], (model.name, facts)
            assert all(m.startswith("https://") for m in facts.get("mirrors", [])), (model.name, facts)
    scorable = [m.name for m in zoo.models() if m.postprocess and m.postprocess["kind"] in postprocess.KINDS]
    assert {"fashion-mnist-cnn", "tiny-kws-dscnn", "tiny-ad-autoencoder", "ssd-mobilenetv1-onnxzoo"} <= set(scorable)
