"""MLPerf's image preprocessing, by id, and images turned into a model's input.

A model scores what its training preprocessing fed it: ResNet-50 v1.5 fed MobileNet's [-1, 1]
instead of its mean-subtracted pixels loses most of its top-1 without any error. So each id below
reproduces one reference function, with OpenCV as the reference uses it (same calls, same
interpolation, same float32 arithmetic in the same order):

- ``imagenet-vgg``: MLPerf Inference's ``pre_process_vgg`` (ResNet-50 v1.5): BGR→RGB, resize so the
  short side is size/0.875 keeping the aspect ratio (``resize_with_aspectratio``, ``cv2.INTER_AREA``),
  ``center_crop`` to size×size, minus the RGB means [123.68, 116.78, 103.94].
- ``imagenet-mobilenet``: ``pre_process_mobilenet``: the same geometry with ``cv2.INTER_LINEAR``,
  then x/255 − 0.5, ×2: [-1, 1].
- ``imagenet-pytorch``: ``pre_process_imagenet_pytorch`` (the ONNX model zoo's ResNet-50 and
  MobileNetV2, torchvision's training transforms): BGR→RGB, a PIL image, torchvision's ``resize(256,
  BILINEAR)`` (the short side to 256 = size/0.875, the long side ``int(256·long/short)``, Pillow's
  antialiased bilinear), ``center_crop(224)`` with offsets ``int(round((side − 224)/2))``, x/255, then
  (x − [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]. Pillow does what torchvision asks of it, so
  torchvision itself is not needed.
- ``imagenet-efficientnet``: EfficientNet-Lite's (x − 127) / 128 on ``pre_process_mobilenet``'s
  geometry; not an MLPerf function. EfficientNet's own pipeline crops the same 87.5 % first and
  resizes bicubically after, so its pixels can differ slightly from these.
- ``coco-ssd-mobilenet``: ``pre_process_coco_pt_mobilenet``: BGR→RGB, a plain resize to the input
  size (``maybe_resize``: float32, ``cv2.INTER_LINEAR``), (x − 127.5) / 127.5: [-1, 1]. A uint8
  input without quantisation (TensorFlow's SSD ``image_tensor``) gets ``pre_process_coco_mobilenet``'s
  pixels instead: the same resize, cast to uint8.
- ``coco-yolo``: Ultralytics' ``LetterBox`` (YOLO is not in MLPerf's reference): scale to fit the input
  keeping the aspect ratio (``cv2.INTER_LINEAR``), pad evenly with grey 114, BGR→RGB, x/255. A box maps
  back with r = min(H/h, W/w) and the pads (W − round(w·r))/2, (H − round(h·r))/2.
- ``vww-96``: MLPerf Tiny's visual wake words (``train_vww.py``: Keras ``flow_from_directory`` with
  ``rescale=1/255``, RGB): x/255 in [0, 1]; the data set's images are already 96×96, others are resized
  nearest-neighbour like Keras' ``load_img`` (``cv2.INTER_NEAREST_EXACT``, PIL's rounding).
- ``cifar10-tiny``: MLPerf Tiny's image classification (``train.py``/``test.py``): the raw 0–255 RGB
  values, unscaled; its int8 model's input (scale 1, zero point −128) then quantises them to x − 128,
  exactly ``tflite_test.py``'s ``test_imgs - 128``. Other sizes are resized with ``cv2.INTER_AREA``.

The model's input spec decides the rest: NCHW or NHWC (where its 3 channels sit), the size (its
height and width; free ones from ``--shape``, else the id's default size), and the dtype: floats
take the real values, a quantised input gets them quantised with its own scale and zero point
(``agent.runtimes.quant.to_model_input``), and an integer input without quantisation takes the
0–255 pixels after the geometry. OpenCV is imported only when images are read.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from agent.datasets.input_values import is_string
from agent.errors import DatasetError, SettingsError
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input
from agent.runtimes.shapes import concrete_shape

CROP = 87.5  # MLPerf's resize_with_aspectratio(scale=87.5): the crop keeps 87.5 % of the short side
_VGG_MEANS = np.array([123.68, 116.78, 103.94], dtype=np.float32)
_YOLO_PAD = 114
IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".webp")  # files the by-path image datasets read (any case)


def cv2() -> Any:
    """OpenCV, imported on first use (the ``datasets`` extra), or one line saying how to install it."""
    try:
        import cv2 as module
    except ImportError:
        raise DatasetError("reading images needs OpenCV, which is not installed; "
                           "pip install 'edgeperf[datasets]' (opencv-python-headless)") from None
    return module


def _rgb(bgr: np.ndarray) -> np.ndarray:
    return cv2().cvtColor(bgr, cv2().COLOR_BGR2RGB)


def resize_with_aspectratio(img: np.ndarray, out_height: int, out_width: int, inter: int) -> np.ndarray:
    """MLPerf's ``resize_with_aspectratio``: the short side to out/0.875 (int), the long side in proportion (int)."""
    height, width = img.shape[:2]
    new_height, new_width = int(100.0 * out_height / CROP), int(100.0 * out_width / CROP)
    if height > width:
        w, h = new_width, int(new_height * height / width)
    else:
        h, w = new_height, int(new_width * width / height)
    return cv2().resize(img, (w, h), interpolation=inter)


