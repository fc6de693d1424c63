"""Image datasets by path (imagenet, coco, vww, cifar10), MLPerf's preprocessing and the inputs cache.

The data is made here, small: a few images written with OpenCV in each kind's real layout. The
preprocessing numbers are checked against hand computation: a constant colour must come out as the
reference formula says, and a gradient whose 2×2 blocks average to known values shows the resize
and the crop took the right pixels.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle

import cv2
import numpy as np
import pytest

from agent import cli, datasets
from agent.datasets import cifar10, image_preprocess, inputs_cache
from agent.errors import DatasetError, SettingsError
from agent.runtimes.base import TensorSpec
from tests.conftest import save_onnx

NCHW = TensorSpec("image", (1, 3, 32, 32), "float32")
NHWC = TensorSpec("image", (1, 32, 32, 3), "float32")
VGG_MEANS = (123.68, 116.78, 103.94)
RED, GREEN, BLUE = (0, 0, 255), (0, 255, 0), (255, 0, 0)  # BGR, as OpenCV writes them


def _image(path, bgr, size=(40, 60)):
    """A constant-colour image file (height, width); JPEG or PNG from the suffix."""
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), np.full((*size, 3), bgr, dtype=np.uint8))
    return path


def _imagenet_val_map(root, colours, labels=None):
    """MLPerf's layout: numbered images flat in root and val_map.txt; labels default to the colour's index."""
    lines = []
    for i, colour in enumerate(colours, start=1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        _image(root / name, colour, size=(40 + i, 60 - i))
        lines.append(f"{name} {(labels or [(RED, GREEN, BLUE).index(c) for c in colours])[i - 1]}")
    (root / "val_map.txt").write_text("\n".join(lines) + "\n")
    return root


def _imagenet_folders(root, colours, classes=("apple", "grass", "sky")):
    """The class-folder layout: the same numbered images under the folder of their class."""
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
    for i, colour in enumerate(colours, start=1):
        _image(root / classes[(RED, GREEN, BLUE).index(colour)] / f"ILSVRC2012_val_{i:08d}.JPEG", colour,
               size=(40 + i, 60 - i))
    return root


def _transform(bgr, preprocess, spec, shapes=None):
    pre = image_preprocess.get(preprocess)
    return image_preprocess.transform(bgr, pre, image_preprocess.image_input([spec], shapes or {}, pre, "test"))


# --- the preprocessing numbers -------------------------------------------------------------------------------


@pytest.mark.parametrize(("preprocess", "expected"), [
    ("imagenet-vgg", [200 - 123.68, 20 - 116.78, 10 - 103.94]),  # RGB minus MLPerf's means
    ("imagenet-mobilenet", [(200 / 255 - 0.5) * 2, (20 / 255 - 0.5) * 2, (10 / 255 - 0.5) * 2]),
    ("imagenet-pytorch", [(200 / 255 - 0.485) / 0.229, (20 / 255 - 0.456) / 0.224, (10 / 255 - 0.406) / 0.225]),
    ("imagenet-efficientnet", [(200 - 127) / 128, (20 - 127) / 128, (10 - 127) / 128]),
    ("coco-ssd-mobilenet", [(200 - 127.5) / 127.5, (20 - 127.5) / 127.5, (10 - 127.5) / 127.5]),
    ("vww-96", [200 / 255, 20 / 255, 10 / 255]),
    ("cifar10-tiny", [200, 20, 10]),
])
def test_a_constant_colour_comes_out_as_the_reference_formula_says(preprocess, expected):
    bgr = np.full((45, 70, 3), (10, 20, 200), dtype=np.uint8)  # blue 10, green 20, red 200
    out = _transform(bgr, preprocess, NHWC)
    assert out.shape == (32, 32, 3) and out.dtype == np.float32
    for channel, value in enumerate(expected):
        assert np.allclose(out[:, :, channel], value, rtol=0, atol=1e-5), (channel, out[0, 0])


def test_letterbox_pads_with_grey_above_and_below_a_wide_image():
    bgr = np.full((100, 200, 3), (10, 20, 200), dtype=np.uint8)
    out = _transform(bgr, "coco-yolo", TensorSpec("images", (1, 3, 64, 64), "float32"))
    # r = min(64/100, 64/200) = 0.32: the image becomes 64 wide, 32 high, with 16 rows of grey 114 above and below
    assert out.shape == (3, 64, 64)
    assert np.allclose(out[:, :16], 114 / 255) and np.allclose(out[:, 48:], 114 / 255)
    assert np.allclose(out[:, 16:48].reshape(3, -1).T, [200 / 255, 20 / 255, 10 / 255])


def test_imagenet_pytorch_resizes_the_short_side_and_crops_the_rounded_middle():
    """torchvision's resize(256) of a 70×45 (w×h) image: 45 → 256, 70 → int(256·70/45) = 398; then the middle
    224: left = round((398 − 224)/2) = 87, top = round(32/2) = 16. A vertical colour edge at x = 35 of the
    original lands at 35·398/70 = 199 of the resized image, 199 − 87 = 112 of the crop: between the centres of
    columns 111 and 112."""
    bgr = np.zeros((45, 70, 3), dtype=np.uint8)
    bgr[:, 35:] = (0, 0, 255)  # red on the right half
    out = _transform(bgr, "imagenet-pytorch", TensorSpec("x", (1, 224, 224, 3), "float32"))
    red = out[:, :, 0] * 0.229 + 0.485  # back to x/255
    assert out.shape == (224, 224, 3)
    assert np.allclose(red[:, :108], 0, atol=1e-5) and np.allclose(red[:, 116:], 1, atol=1e-5)
    # the (antialiased, upscaling) bilinear ramp is centred on the edge, between columns 111 and 112
    assert red[0, 111] < 0.5 < red[0, 112] and red[0, 111] + red[0, 112] == pytest.approx(1, abs=1e-5)


def _gradient(height, width):
    """BGR: blue climbs with x and green with y in steps whose 2×2 blocks average to 2·(X mod 127)+1 and
    2·(Y mod 127)+1 at the half-size pixel (X, Y); red is 50."""
    y, x = np.mgrid[0:height, 0:width]
    blue = 2 * ((x // 2) % 127) + 2 * (y % 2)
    green = 2 * ((y // 2) % 127) + 2 * (x % 2)
    return np.stack([blue, green, np.full_like(x, 50)], axis=-1).astype(np.uint8)


@pytest.mark.parametrize(("height", "width", "top", "left"),
                         [(512, 1024, 16, 144), (1024, 512, 144, 16), (512, 1026, 16, 144)])
def test_vgg_halves_the_short_side_to_256_and_takes_the_middle_224(height, width, top, left):
    """512×1024 → INTER_AREA to 256×512 (short side 224/0.875 = 256; an exact 2× average) → rows 16..239 and
    columns 144..367; the portrait image likewise; 1026 wide → 513, whose crop offset 144.5 MLPerf's
    center_crop rounds down to 144."""
    out = _transform(_gradient(height, width), "imagenet-vgg", TensorSpec("x", (1, 224, 224, 3), "float32"))
    rows, cols = np.mgrid[top:top + 224, left:left + 224]
    assert np.array_equal(out[:, :, 0], np.full((224, 224), 50 - VGG_MEANS[0], dtype=np.float32))
    assert np.array_equal(out[:, :, 1], (2 * (rows % 127) + 1).astype(np.float32) - np.float32(VGG_MEANS[1]))
    assert np.array_equal(out[:, :, 2], (2 * (cols % 127) + 1).astype(np.float32) - np.float32(VGG_MEANS[2]))


def test_nchw_holds_the_nhwc_values_channel_first():
    bgr = _gradient(90, 70)
    for preprocess in ("imagenet-vgg", "coco-ssd-mobilenet", "vww-96"):
        nhwc, nchw = _transform(bgr, preprocess, NHWC), _transform(bgr, preprocess, NCHW)
        assert nchw.shape == (3, 32, 32) and np.array_equal(nchw, nhwc.transpose(2, 0, 1))


def test_free_sizes_take_shape_else_the_preprocessing_default():
    free = TensorSpec("image", ("N", 3, "H", "W"), "float32")
    pick = image_preprocess.image_input
    assert pick([free], {}, image_preprocess.get("imagenet-vgg"), "t").shape == (1, 3, 224, 224)
    assert pick([free], {}, image_preprocess.get("coco-ssd-mobilenet"), "t").shape == (1, 3, 300, 300)
    assert pick([free], {"image": (1, 3, 64, 48)}, image_preprocess.get("vww-96"), "t").shape == (1, 3, 64, 48)
    channels_last = pick([TensorSpec("x", (None, None, None, 3), "uint8")], {}, image_preprocess.get("vww-96"), "t")
    assert channels_last.shape == (1, 96, 96, 3) and not channels_last.channels_first and not channels_last.real


def test_quantised_and_integer_inputs():
    bgr = np.full((40, 40, 3), (10, 20, 200), dtype=np.uint8)
    spec = TensorSpec("x", (1, 8, 8, 3), "int8", scale=1 / 128, zero_point=0)
    real = _transform(bgr, "imagenet-mobilenet", spec)  # real values; quantised when fed (prepare)
    fed = image_preprocess.prepare(1, lambda i: bgr, [spec], {}, "imagenet-mobilenet", "t")
    assert fed.feeds[0]["x"].dtype == np.int8 and fed.feeds[0]["x"].shape == (1, 8, 8, 3)
    assert np.array_equal(fed.feeds[0]["x"][0], np.clip(np.round(real.astype(np.float64) * 128), -128, 127).astype(np.int8))
    assert np.array_equal(fed.raw[0], real)  # the values before quantisation, to fingerprint
    # Tiny IC's int8 model (scale 1, zero point -128) gets pixel - 128, as its tflite_test.py feeds it
    tiny = TensorSpec("x", (1, 32, 32, 3), "int8", scale=1.0, zero_point=-128)
    ic = image_preprocess.prepare(1, lambda i: bgr, [tiny], {}, "cifar10-tiny", "t").feeds[0]["x"]
    assert np.array_equal(ic[0, 0, 0], np.array([200 - 128, 20 - 128, 10 - 128], dtype=np.int8))
    # TensorFlow's SSD image_tensor (uint8, no quantisation) takes the resized pixels, RGB
    ssd = image_preprocess.prepare(1, lambda i: bgr, [TensorSpec("t", (1, 30, 30, 3), "uint8")], {}, "coco-ssd-mobilenet", "t")
    assert ssd.feeds[0]["t"].dtype == np.uint8 and np.all(ssd.feeds[0]["t"][0] == [200, 20, 10])


# --- the loaders ---------------------------------------------------------------------------------------------

COLOURS = [RED, GREEN, BLUE, GREEN, RED]


def test_imagenet_val_map_and_class_folders_give_the_same_samples(tmp_path):
    by_map = datasets.load(f"imagenet:{_imagenet_val_map(tmp_path / 'map', COLOURS)}", [NCHW], {})
    by_folder = datasets.load(f"imagenet:{_imagenet_folders(tmp_path / 'folders', COLOURS)}", [NCHW], {})
    assert by_map.labels.tolist() == by_folder.labels.tolist() == [0, 1, 2, 1, 0]
    assert by_map.task == "classification" and by_map.n_classes == 1000 and by_folder.n_classes == 3
    every = np.arange(5)
    assert by_map.fingerprint(every) == by_folder.fingerprint(every)  # same images, same order, same values
    assert [f["image"].shape for f in by_map.feeds] == [(1, 3, 32, 32)] * 5
    red = by_map.feeds[0]["image"][0]
    assert red[0].mean() > 100 and red[1].mean() < -100 and red[2].mean() < -90  # vgg by default: R - 123.68 > 0
    assert by_map.origin == {"kind": "imagenet", "path": str((tmp_path / "map").resolve()), "limit": None,
                             "preprocess": "imagenet-vgg", "inputs_cache": None}


def test_imagenet_n_takes_the_first_n_in_val_map_order(tmp_path):
    root = _imagenet_val_map(tmp_path, COLOURS)
    whole = datasets.load(f"imagenet:{root}", [NHWC], {}, preprocess="imagenet-mobilenet")
    first = datasets.load(f"imagenet:{root}:2", [NHWC], {}, preprocess="imagenet-mobilenet")
    assert len(first) == 2 and first.labels.tolist() == [0, 1] and first.name == f"imagenet:{root}:2"
    assert first.fingerprint(np.arange(2)) == whole.fingerprint(np.arange(2))
    assert first.origin["limit"] == 2 and first.origin["preprocess"] == "imagenet-mobilenet"
    assert np.allclose(first.feeds[1]["image"][0, :, :, 1], 1.0, atol=0.03)  # green at +1 in [-1, 1]


def test_wordnet_folders_must_be_all_1000(tmp_path):
    _imagenet_folders(tmp_path, COLOURS, classes=("n01440764", "n01443537", "n01484850"))
    with pytest.raises(DatasetError, match=r"3 WordNet class folders, not ImageNet's 1000; .* keep all 1000"):
        datasets.load(f"imagenet:{tmp_path}", [NCHW], {})


def _coco(root, images):
    """A mini COCO: annotations/instances_val2017.json listing ``images`` (id, colour, (h, w)), files in val2017/."""
    entries = []
    for image_id, colour, size in images:
        name = f"{image_id:012d}.jpg"
        _image(root / "val2017" / name, colour, size)
        entries.append({"id": image_id, "file_name": name, "height": size[0], "width": size[1]})
    doc = {"images": entries, "annotations": [{"id": 1, "image_id": images[0][0], "category_id": 1,
                                               "bbox": [1, 2, 3, 4], "area": 12, "iscrowd": 0}],
           "categories": [{"id": 1, "name": "person"}]}
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    return root


def test_coco_samples_are_sorted_by_image_id_with_their_truth(tmp_path):
    root = _coco(tmp_path, [(139, RED, (48, 64)), (7, GREEN, (30, 50)), (42, BLUE, (64, 32))])
    spec = TensorSpec("image_tensor:0", (1, None, None, 3), "uint8")
    samples = datasets.load(f"coco:{root}:2", [spec], {})
    assert samples.task == "detection" and samples.labels.tolist() == [7, 42]
    assert samples.truth == {"annotations": str((root / "annotations" / "instances_val2017.json").resolve()),
                             "image_ids": [7, 42], "sizes": [(30, 50), (64, 32)]}
    feed = samples.feeds[0]["image_tensor:0"]
    assert feed.shape == (1, 300, 300, 3) and feed.dtype == np.uint8  # MLPerf's SSD-MobileNet size, raw pixels
    assert abs(int(feed[0, 150, 150, 1]) - 255) <= 3 and int(feed[0, 150, 150, 0]) <= 3  # green, RGB order


def test_coco_refuses_an_image_the_json_names_but_the_folder_lacks(tmp_path):
    root = _coco(tmp_path, [(7, RED, (30, 40)), (9, GREEN, (30, 40))])
    (root / "val2017" / f"{9:012d}.jpg").unlink()
    datasets.load(f"coco:{root}:1", [NHWC], {})  # the first image by id is there
    with pytest.raises(DatasetError, match=r"names 1 image\(s\) of the 2 chosen that are not in .*val2017, first 0+9\.jpg"):
        datasets.load(f"coco:{root}", [NHWC], {})
    (root / "annotations" / "instances_val2017.json").unlink()
    with pytest.raises(DatasetError, match=r"has no annotations/instances_val2017\.json"):
        datasets.load(f"coco:{root}", [NHWC], {})


def test_vww_is_non_person_then_person_sorted_by_path(tmp_path):
    for name in ("b.jpg", "a.jpg"):
        _image(tmp_path / "person" / name, RED, (96, 96))
    _image(tmp_path / "non_person" / "c.jpg", BLUE, (96, 96))
    samples = datasets.load(f"vww:{tmp_path}", [TensorSpec("input_1", (1, 96, 96, 3), "float32")], {})
    assert samples.labels.tolist() == [0, 1, 1] and samples.n_classes == 2
    assert np.allclose(samples.feeds[0]["input_1"][0, :, :, 2], 1.0, atol=0.02)  # blue at 1 in [0, 1]
    (tmp_path / "non_person" / "c.jpg").unlink()
    (tmp_path / "non_person").rmdir()
    with pytest.raises(DatasetError, match="has no non_person/ folder"):
        datasets.load(f"vww:{tmp_path}", [NHWC], {})


def _cifar_batch(path, images, labels, protocol=2):
    """A CIFAR-10 python batch: uint8 rows of the R, G and B planes, and the labels."""
    rows = np.stack([img.transpose(2, 0, 1).reshape(-1) for img in images]).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:
        pickle.dump({b"batch_label": b"testing batch 1 of 1", b"labels": list(labels), b"data": rows,
                     b"filenames": [b"x.png"] * len(labels)}, f, protocol=protocol)


@pytest.mark.parametrize("protocol", [2, pickle.HIGHEST_PROTOCOL])
def test_cifar10_keeps_file_order_and_the_raw_pixels(tmp_path, protocol):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(4)]  # RGB
    _cifar_batch(tmp_path / "cifar-10-batches-py" / "test_batch", images, [3, 8, 8, 0], protocol)
    samples = datasets.load(f"cifar10:{tmp_path}:3", [TensorSpec("input_1", (1, 32, 32, 3), "float32")], {})
    assert samples.labels.tolist() == [3, 8, 8] and samples.n_classes == 10
    for feed, img in zip(samples.feeds, images, strict=False):
        assert np.array_equal(feed["input_1"][0], img.astype(np.float32))


def test_cifar10_refuses_a_pickle_that_runs_code(tmp_path):
    marker = tmp_path / "ran"

    class Exploit:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    (tmp_path / "test_batch").write_bytes(pickle.dumps({b"data": Exploit(), b"labels": [0]}))
    with pytest.raises(DatasetError, match=r"is not a CIFAR-10 python batch .*system"):
        cifar10.read_batch(tmp_path / "test_batch")
    assert not marker.exists()


# --- clear failures ------------------------------------------------------------------------------------------


def test_clear_failures_of_paths_and_counts(tmp_path):
    with pytest.raises(DatasetError, match=r"imagenet dataset folder .*nowhere does not exist; check the path"):
        datasets.load(f"imagenet:{tmp_path / 'nowhere'}", [NCHW], {})
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"has neither val_map\.txt nor class sub-folders"):
        datasets.load(f"imagenet:{tmp_path / 'empty'}", [NCHW], {})
    root = _imagenet_val_map(tmp_path / "val", COLOURS)
    with pytest.raises(DatasetError, match=r"holds 5 samples, fewer than the 9 asked for; ask for at most :5"):
        datasets.load(f"imagenet:{root}:9", [NCHW], {})
    with pytest.raises(DatasetError, match="N is 0"):
        datasets.load(f"imagenet:{root}:0", [NCHW], {})
    (root / "ILSVRC2012_val_00000002.JPEG").write_bytes(b"not a jpeg at all")
    with pytest.raises(DatasetError, match=r"cannot read image .*ILSVRC2012_val_00000002.JPEG"):
        datasets.load(f"imagenet:{root}", [NCHW], {})
    datasets.load(f"imagenet:{root}:1", [NCHW], {})  # the damaged image is not among the first one
    (root / "val_map.txt").write_text("ILSVRC2012_val_00000001.JPEG\n")
    with pytest.raises(DatasetError, match=r"val_map\.txt line 1 is"):
        datasets.load(f"imagenet:{root}", [NCHW], {})
    with pytest.raises(DatasetError, match=r"unknown dataset 'imagenet'.*\(here imagenet:PATH\[:N\]"):
        datasets.load("imagenet", [NCHW], {})


@pytest.mark.parametrize(("inputs", "fragment"), [
    ([NCHW, TensorSpec("mask", (1, 4), "float32")], "the model has 2 inputs (image, mask)"),
    ([TensorSpec("x", (1, 784), "float32")], "input 'x' is 1x784 float32"),
    ([TensorSpec("x", (1, 1, 28, 28), "float32")], "input 'x' is 1x1x28x28 float32 (no axis 1 or 3 of size 3)"),
    ([TensorSpec("x", (1, 3, 8, 8), "int8")], "input 'x' is 1x3x8x8 int8, which cannot hold their values"),
    ([TensorSpec("x", (2, 3, 8, 8), "float32")], "one 3-channel RGB image per sample (batch 1), but input 'x' is 2x3x8x8"),
])
def test_a_model_input_that_cannot_take_images_is_named(tmp_path, inputs, fragment):
    root = _imagenet_val_map(tmp_path, COLOURS[:1])
    with pytest.raises(DatasetError) as err:
        datasets.load(f"imagenet:{root}", inputs, {})
    assert fragment in str(err.value)


def test_unknown_preprocessing_and_misplaced_flags(tmp_path):
    root = _imagenet_val_map(tmp_path, COLOURS[:1])
    with pytest.raises(SettingsError, match=r"unknown image preprocessing 'resnet'.*known: imagenet-vgg, imagenet-mobilenet"):
        datasets.load(f"imagenet:{root}", [NCHW], {}, preprocess="resnet")
    with pytest.raises(SettingsError, match="--preprocess applies to datasets by path"):
        datasets.load("synthetic", [NCHW], {}, preprocess="imagenet-vgg")
    with pytest.raises(SettingsError, match="--inputs-cache applies to datasets by path"):
        datasets.load("fashion-mnist", [NCHW], {}, inputs_cache=tmp_path / "cache")
    (tmp_path / "file").write_text("")
    with pytest.raises(SettingsError, match="is a file; give a folder"):
        datasets.load(f"imagenet:{root}", [NCHW], {}, inputs_cache=tmp_path / "file" / "cache")


# --- the inputs cache ----------------------------------------------------------------------------------------


def _corrupt_keeping_size_and_time(path):
    """Zero a file's bytes but keep its size and times: the cache key cannot tell, decoding would."""
    stat = path.stat()
    path.write_bytes(b"\0" * stat.st_size)
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_a_cached_load_decodes_nothing_and_a_changed_file_recomputes(tmp_path):
    root = _coco(tmp_path / "coco", [(7, RED, (30, 50)), (42, GREEN, (40, 40))])
    spec, cache = TensorSpec("x", (1, 3, 16, 16), "int8", scale=1 / 128, zero_point=0), tmp_path / "cache"
    first = datasets.load(f"coco:{root}", [spec], {}, inputs_cache=cache)
    assert first.origin["inputs_cache"]["hit"] is False and len(list(cache.glob("*.npz"))) == 1
    for image in (root / "val2017").iterdir():
        _corrupt_keeping_size_and_time(image)
    again = datasets.load(f"coco:{root}", [spec], {}, inputs_cache=cache)
    assert again.origin["inputs_cache"] == first.origin["inputs_cache"] | {"hit": True}
    assert [f["x"].tobytes() for f in again.feeds] == [f["x"].tobytes() for f in first.feeds]
    assert again.feeds[0]["x"].dtype == np.int8 and again.labels.tolist() == [7, 42] and again.task == "detection"
    assert again.truth["sizes"] == [[30, 50], [40, 40]] and again.truth["image_ids"] == [7, 42]
    assert again.fingerprint(np.arange(2)) == first.fingerprint(np.arange(2))
    float_input = TensorSpec("x", (1, 3, 16, 16), "float32")  # another input spec: another key, decoded again
    with pytest.raises(DatasetError, match="cannot read image"):
        datasets.load(f"coco:{root}", [float_input], {}, inputs_cache=cache)
    os.utime(root / "val2017" / f"{42:012d}.jpg")  # touched: the key changes, the damaged images are decoded
    with pytest.raises(DatasetError, match="cannot read image"):
        datasets.load(f"coco:{root}", [spec], {}, inputs_cache=cache)


