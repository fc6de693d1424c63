"""A folder of .npy files as a dataset: real input specs of the zoo's models, every refusal one line."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from agent import datasets, model_file, runtimes
from agent.contract import RuntimeOptions
from agent.errors import DatasetError, SettingsError
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input

FP32_IMAGE = TensorSpec("image", ("batch", 1, 28, 28), "float32")  # zoo fp32.onnx (checked against the file below)


@pytest.fixture(scope="module")
def specs() -> dict[str, TensorSpec]:
    """The zoo's input specs as the runtimes read them from the committed files."""
    out = {}
    for name, runtime in (("fp32.onnx", "onnxruntime"), ("int8.tflite", "litert")):
        session = runtimes.open_session(model_file.resolve(f"zoo:fashion-mnist-cnn/{name}"), runtime, RuntimeOptions())
        (out[name],) = session.info.inputs
    assert out["fp32.onnx"] == FP32_IMAGE
    assert out["int8.tflite"].dtype == "int8" and out["int8.tflite"].quantised and out["int8.tflite"].shape == (1, 1, 28, 28)
    return out


def _folder(tmp_path: Path, name: str = "data", **arrays: np.ndarray) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    for stem, array in arrays.items():
        np.save(folder / f"{stem}.npy", array)
    return folder


def _images(n: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).random((n, 1, 28, 28), dtype=np.float32)


def _labels(n: int = 6) -> np.ndarray:
    return np.arange(n, dtype=np.int64) % 10


def test_fp32_folder_gives_batch_one_feeds_labels_and_its_source(tmp_path, specs):
    images, labels = _images(), _labels()
    folder = _folder(tmp_path, images=images, labels=labels)
    samples = datasets.load(str(folder), [specs["fp32.onnx"]], {})
    assert samples.name == str(folder) and len(samples) == 6
    assert all(f["image"].shape == (1, 1, 28, 28) and f["image"].dtype == np.float32 for f in samples.feeds)
    assert np.array_equal(np.concatenate([f["image"] for f in samples.feeds]), images)
    assert samples.labels.dtype == np.int64 and samples.labels.tolist() == labels.tolist()
    digest = hashlib.sha256((folder / "images.npy").read_bytes()).hexdigest()
    assert samples.source == (f"npy:{folder.resolve()} images.npy={digest[:12]} labels.npy="
                              f"{hashlib.sha256((folder / 'labels.npy').read_bytes()).hexdigest()[:12]}")
    assert samples.inputs == ({"name": "image", "shape": [1, 1, 28, 28], "dtype": "float32", "source": "dataset",
                               "path": str((folder / "images.npy").resolve()), "sha256": digest},)


def test_a_folder_is_named_by_a_relative_path_or_npy_prefix(tmp_path, specs, monkeypatch):
    _folder(tmp_path, image=_images(3).astype(np.float64))  # float64 is cast to the input's float32
    monkeypatch.chdir(tmp_path)
    for name in ("data", "./data", "npy:data", f"npy:{tmp_path / 'data'}"):
        samples = datasets.load(name, [specs["fp32.onnx"]], {})
        assert samples.name == name and len(samples) == 3 and samples.labels is None
        assert samples.feeds[0]["image"].dtype == np.float32


def test_int8_input_is_quantised_as_to_model_input_does(tmp_path, specs):
    spec = specs["int8.tflite"]
    images = _images()
    samples = datasets.load(str(_folder(tmp_path, images=images, labels=_labels())), [spec], {})
    for feed, image in zip(samples.feeds, images, strict=True):
        assert feed[spec.name].dtype == np.int8
        assert np.array_equal(feed[spec.name], to_model_input(image.reshape(1, 1, 28, 28), spec))
    already = np.stack([to_model_input(image, spec) for image in images])  # int8 values: taken as they are
    again = datasets.load(str(_folder(tmp_path, "q", x=already)), [spec], {})
    assert all(np.array_equal(a[spec.name], b[spec.name]) for a, b in zip(again.feeds, samples.feeds, strict=True))


