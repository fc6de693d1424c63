"""Common corruptions at graded severities, for accuracy under perturbation (robustness).

An edge device meets sensor noise, blur, bad light and compression, and a quantised model often
loses more accuracy there than on clean inputs. The image corruptions are those of ImageNet-C
(Hendrycks & Dietterich, ICLR 2019, ``make_imagenet_c.py``), with its severity parameters 1–5:

| corruption | parameter by severity 1..5 | what it does (x in [0, 1], RGB) |
|---|---|---|
| ``gaussian_noise`` | σ .08 .12 .18 .26 .38 | x + N(0, σ²) |
| ``shot_noise`` | λ 60 25 12 5 3 | Poisson(x·λ) / λ |
| ``gaussian_blur`` | σ 1 2 3 4 6 px | Gaussian filter per channel, edges replicated |
| ``brightness`` | +.1 .2 .3 .4 .5 | HSV value + c |
| ``contrast`` | ×.4 .3 .2 .1 .05 | (x − mean) · c + mean, the mean per channel over the image |
| ``jpeg_compression`` | quality 25 18 15 10 7 | JPEG encode and decode (Pillow, as the reference) |
| ``pixelate`` | scale .6 .5 .4 .3 .25 | box-downscale by the scale, box-upscale back (Pillow) |

every result clipped to [0, 1] and returned as 0–255 uint8, so the dataset's own preprocessing
follows unchanged. The reference blurs with scikit-image (``gaussian``, truncate 4σ, mode nearest);
here OpenCV's ``GaussianBlur`` with a 8σ+1 kernel and replicated edges does the same filter without
scikit-image on the device. Audio is corrupted with white Gaussian noise at a signal-to-noise ratio
(``audio_noise``: 30, 20, 10, 5, 0 dB for severities 1–5).

A grayscale H×W uint8 image (Fashion-MNIST's 28×28) is corrupted as an RGB image of three equal
channels, and its first channel returned: same shape and dtype as given, and the noise of each pixel
exactly the table's (averaging the channels would shrink it by √3).

Every corruption is deterministic: its noise comes from a generator seeded by the sample's index,
the corruption and the severity, so the fp32 and int8 variants of a model, on any device, score the
same corrupted samples, and their difference is a paired one.

A run's plan (``plan``) is a list of ``(corruption, severity)``: entries ``NAME`` (every severity) or
``NAME:1,3,5``, or ``all`` (nothing given: the same), every corruption of the dataset's family
(``image`` or ``audio``) at every severity. ``--mode robustness`` applies each to the images at the
model's resolution, after the geometry of preprocessing and before its normalisation (as ImageNet-C
corrupts the 224×224 crops), or to the waveform before its features (``agent.robustness``).
"""

from __future__ import annotations

import io
import re
import zlib
from collections.abc import Callable, Sequence

import numpy as np

from agent.errors import SettingsError

SEVERITIES = (1, 2, 3, 4, 5)
_GAUSSIAN_SIGMA = (0.08, 0.12, 0.18, 0.26, 0.38)
_SHOT_LAMBDA = (60, 25, 12, 5, 3)
_BLUR_SIGMA = (1, 2, 3, 4, 6)
_BRIGHTNESS = (0.1, 0.2, 0.3, 0.4, 0.5)
_CONTRAST = (0.4, 0.3, 0.2, 0.1, 0.05)
_JPEG_QUALITY = (25, 18, 15, 10, 7)
_PIXELATE = (0.6, 0.5, 0.4, 0.3, 0.25)
AUDIO_SNR_DB = (30, 20, 10, 5, 0)


def rng_for(index: int, corruption: str, severity: int) -> np.random.Generator:
    """The generator of one sample's corruption: the same sample, corruption and severity always draw alike."""
    return np.random.default_rng([index, zlib.crc32(corruption.encode()), severity])


def _unit(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255.0


def _pixels(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, 0.0, 1.0) * 255.0).round().astype(np.uint8)


def gaussian_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    return _pixels(x + rng.normal(scale=_GAUSSIAN_SIGMA[severity - 1], size=x.shape))