def test_float_feeds_are_stored_once_and_a_damaged_entry_is_recomputed(tmp_path):
    root, cache = _imagenet_val_map(tmp_path / "val", COLOURS), tmp_path / "cache"
    first = datasets.load(f"imagenet:{root}:3", [NHWC], {}, inputs_cache=cache)
    (entry,) = cache.glob("*.npz")
    with np.load(entry) as npz:
        assert "raw" not in npz.files and npz["feed.0"].shape == (3, 32, 32, 3)  # raw is the float32 feeds
    again = datasets.load(f"imagenet:{root}:3", [NHWC], {}, inputs_cache=cache)
    assert again.origin["inputs_cache"]["hit"] and again.fingerprint(np.arange(3)) == first.fingerprint(np.arange(3))
    entry.write_bytes(entry.read_bytes()[:100])
    redo = datasets.load(f"imagenet:{root}:3", [NHWC], {}, inputs_cache=cache)
    assert redo.origin["inputs_cache"]["hit"] is False and redo.fingerprint(np.arange(3)) == first.fingerprint(np.arange(3))
    assert inputs_cache.fetch(cache, redo.origin["inputs_cache"]["key"]) is not None  # written again, whole


# --- end to end ----------------------------------------------------------------------------------------------


def _colour_classifier(path):
    """scores = the mean of each input channel (GlobalAveragePool, then an identity Gemm): after MLPerf's
    VGG preprocessing a red image scores highest on class 0, green on 1, blue on 2."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]),
         helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("Gemm", ["flat", "w", "b"], ["scores"])],
        "colours", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 3])],
        [numpy_helper.from_array(np.eye(3, dtype=np.float32), "w"), numpy_helper.from_array(np.zeros(3, np.float32), "b")])
    return save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def test_bench_scores_an_imagenet_folder_and_replays_it(tmp_path, capsys):
    model = _colour_classifier(tmp_path / "colours.onnx")
    root = _imagenet_val_map(tmp_path / "val", COLOURS, labels=[0, 1, 2, 1, 2])  # the last one is labelled wrong
    out, again = tmp_path / "first.json", tmp_path / "again.json"
    flags = ["--mode", "accuracy", "--profile", "smoke", "--engine", "native", "--warmup", "1", "--threads", "1"]
    code = cli.main(["bench", str(model), *flags, "--dataset", f"imagenet:{root}", "--inputs-cache", str(tmp_path / "cache"),
                     "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["kpis"]["accuracy"]["top1"] == pytest.approx(4 / 5) and doc["kpis"]["accuracy"]["n"] == 5
    block = doc["dataset"]
    assert block["kind"] == "imagenet" and block["path"] == str(root.resolve()) and block["limit"] is None
    assert block["preprocess"] == "imagenet-vgg" and block["inputs_cache"]["hit"] is False
    assert len(block["inputs_cache"]["key"]) == 64
    line = " ".join(doc["reproduce"]["argv"])
    assert f"--dataset imagenet:{root} --preprocess imagenet-vgg --inputs-cache {(tmp_path / 'cache').resolve()}" in line
    assert cli.main(["bench", "--from", str(out), "--json", str(again)]) == 0, capsys.readouterr().err
    redo = json.loads(again.read_text())
    assert redo["dataset"]["inputs_cache"] == block["inputs_cache"] | {"hit": True}
    assert redo["kpis"]["accuracy"]["samples_sha256"] == doc["kpis"]["accuracy"]["samples_sha256"]
    assert redo["kpis"]["accuracy"]["top1"] == pytest.approx(4 / 5)


def test_bench_names_a_bad_preprocessing_in_one_line(tmp_path, capsys):
    model = _colour_classifier(tmp_path / "colours.onnx")
    root = _imagenet_val_map(tmp_path / "val", COLOURS[:1])
    code = cli.main(["bench", str(model), "--mode", "accuracy", "--dataset", f"imagenet:{root}", "--preprocess", "vgg"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "unknown image preprocessing 'vgg'" in err[0] and "imagenet-mobilenet" in err[0]



def test_a_zoo_model_brings_its_preprocessing_unless_one_is_given(tmp_path, monkeypatch, capsys):
    """The manifest's ``preprocess`` is the default for a dataset by path; --preprocess wins; other datasets get none."""
    (tmp_path / "zoo" / "colours").mkdir(parents=True)
    model = _colour_classifier(tmp_path / "zoo" / "colours" / "fp32.onnx")
    facts = {"sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "size_bytes": model.stat().st_size, "precision": "fp32"}
    colours = {"preprocess": "imagenet-mobilenet", "files": {"fp32.onnx": facts}}
    manifest = {"schema": "edgeperf.zoo/2", "models": {"colours": colours}}
    (tmp_path / "zoo" / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("EDGEPERF_ZOO_MANIFEST", str(tmp_path / "zoo" / "manifest.json"))
    root = _imagenet_val_map(tmp_path / "val", COLOURS)
    assert datasets.preprocess_for(f"imagenet:{root}", "zoo:colours/fp32.onnx", None) == "imagenet-mobilenet"
    assert datasets.preprocess_for(f"imagenet:{root}", "zoo:colours/fp32.onnx", "imagenet-vgg") == "imagenet-vgg"
    assert datasets.preprocess_for("synthetic", "zoo:colours/fp32.onnx", None) is None
    assert datasets.preprocess_for(f"imagenet:{root}", str(model), None) is None  # a file: the kind's default
    out = tmp_path / "zoo.json"
    code = cli.main(["bench", "zoo:colours/fp32.onnx", "--mode", "accuracy", "--profile", "smoke", "--engine", "native",
                     "--warmup", "1", "--threads", "1", "--dataset", f"imagenet:{root}:3", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    doc = json.loads(out.read_text())
    assert doc["dataset"]["preprocess"] == "imagenet-mobilenet" and doc["dataset"]["limit"] == 3
    assert doc["kpis"]["accuracy"]["top1"] == 1.0 and "--preprocess imagenet-mobilenet" in doc["reproduce"]["command"]