def test_the_whole_input_shape_per_sample_is_read_too_and_hidden_files_are_skipped(tmp_path, specs):
    images = _images(4)
    folder = _folder(tmp_path, images=images[:, None])
    (folder / "._images.npy").write_bytes(b"\x00\x05\x16\x07 macOS resource fork")
    samples = datasets.load(str(folder), [specs["fp32.onnx"]], {})
    assert np.array_equal(np.concatenate([f["image"] for f in samples.feeds]), images)


def test_fingerprint_is_stable_model_independent_and_follows_the_labels(tmp_path, specs):
    images, labels = _images(), _labels()
    folder = _folder(tmp_path, images=images, labels=labels)
    every = np.arange(6)
    fp32 = datasets.load(str(folder), [specs["fp32.onnx"]], {}).fingerprint(every)
    assert fp32 == datasets.load(str(folder), [specs["fp32.onnx"]], {}).fingerprint(every)
    assert fp32 == datasets.load(str(folder), [specs["int8.tflite"]], {}).fingerprint(every)  # same data, quantised
    assert fp32 == datasets.fingerprint(images, labels)
    labels[2] += 1
    np.save(folder / "labels.npy", labels)
    assert datasets.load(str(folder), [specs["fp32.onnx"]], {}).fingerprint(every) != fp32


def test_two_inputs_each_from_its_own_file(tmp_path, two_input_model):
    session = runtimes.open_session(model_file.resolve(str(two_input_model)), "onnxruntime", RuntimeOptions())
    rng = np.random.default_rng(3)
    features, ids = rng.random((5, 16, 4)), rng.integers(0, 50, (5, 16), dtype=np.int32)
    folder = _folder(tmp_path, features=features, ids=ids, labels=_labels(5))
    samples = datasets.load(str(folder), session.info.inputs, {})  # free seq: taken from the files
    assert [r["shape"] for r in samples.inputs] == [[1, 16, 4], [1, 16]]
    for i, feed in enumerate(samples.feeds):
        assert feed["features"].dtype == np.float32 and feed["ids"].dtype == np.int64 and feed["ids"].shape == (1, 16)
        total = session.run(feed)[0][0]
        assert total == pytest.approx(features[i].astype(np.float32).sum() + ids[i].sum(), rel=1e-5)
    every = np.arange(5)
    first = samples.fingerprint(every)
    assert first == datasets.load(str(folder), session.info.inputs, {}).fingerprint(every)
    ids[4, 0] += 1
    np.save(folder / "ids.npy", ids)
    assert datasets.load(str(folder), session.info.inputs, {}).fingerprint(every) != first
    assert datasets.load(str(folder), session.info.inputs, {"features": (1, 16, 4), "ids": (1, 16)}).labels is not None
    with pytest.raises(DatasetError, match=r"input 'features' \(--shape features=1x8x4\) takes \[8,4\] per sample, "
                                           r"stacked as \[N,8,4\]; features.npy holds \[5,16,4\]"):
        datasets.load(str(folder), session.info.inputs, {"features": (1, 8, 4), "ids": (1, 8)})


TWO = [TensorSpec("features", ("batch", "seq", 4), "float32"), TensorSpec("ids", ("batch", "seq"), "int64")]


def _write(folder: Path, files: dict[str, object]) -> None:
    folder.mkdir(exist_ok=True)
    for name, content in files.items():
        if isinstance(content, bytes):
            (folder / name).write_bytes(content)
        else:
            np.save(folder / name, content, allow_pickle=True)


def _npy_bytes(array: np.ndarray, tmp_path: Path) -> bytes:
    np.save(tmp_path / "scratch.npy", array)
    return (tmp_path / "scratch.npy").read_bytes()


IMG = np.zeros((5, 1, 28, 28), np.float32)
LAB = np.arange(5)

