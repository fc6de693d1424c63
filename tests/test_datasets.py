"""Synthetic data fits any model from its input specs; Fashion-MNIST is real and fits the zoo CNN."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from agent import datasets, model_file, runtimes, zoo
from agent.contract import RuntimeOptions
from agent.datasets import fashion_mnist
from agent.errors import DatasetError, SettingsError
from agent.runtimes.base import TensorSpec


def test_synthetic_fills_several_inputs_with_their_own_dtypes(two_input_model):
    model = model_file.resolve(str(two_input_model))
    shapes = {"features": (1, 16, 4), "ids": (1, 16)}
    session = runtimes.open_session(model, "onnxruntime", RuntimeOptions(shapes=shapes))
    samples = datasets.load("synthetic", session.info.inputs, shapes)
    assert len(samples) == datasets.SYNTHETIC_SAMPLES and samples.labels is None
    feed = samples.feeds[0]
    assert feed["features"].shape == (1, 16, 4) and feed["features"].dtype == np.float32
    assert feed["ids"].shape == (1, 16) and feed["ids"].dtype == np.int64
    assert feed["ids"].min() >= 0 and feed["ids"].max() < 100
    total = session.run(feed)[0]  # the model sums both inputs: real data went through
    assert total[0] == pytest.approx(feed["features"].sum() + feed["ids"].sum(), rel=1e-5)


def test_free_batch_becomes_one_but_other_free_dims_must_be_named(two_input_model):
    model = model_file.resolve(str(two_input_model))
    session = runtimes.open_session(model, "onnxruntime", RuntimeOptions())
    with pytest.raises(SettingsError, match=r"free dimension 'seq' at axis 1.*--shape features=Nx\?x4|--shape features="):
        datasets.load("synthetic", session.info.inputs, {})


def test_synthetic_int8_inputs_are_quantised_floats():
    spec = TensorSpec("x", (1, 8), "int8", scale=1 / 255, zero_point=-128)
    values = datasets.synthetic([spec], {}, count=50).feeds
    stacked = np.concatenate([f["x"] for f in values])
    assert stacked.dtype == np.int8 and stacked.min() >= -128 and stacked.max() <= 127
    assert stacked.std() > 30  # uniform [0, 1) spread over the int8 range, not a constant


def test_synthetic_is_reproducible():
    spec = TensorSpec("x", (1, 3), "float32")
    a, b = datasets.synthetic([spec], {}, seed=7), datasets.synthetic([spec], {}, seed=7)
    assert all(np.array_equal(x["x"], y["x"]) for x, y in zip(a.feeds, b.feeds, strict=True))


def test_committed_subset_is_the_documented_slice(fmnist_subset):
    facts = zoo.manifest()["data"]["fashion-mnist-subset"]
    assert model_file.sha256_of(zoo.zoo_root() / facts["file"]) == facts["sha256"]
    assert fmnist_subset.images.shape == (1000, 28, 28) and fmnist_subset.images.dtype == np.uint8
    assert sorted(set(fmnist_subset.labels.tolist())) == list(range(10))
    assert min(np.bincount(fmnist_subset.labels)) >= 80  # every class is represented


def _write_idx(path, array: np.ndarray) -> None:
    magic = 0x0803 if array.ndim == 3 else 0x0801
    header = struct.pack(">I", magic) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.astype(np.uint8).tobytes())


def test_full_set_is_preferred_when_debian_files_exist(tmp_path, fmnist_subset):
    """The Debian layout, written here in the real idx format, is read instead of the subset."""
    images, labels = np.concatenate([fmnist_subset.images] * 3), np.concatenate([fmnist_subset.labels] * 3)
    _write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", images)
    _write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", labels)
    full = fashion_mnist.test_set("auto", root=tmp_path)
    assert len(full.labels) == 3000 and full.source.startswith("debian:")
    assert np.array_equal(full.images[:1000], fmnist_subset.images)
    assert fashion_mnist.test_set("subset", root=tmp_path).source.startswith("zoo:")


def test_missing_full_set_names_the_package(tmp_path):
    with pytest.raises(DatasetError, match="apt-get install dataset-fashion-mnist"):
        fashion_mnist.test_set("full", root=tmp_path)
    assert fashion_mnist.test_set("auto", root=tmp_path).source.startswith("zoo:")


def test_corrupt_idx_file_is_a_dataset_error(tmp_path):
    bad = tmp_path / "t10k-images-idx3-ubyte.gz"
    with gzip.open(bad, "wb") as f:
        f.write(b"\x00\x00\x09\x99garbage")
    with pytest.raises(DatasetError, match="not an idx file"):
        fashion_mnist.read_idx(bad)


def test_fashion_mnist_fits_the_zoo_models_and_quantises_for_int8():
    for name, dtype in (("int8.tflite", np.int8), ("fp32.onnx", np.float32)):
        model = model_file.resolve(f"zoo:fashion-mnist-cnn/{name}")
        session = runtimes.open_session(model, runtimes.runtime_for(model), RuntimeOptions())
        samples = datasets.load("fashion-mnist:subset", session.info.inputs, {})
        assert len(samples) == 1000 and samples.labels is not None
        (value,) = samples.feeds[0].values()
        assert value.dtype == dtype and value.shape == (1, 1, 28, 28)


def test_images_that_do_not_fit_the_model_say_so(two_input_model):
    model = model_file.resolve(str(two_input_model))
    session = runtimes.open_session(model, "onnxruntime", RuntimeOptions())
    with pytest.raises(DatasetError, match="model has 2 inputs"):
        datasets.load("fashion-mnist:subset", session.info.inputs, {})
    single = [TensorSpec("image", (1, 3, 224, 224), "float32")]
    with pytest.raises(DatasetError, match=r"28x28 grayscale images \(784 values per sample\).*1x3x224x224"):
        datasets.load("fashion-mnist:subset", single, {})


def test_unknown_dataset_lists_the_known_ones():
    with pytest.raises(DatasetError, match="synthetic, fashion-mnist"):
        datasets.load("imagenet", [TensorSpec("x", (1, 2), "float32")], {})
