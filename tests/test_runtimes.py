"""LiteRT and ONNX Runtime sessions on real models report the facts of the result's runtime and model blocks and run them."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from agent import model_file, runtimes
from agent.contract import RuntimeOptions
from agent.errors import ModelError, PlatformUnsupported, SettingsError


def open_zoo(name: str, **options):
    model = model_file.resolve(f"zoo:fashion-mnist-cnn/{name}")
    return runtimes.open_session(model, runtimes.runtime_for(model), RuntimeOptions(**options))


def test_litert_int8_session_facts():
    session = open_zoo("int8.tflite", threads=1)
    info = session.info
    assert info.runtime == "litert" and info.version.startswith("ai-edge-litert")
    assert info.precision == "int8" and info.threads == 1 and info.accelerator == "cpu/xnnpack"
    (inp,), (out,) = info.inputs, info.outputs
    assert inp.dtype == "int8" and inp.shape == (1, 1, 28, 28) and inp.scale and inp.zero_point == -128
    assert out.dtype == "int8" and out.scale is not None


def test_onnx_sessions_read_precision_from_the_graph():
    fp32, int8 = open_zoo("fp32.onnx", threads=1).info, open_zoo("int8.onnx", threads=1).info
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    assert fp32.accelerator == "CPUExecutionProvider"
    assert fp32.inputs[0].shape == ("batch", 1, 28, 28) and fp32.inputs[0].dtype == "float32"


def test_parameter_count_is_the_same_in_every_format():
    """Conv16-Conv32-FC64-FC10 has 105,866 weights and biases, whatever the file format."""
    counts = {name: open_zoo(name).info.parameters for name in ("fp32.onnx", "int8.onnx", "int8.tflite")}
    assert set(counts.values()) == {16 * 9 + 16 + 32 * 16 * 9 + 32 + 1568 * 64 + 64 + 64 * 10 + 10}


def test_dynamic_range_quantised_model_is_mixed_not_int8(tmp_path, zoo_dir):
    """int8 weights with float activations must not be sold as an int8 model."""
    from onnxruntime.quantization import QuantType, quantize_dynamic

    path = tmp_path / "dynamic.onnx"
    quantize_dynamic(str(zoo_dir / "fp32.onnx"), str(path), weight_type=QuantType.QInt8)
    session = runtimes.open_session(model_file.resolve(str(path)), "onnxruntime", RuntimeOptions())
    assert session.info.precision == "mixed"


def test_xnnpack_off_gives_the_same_answers():
    on, off = open_zoo("int8.tflite", threads=1), open_zoo("int8.tflite", threads=1, xnnpack=False)
    assert off.info.accelerator == "cpu/builtin" and off.info.details["delegate_nodes"] == 0
    assert on.info.details["delegate_nodes"] >= 1  # XNNPACK really took part of the graph
    x = {on.info.inputs[0].name: np.random.default_rng(0).integers(-128, 127, (1, 1, 28, 28), dtype=np.int8)}
    assert np.array_equal(on.run(x)[0], off.run(x)[0])


def test_onnx_batches_where_the_batch_dimension_is_free():
    session = open_zoo("fp32.onnx")
    assert session.batchable
    x = np.random.default_rng(0).random((5, 1, 28, 28), dtype=np.float32)
    assert session.run({"image": x})[0].shape == (5, 10)
    assert not open_zoo("int8.tflite").batchable


def test_missing_provider_is_an_error_not_a_silent_cpu_run():
    with pytest.raises(SettingsError, match=r"no CUDAExecutionProvider; available: .*CPUExecutionProvider"):
        open_zoo("fp32.onnx", providers=("CUDAExecutionProvider",))


def test_litert_refuses_zero_threads():
    with pytest.raises(SettingsError, match="--threads 1 or more"):
        open_zoo("int8.tflite", threads=0)


def test_truncated_models_are_model_errors(tmp_path, zoo_dir):
    for name in ("int8.tflite", "fp32.onnx"):
        cut = tmp_path / name
        cut.write_bytes((zoo_dir / name).read_bytes()[:2000])
        with pytest.raises(ModelError, match="not a loadable"):
            model = model_file.resolve(str(cut))
            runtimes.open_session(model, runtimes.runtime_for(model), RuntimeOptions())


def test_runtime_must_fit_the_file_type():
    model = model_file.resolve("zoo:fashion-mnist-cnn/fp32.onnx")
    assert runtimes.runtime_for(model, "onnx") == "onnxruntime"
    with pytest.raises(SettingsError, match="runtime litert cannot load it"):
        runtimes.runtime_for(model, "litert")
    with pytest.raises(SettingsError, match="unknown runtime"):
        runtimes.runtime_for(model, "tensorrt")


@pytest.mark.skipif(sys.platform == "darwin", reason="platform: on macOS Core ML predicts; this is the Linux error")
def test_coreml_on_linux_says_it_needs_macos():
    model = model_file.resolve("zoo:fashion-mnist-cnn/int8.mlpackage")
    assert model.format == "mlpackage" and runtimes.runtime_for(model) == "coreml"
    with pytest.raises(PlatformUnsupported, match="Core ML needs macOS"):
        runtimes.open_session(model, "coreml", RuntimeOptions())


def test_shape_override_sizes_free_dimensions(two_input_model):
    model = model_file.resolve(str(two_input_model))
    session = runtimes.open_session(model, "onnxruntime", RuntimeOptions(shapes={"features": (1, 7, 4), "ids": (1, 7)}))
    names = [s.name for s in session.info.inputs]
    assert names == ["features", "ids"]
    assert session.info.inputs[1].dtype == "int64"
    with pytest.raises(SettingsError, match="model's inputs are: features, ids"):
        runtimes.open_session(model, "onnxruntime", RuntimeOptions(shapes={"tokens": (1, 7)}))