REFUSALS = [
    # (id, files in the folder, inputs, fragments the one line holds)
    ("no-npy", {"readme.txt": b"hello"}, [FP32_IMAGE], ["holds no .npy files", "<input name>.npy"]),
    ("labels-only", {"labels.npy": LAB}, [FP32_IMAGE], ["no input files (only labels.npy)", "image.npy"]),
    ("several-unnamed", {"a.npy": IMG, "b.npy": IMG}, [FP32_IMAGE],
     ["several .npy files (a.npy, b.npy)", "none is named image.npy", "keep one"]),
    ("extra-beside-named", {"image.npy": IMG, "x.npy": IMG}, [FP32_IMAGE],
     ["x.npy in", "names no input of the model; its inputs are: image", "rename it"]),
    ("names-no-input", {"features.npy": np.zeros((5, 3, 4)), "ids.npy": np.zeros((5, 3), np.int64),
                        "x.npy": np.zeros(5)}, TWO, ["x.npy in", "names no input of the model; its inputs are: features, ids"]),
    ("input-without-file", {"features.npy": np.zeros((5, 3, 4))}, TWO,
     ["input 'ids' has no file", "add ids.npy"]),
    ("counts-labels", {"images.npy": IMG, "labels.npy": np.arange(4)}, [FP32_IMAGE],
     ["sample counts differ", "images.npy holds 5, labels.npy holds 4", "same N samples"]),
    ("counts-inputs", {"features.npy": np.zeros((5, 3, 4)), "ids.npy": np.zeros((6, 3), np.int64)}, TWO,
     ["features.npy holds 5, ids.npy holds 6"]),
    ("shape", {"images.npy": np.zeros((28, 28, 5), np.float32)}, [FP32_IMAGE],
     ["input 'image' takes [1,28,28] per sample, stacked as [N,1,28,28]; images.npy holds [28,28,5]", "first axis"]),
    ("shape-fixed-dim", {"features.npy": np.zeros((5, 3, 5)), "ids.npy": np.zeros((5, 3), np.int64)}, TWO,
     ["input 'features' takes [seq,4] per sample, stacked as [N,seq,4]; features.npy holds [5,3,5]", "--shape features="]),
    ("labels-float", {"images.npy": IMG, "labels.npy": LAB.astype(np.float64)}, [FP32_IMAGE],
     ["labels.npy holds float64, not integers", "astype('int64')"]),
    ("labels-negative", {"images.npy": IMG, "labels.npy": np.array([0, 1, -1, 2, 3])}, [FP32_IMAGE],
     ["labels.npy holds a negative class id (-1 at sample 2)"]),
    ("labels-2d", {"images.npy": IMG, "labels.npy": np.zeros((5, 3), np.int64)}, [FP32_IMAGE],
     ["labels.npy holds [5,3]", "shape [N]"]),
    ("empty", {"images.npy": np.zeros((0, 1, 28, 28), np.float32)}, [FP32_IMAGE],
     ["images.npy holds no samples ([0,1,28,28])", "N >= 1"]),
    ("scalar", {"images.npy": np.float32(1)}, [FP32_IMAGE], ["images.npy holds one value"]),
    ("garbage", {"images.npy": b"not numpy at all"}, [FP32_IMAGE], ["images.npy is not a .npy file", "numpy.save"]),
    ("zero-bytes", {"images.npy": b""}, [FP32_IMAGE], ["images.npy is empty", "numpy.save"]),
    ("npz", {"images.npy": b"PK\x03\x04rest"}, [FP32_IMAGE], ["images.npy is an .npz archive", "numpy.save"]),
    ("object", {"images.npy": np.array([{"a": 1}] * 5, dtype=object)}, [FP32_IMAGE],
     ["images.npy holds Python objects (a pickled object array)", "astype('float32')"]),
    ("strings", {"images.npy": np.array([["a"]] * 5)}, [TensorSpec("image", (1, 1), "float32")],
     ["images.npy holds <U1, which input 'image' (float32) cannot take", "astype('float32')"]),
    ("floats-for-ints", {"features.npy": np.zeros((5, 3, 4)), "ids.npy": np.zeros((5, 3))}, TWO,
     ["ids.npy holds float64, but input 'ids' takes int64 (integers)", "astype('int64')"]),
    ("out-of-range", {"x.npy": np.full((5, 2), 300, np.int64)}, [TensorSpec("x", (1, 2), "int8")],
     ["x.npy holds int64 values 300..300, but input 'x' is int8 (-128..127)"]),
    ("uint8-for-quantised", {"x.npy": np.zeros((5, 2), np.uint8)},
     [TensorSpec("x", (1, 2), "int8", scale=1 / 255, zero_point=-128)],
     ["x.npy holds uint8, but input 'x' is quantised int8", "float32"]),
    ("nan-for-quantised", {"x.npy": np.array([[0.5, np.nan]] * 5)},
     [TensorSpec("x", (1, 2), "int8", scale=1 / 255, zero_point=-128)], ["x.npy holds NaN or infinite values"]),
]