def shot_noise(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    lam = _SHOT_LAMBDA[severity - 1]
    return _pixels(rng.poisson(_unit(image) * lam) / lam)


def gaussian_blur(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    import cv2  # the datasets extra: images are read with it already

    sigma = _BLUR_SIGMA[severity - 1]
    size = 8 * sigma + 1
    return _pixels(cv2.GaussianBlur(_unit(image), (size, size), sigma, borderType=cv2.BORDER_REPLICATE))


def brightness(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    import cv2

    hsv = cv2.cvtColor(_unit(image).astype(np.float32), cv2.COLOR_RGB2HSV)
    hsv[..., 2] = np.clip(hsv[..., 2] + _BRIGHTNESS[severity - 1], 0.0, 1.0)
    return _pixels(cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB))


def contrast(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    x = _unit(image)
    means = x.mean(axis=(0, 1), keepdims=True)
    return _pixels((x - means) * _CONTRAST[severity - 1] + means)


def jpeg_compression(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    out = io.BytesIO()
    Image.fromarray(np.asarray(image, dtype=np.uint8)).save(out, "JPEG", quality=_JPEG_QUALITY[severity - 1])
    return np.asarray(Image.open(out).convert("RGB"))


def pixelate(image: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    from PIL import Image

    img = Image.fromarray(np.asarray(image, dtype=np.uint8))
    width, height = img.size
    scale = _PIXELATE[severity - 1]
    small = img.resize((max(1, int(width * scale)), max(1, int(height * scale))), Image.BOX)
    return np.asarray(small.resize((width, height), Image.BOX))


def audio_noise(samples: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """White Gaussian noise at ``AUDIO_SNR_DB[severity - 1]`` dB below the clip's own mean power."""
    x = np.asarray(samples, dtype=np.float64)
    power = float(np.mean(x**2))
    noise_power = power / 10 ** (AUDIO_SNR_DB[severity - 1] / 10)
    return x + rng.normal(scale=np.sqrt(noise_power), size=x.shape)


Corruption = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]
IMAGE: dict[str, Corruption] = {f.__name__: f for f in (gaussian_noise, shot_noise, gaussian_blur, brightness, contrast,
                                                       jpeg_compression, pixelate)}
AUDIO: dict[str, Corruption] = {"audio_noise": audio_noise}
CORRUPTIONS = IMAGE | AUDIO


FAMILIES = {"image": IMAGE, "audio": AUDIO}
ALL = "all"
Perturb = Callable[[np.ndarray, int], np.ndarray]  # (sample, its index) -> the sample corrupted


def corrupt(data: np.ndarray, corruption: str, severity: int, index: int) -> np.ndarray:
    """Sample ``index`` (an RGB uint8 image H×W×3, a grayscale one H×W, or audio samples) under
    ``corruption`` at ``severity``; an image keeps its shape and dtype."""
    if corruption not in CORRUPTIONS:
        raise SettingsError(f"unknown corruption {corruption!r}; known: {', '.join(CORRUPTIONS)}")
    if severity not in SEVERITIES:
        raise SettingsError(f"severity {severity} is not one of {', '.join(map(str, SEVERITIES))}")
    rng = rng_for(index, corruption, severity)
    if corruption in IMAGE and np.ndim(data) == 2:  # grayscale: three equal channels, the first returned
        rgb = np.repeat(np.asarray(data, dtype=np.uint8)[..., None], 3, axis=2)
        return np.ascontiguousarray(IMAGE[corruption](rgb, severity, rng)[..., 0])
    return CORRUPTIONS[corruption](data, severity, rng)


def perturbation(corruption: str, severity: int) -> Perturb:
    """The per-sample hook a dataset loader applies (``agent.datasets``): ``corrupt`` at this corruption and severity."""
    def perturb(data: np.ndarray, index: int) -> np.ndarray:
        return corrupt(data, corruption, severity, index)
    return perturb


def split_entries(text: str) -> list[str]:
    """``"gaussian_noise:1,5, contrast:5 blur"`` as entries: commas before a name and spaces separate
    them, commas between severities do not."""
    return [e for e in re.split(r"\s*,\s*(?=[A-Za-z_])|\s+", text.strip()) if e]


def _known() -> str:
    return "; ".join(f"{family}: {', '.join(names)}" for family, names in FAMILIES.items())


def plan(entries: Sequence[str], family: str) -> list[tuple[str, int]]:
    """The ``(corruption, severity)`` pairs a robustness run scores, in the order given (repeats once):
    ``NAME`` (severities 1-5), ``NAME:1,3,5``, or ``all``/nothing (every corruption of ``family`` at
    every severity). A bad entry is one line naming it and the known names."""
    if family not in FAMILIES:
        raise SettingsError(f"corruption family {family!r} is not one of {', '.join(FAMILIES)}")
    ours = FAMILIES[family]
    out: dict[tuple[str, int], None] = {}
    for entry in entries or [ALL]:
        name, sep, levels = entry.strip().partition(":")
        if name == ALL and not sep:
            out |= dict.fromkeys((n, s) for n in ours for s in SEVERITIES)
            continue
        if name not in CORRUPTIONS:
            raise SettingsError(f"unknown corruption {name!r} in --corruptions; known: {_known()} (or {ALL})")
        if name not in ours:
            other = next(f for f, names in FAMILIES.items() if name in names)
            raise SettingsError(f"corruption {name!r} is for {other}, but the dataset holds {family} data; use one of: "
                                f"{', '.join(ours)} (or {ALL})")
        severities = SEVERITIES
        if sep:
            try:
                severities = tuple(int(level) for level in levels.split(","))
            except ValueError:
                severities = ()
            if not severities or any(level not in SEVERITIES for level in severities):
                raise SettingsError(f"--corruptions entry {entry!r}: severities are 1 to 5, comma-separated, "
                                    f"e.g. {name}:1,3,5")
        out |= dict.fromkeys((name, level) for level in severities)
    return list(out)