def center_crop(img: np.ndarray, out_height: int, out_width: int) -> np.ndarray:
    """MLPerf's ``center_crop``: the middle out_height×out_width, offsets rounded down."""
    height, width = img.shape[:2]
    left, right = int((width - out_width) / 2), int((width + out_width) / 2)
    top, bottom = int((height - out_height) / 2), int((height + out_height) / 2)
    return img[top:bottom, left:right]


def _cropped(inter: str) -> Callable[[np.ndarray, int, int], np.ndarray]:
    def geometry(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
        img = resize_with_aspectratio(_rgb(bgr), height, width, getattr(cv2(), inter))
        return np.asarray(center_crop(img, height, width), dtype=np.float32)
    return geometry


def _resized(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """MLPerf's ``maybe_resize``: float32 first, BGR→RGB, a plain resize to width×height."""
    img = _rgb(np.array(bgr, dtype=np.float32))
    return cv2().resize(img, (width, height), interpolation=cv2().INTER_LINEAR)


def letterbox(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Ultralytics' ``LetterBox``: fit keeping the aspect ratio, pad the rest evenly with grey 114."""
    h, w = bgr.shape[:2]
    r = min(height / h, width / w)
    new_w, new_h = round(w * r), round(h * r)
    dw, dh = (width - new_w) / 2, (height - new_h) / 2
    img = bgr if (new_w, new_h) == (w, h) else cv2().resize(bgr, (new_w, new_h), interpolation=cv2().INTER_LINEAR)
    top, bottom, left, right = round(dh - 0.1), round(dh + 0.1), round(dw - 0.1), round(dw + 0.1)
    img = cv2().copyMakeBorder(img, top, bottom, left, right, cv2().BORDER_CONSTANT, value=(_YOLO_PAD,) * 3)
    return np.asarray(_rgb(img), dtype=np.float32)


def _torchvision_resize_crop(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
    """torchvision's ``resize(round(size/0.875))`` then ``center_crop(size)`` on a PIL image, as
    ``pre_process_imagenet_pytorch`` calls them (256 and 224 for a 224 input)."""
    from PIL import Image  # the datasets extra; only this id needs it

    img = Image.fromarray(_rgb(bgr))
    short = round(100.0 * min(height, width) / CROP)
    w, h = img.size
    size = (short, int(short * h / w)) if w <= h else (int(short * w / h), short)
    img = img.resize(size, Image.BILINEAR)
    top, left = round((size[1] - height) / 2.0), round((size[0] - width) / 2.0)
    return np.asarray(img.crop((left, top, left + width, top + height)), dtype=np.float32)


def _sized(inter: str) -> Callable[[np.ndarray, int, int], np.ndarray]:
    """BGR→RGB, resized only when the image is not already height×width (Tiny's data is)."""
    def geometry(bgr: np.ndarray, height: int, width: int) -> np.ndarray:
        img = _rgb(bgr)
        if img.shape[:2] != (height, width):
            img = cv2().resize(img, (width, height), interpolation=getattr(cv2(), inter))
        return np.asarray(img, dtype=np.float32)
    return geometry


def _vgg(x: np.ndarray) -> np.ndarray:
    x -= _VGG_MEANS
    return x


def _mobilenet(x: np.ndarray) -> np.ndarray:
    x /= 255.0
    x -= 0.5
    x *= 2
    return x


_TORCH_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
_TORCH_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)


def _torchvision(x: np.ndarray) -> np.ndarray:
    x /= 255.0
    x -= _TORCH_MEAN
    x /= _TORCH_STD
    return x


def _efficientnet(x: np.ndarray) -> np.ndarray:
    x -= 127.0
    x /= 128.0
    return x


def _coco_mobilenet(x: np.ndarray) -> np.ndarray:
    x -= 127.5
    x /= 127.5
    return x


def _unit(x: np.ndarray) -> np.ndarray:
    x /= 255.0
    return x


def _pixels(x: np.ndarray) -> np.ndarray:
    return x


@dataclass(frozen=True)
class Preprocess:
    """One id: the geometry (BGR uint8 HWC in, RGB float32 height×width×3 out, values 0–255) and the
    normalisation to real values (in place on float32), with the default size for free dimensions."""

    id: str
    reference: str
    size: int
    geometry: Callable[[np.ndarray, int, int], np.ndarray]
    normalise: Callable[[np.ndarray], np.ndarray]


PREPROCESSES = {p.id: p for p in (
    Preprocess("imagenet-vgg", "MLPerf pre_process_vgg", 224, _cropped("INTER_AREA"), _vgg),
    Preprocess("imagenet-mobilenet", "MLPerf pre_process_mobilenet", 224, _cropped("INTER_LINEAR"), _mobilenet),
    Preprocess("imagenet-pytorch", "MLPerf pre_process_imagenet_pytorch", 224, _torchvision_resize_crop, _torchvision),
    Preprocess("imagenet-efficientnet", "EfficientNet-Lite (x-127)/128", 224, _cropped("INTER_LINEAR"), _efficientnet),
    Preprocess("coco-ssd-mobilenet", "MLPerf pre_process_coco_pt_mobilenet", 300, _resized, _coco_mobilenet),
    Preprocess("coco-yolo", "Ultralytics LetterBox, /255", 640, letterbox, _unit),
    Preprocess("vww-96", "MLPerf Tiny visual wake words, /255", 96, _sized("INTER_NEAREST_EXACT"), _unit),
    Preprocess("cifar10-tiny", "MLPerf Tiny image classification, raw 0-255", 32, _sized("INTER_AREA"), _pixels),
)}


def get(preprocess: str) -> Preprocess:
    """The preprocessing ``preprocess`` names, or one line listing the known image ids."""
    found = PREPROCESSES.get(preprocess)
    if found is None:
        raise SettingsError(f"unknown image preprocessing {preprocess!r} (--preprocess); known: {', '.join(PREPROCESSES)}")
    return found


@dataclass(frozen=True)
class ImageInput:
    """The one model input images are fed to: its feed shape, layout and whether it takes real values."""

    spec: TensorSpec
    shape: tuple[int, ...]
    channels_first: bool
    real: bool  # float or quantised: the normalised values; else the 0-255 pixels

    @property
    def height(self) -> int:
        return self.shape[2] if self.channels_first else self.shape[1]

    @property
    def width(self) -> int:
        return self.shape[3] if self.channels_first else self.shape[2]


def _fixed(dim: Any) -> bool:
    return isinstance(dim, int) and dim >= 0


def image_input(inputs: Sequence[TensorSpec], shapes: dict[str, tuple[int, ...]], pre: Preprocess, name: str) -> ImageInput:
    """The model's image input, or one line saying why ``name``'s RGB images cannot be fed to it."""
    if len(inputs) != 1:
        raise DatasetError(f"dataset {name} gives one RGB image per sample, but the model has {len(inputs)} inputs "
                           f"({', '.join(s.name for s in inputs)}); use --dataset synthetic or a folder of .npy files")
    spec = inputs[0]
    pattern = "x".join(str(d) if _fixed(d) else "?" for d in spec.shape)
    what = f"input {spec.name!r} is {pattern} {spec.dtype}"
    dtype = None if is_string(spec) else np.dtype(spec.dtype)
    if len(spec.shape) != 4:
        raise DatasetError(f"dataset {name} gives RGB images, fed as 1x3xHxW or 1xHxWx3, but {what}; "
                           "use a model with an image input, or --dataset synthetic")
    if spec.name in shapes:
        shape = concrete_shape(spec, shapes)
        channels_first = shape[1] == 3 and shape[3] != 3
    else:
        channels_first = spec.shape[1] == 3 and spec.shape[3] != 3
        if not channels_first and spec.shape[3] != 3:
            raise DatasetError(f"dataset {name} gives 3-channel RGB images, but {what} (no axis 1 or 3 of size 3); "
                               f"use a model with an RGB input, or set its size with --shape {spec.name}=1x3xHxW")
        default = (1, 3, pre.size, pre.size) if channels_first else (1, pre.size, pre.size, 3)
        shape = tuple(d if _fixed(d) else default[axis] for axis, d in enumerate(spec.shape))
    channels = shape[1] if channels_first else shape[3]
    if shape[0] != 1 or channels != 3:
        raise DatasetError(f"dataset {name} gives one 3-channel RGB image per sample (batch 1), but {what}; "
                           "use a model with a 1x3xHxW or 1xHxWx3 input")
    if dtype is None or dtype.kind not in "fiu" or (not spec.quantised and dtype.kind == "i" and dtype.itemsize == 1):
        raise DatasetError(f"dataset {name} gives images, but {what}, which cannot hold their values; "
                           "use a model with a float, quantised or uint8 image input")
    return ImageInput(spec, shape, channels_first, spec.quantised or dtype.kind == "f")


Perturb = Callable[[np.ndarray, int], np.ndarray]  # (RGB uint8 HWC image, sample index) -> the same, perturbed


def transform(bgr: np.ndarray, pre: Preprocess, target: ImageInput, perturb: Perturb | None = None,
              index: int = 0) -> np.ndarray:
    """One decoded BGR uint8 image as the target input's sample (without batch axis): real values
    (float32) or 0-255 pixels (uint8, truncated like MLPerf's ``np.asarray(img, dtype=np.uint8)``).
    ``perturb`` (robustness: ``agent.corruptions``) is applied to sample ``index`` between the geometry
    and the normalisation, to the RGB image at the model's resolution as 0-255 uint8, as ImageNet-C
    corrupts its crops."""
    img = pre.geometry(bgr, target.height, target.width)
    if perturb is not None:
        pixels = np.clip(np.rint(img), 0, 255).astype(np.uint8)  # the geometry's values are whole pixels already
        img = np.asarray(perturb(pixels, index), dtype=np.float32)
    img = pre.normalise(img) if target.real else np.asarray(img, dtype=np.uint8)
    return img.transpose(2, 0, 1) if target.channels_first else img


@dataclass(frozen=True)
class Prepared:
    """Per-sample feeds (batch 1, views into one array), the preprocessed values before any
    quantisation (``raw``, to fingerprint) and the input's record."""

    feeds: list[dict[str, np.ndarray]]
    raw: np.ndarray
    records: tuple[dict[str, Any], ...]


def prepare(count: int, decode: Callable[[int], np.ndarray], inputs: Sequence[TensorSpec],
            shapes: dict[str, tuple[int, ...]], preprocess: str, name: str, perturb: Perturb | None = None) -> Prepared:
    """``count`` images (``decode(i)``: BGR uint8 HWC, or a DatasetError naming the image) preprocessed
    with ``preprocess`` for the model's one image input, decoded on a few threads (OpenCV releases the GIL);
    ``perturb`` corrupts each after its geometry (``transform``)."""
    pre = get(preprocess)
    target = image_input(inputs, shapes, pre, name)
    sample = target.shape[1:]
    raw = np.empty((count, *sample), dtype=np.float32 if target.real else np.uint8)

    def fill(i: int) -> None:
        raw[i] = transform(decode(i), pre, target, perturb, i)

    pool = ThreadPoolExecutor(max_workers=max(1, min(8, os.cpu_count() or 1)))
    try:
        for _ in pool.map(fill, range(count)):
            pass
    finally:  # the first bad image ends the load: the images queued behind it are not decoded
        pool.shutdown(cancel_futures=True)
    converted = to_model_input(raw, target.spec)  # the same array for a float32 input: no copy
    feeds = [{target.spec.name: converted[i:i + 1]} for i in range(count)]
    record = {"name": target.spec.name, "shape": list(target.shape), "dtype": target.spec.dtype, "source": "dataset"}
    return Prepared(feeds, raw, (record,))


def read_image(path: Any) -> np.ndarray:
    """The image file at ``path`` as BGR uint8 HWC, as MLPerf reads it (``cv2.imread``), or one line naming it."""
    img = cv2().imread(str(path), cv2().IMREAD_COLOR)
    if img is None:
        raise DatasetError(f"cannot read image {path} (missing, damaged or not an image); replace or remove it")
    return img