@pytest.mark.parametrize(("files", "inputs", "fragments"), [r[1:] for r in REFUSALS], ids=[r[0] for r in REFUSALS])
def test_a_bad_folder_is_one_line_naming_the_file_and_the_fix(tmp_path, files, inputs, fragments):
    _write(tmp_path / "data", files)
    with pytest.raises(DatasetError) as caught:
        datasets.load(str(tmp_path / "data"), inputs, {})
    message = str(caught.value)
    assert "\n" not in message
    for fragment in fragments:
        assert fragment in message, message


def test_damaged_npy_file_is_one_line(tmp_path):
    whole = _npy_bytes(IMG, tmp_path)
    _write(tmp_path / "data", {"images.npy": whole[: len(whole) // 2]})
    with pytest.raises(DatasetError, match=r"images.npy is a damaged .npy file .*write it again with numpy.save"):
        datasets.load(str(tmp_path / "data"), [FP32_IMAGE], {})


def test_missing_folder_file_and_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match=r"dataset folder /nonexistent/calib does not exist; check the path"):
        datasets.load("npy:/nonexistent/calib", [FP32_IMAGE], {})
    with pytest.raises(DatasetError, match=r"dataset folder ./nowhere does not exist"):
        datasets.load("./nowhere", [FP32_IMAGE], {})
    np.save(tmp_path / "images.npy", IMG)
    with pytest.raises(DatasetError, match=r"is a file; give the folder that holds it"):
        datasets.load(str(tmp_path / "images.npy"), [FP32_IMAGE], {})
    with pytest.raises(DatasetError, match=r"unknown dataset 'imagenet'; use one of: synthetic.*or a folder of .npy files "
                                           r"\(docs/engines.md\)"):
        datasets.load("imagenet", [FP32_IMAGE], {})


def test_input_values_are_refused_with_a_folder(tmp_path):
    folder = _folder(tmp_path, images=IMG)
    with pytest.raises(SettingsError, match=r"--input sets synthetic inputs, but the dataset is .*drop --input"):
        datasets.load(str(folder), [FP32_IMAGE], {}, values={"image": "0"})


def _bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "agent.cli", "bench", *args], capture_output=True, text=True, timeout=300)


def test_accuracy_on_a_folder_of_the_subset_scores_as_the_subset_does(tmp_path, fmnist_subset):
    """The committed Fashion-MNIST subset written as a folder (images/255, [N,1,28,28], labels)
    scores the zoo's fp32 model exactly as ``--dataset fashion-mnist:subset`` does."""
    folder = _folder(tmp_path, images=(fmnist_subset.images.astype(np.float32) / 255.0)[:, None],
                     labels=fmnist_subset.labels)
    scores = {}
    for dataset in (str(folder), "fashion-mnist:subset"):
        out = tmp_path / f"{len(scores)}.json"
        proc = _bench("zoo:fashion-mnist-cnn/fp32.onnx", "--mode", "accuracy", "--dataset", dataset, "--profile", "smoke",
                      "--engine", "native", "--json", str(out))
        assert proc.returncode == 0, proc.stderr
        doc = json.loads(out.read_text())
        scores[dataset] = doc["kpis"]["accuracy"]
    assert doc["dataset"]["samples"] == 1000
    ours, theirs = scores[str(folder)], scores["fashion-mnist:subset"]
    assert ours["n"] == theirs["n"] == 1000 and ours["top1"] == theirs["top1"]


def test_a_bad_folder_through_the_agent_cli_is_one_error_line(tmp_path):
    folder = _folder(tmp_path, images=np.zeros((28, 28, 5), np.float32))
    proc = _bench("zoo:fashion-mnist-cnn/fp32.onnx", "--dataset", str(folder), "--profile", "smoke")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert len(errors) == 1 and "stacked as [N,1,28,28]; images.npy holds [28,28,5]" in errors[0], proc.stderr
