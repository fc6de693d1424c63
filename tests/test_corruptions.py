"""The common corruptions (agent.corruptions): ImageNet-C's parameters, checked on images whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from agent import corruptions
from agent.errors import SettingsError

GREY = np.full((64, 64, 3), 128, dtype=np.uint8)


def test_every_corruption_is_deterministic_per_sample_and_differs_between_samples():
    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)
    for name in corruptions.IMAGE:
        first = corruptions.corrupt(image, name, 3, index=7)
        assert first.dtype == np.uint8 and first.shape == image.shape, name
        assert np.array_equal(first, corruptions.corrupt(image, name, 3, index=7)), name
    seven, eight = (corruptions.corrupt(image, "gaussian_noise", 3, index) for index in (7, 8))
    assert not np.array_equal(seven, eight)


@pytest.mark.parametrize("severity", corruptions.SEVERITIES)
def test_gaussian_noise_has_imagenet_c_sigma(severity):
    """Mid-grey plus N(0, σ²): the empirical σ over 12,288 values is within 5 % of ImageNet-C's (no clipping at 0.5 ± 3σ
    below severity 4; above, clipping shrinks it, so only an upper bound holds there)."""
    out = corruptions.corrupt(GREY, "gaussian_noise", severity, index=0).astype(float) / 255
    sigma = (0.08, 0.12, 0.18, 0.26, 0.38)[severity - 1]
    assert abs(out.mean() - 128 / 255) < 0.01
    if severity <= 3:
        assert out.std() == pytest.approx(sigma, rel=0.05)
    else:
        assert out.std() < sigma


def test_shot_noise_grows_with_severity():
    spreads = [corruptions.corrupt(GREY, "shot_noise", s, 0).astype(float).std() for s in corruptions.SEVERITIES]
    assert spreads == sorted(spreads) and spreads[0] > 0
    # Poisson(x·λ)/λ has variance x/λ: severity 1 (λ 60) at x = 128/255
    assert spreads[0] / 255 == pytest.approx(np.sqrt((128 / 255) / 60), rel=0.06)


def test_brightness_adds_to_the_hsv_value():
    """A pure red of value 0.4 (102/255) becomes value 0.4 + c, hue and saturation kept: (0.4 + c)·255 in red only
    (to the nearest level; 178.5 may round either way through OpenCV's float32 HSV)."""
    red = np.zeros((4, 4, 3), dtype=np.uint8)
    red[..., 0] = 102
    for severity, c in zip(corruptions.SEVERITIES, (0.1, 0.2, 0.3, 0.4, 0.5), strict=True):
        out = corruptions.corrupt(red, "brightness", severity, 0)
        assert np.all(np.abs(out[..., 0].astype(int) - (0.4 + c) * 255) <= 0.5 + 1e-3) and np.all(out[..., 1:] == 0)


def test_contrast_pulls_each_channel_to_its_mean():
    """Half 0, half 200 in every channel: mean 100; severity 1 (×0.4) gives 100 ∓ 40."""
    image = np.zeros((4, 4, 3), dtype=np.uint8)
    image[:, 2:] = 200
    out = corruptions.corrupt(image, "contrast", 1, 0)
    assert np.all(out[:, :2] == 60) and np.all(out[:, 2:] == 140)


def test_blur_keeps_a_flat_image_and_spreads_an_edge():
    assert np.array_equal(corruptions.corrupt(GREY, "gaussian_blur", 5, 0), GREY)
    edge = np.zeros((32, 32, 3), dtype=np.uint8)
    edge[:, 16:] = 255
    widths = [np.count_nonzero((row > 5) & (row < 250)) for row in
              (corruptions.corrupt(edge, "gaussian_blur", s, 0)[16, :, 0] for s in corruptions.SEVERITIES)]
    assert widths == sorted(widths) and widths[0] >= 2  # the ramp widens with σ


def test_pixelate_gives_blocks_and_jpeg_loses_more_as_quality_falls():
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    blocky = corruptions.corrupt(image, "pixelate", 5, 0)  # 40 × 0.25 = 10 blocks of 4 px
    assert np.array_equal(blocky[:4, :4], np.broadcast_to(blocky[0, 0], (4, 4, 3)))
    errors = [np.abs(corruptions.corrupt(image, "jpeg_compression", s, 0).astype(int) - image).mean()
              for s in corruptions.SEVERITIES]
    assert errors[0] > 0 and errors[-1] > errors[0]


@pytest.mark.parametrize("severity", corruptions.SEVERITIES)
def test_audio_noise_is_at_its_signal_to_noise_ratio(severity):
    t = np.arange(16000) / 16000
    clip = 0.5 * np.sin(2 * np.pi * 440 * t)
    noisy = corruptions.corrupt(clip, "audio_noise", severity, index=3)
    snr = 10 * np.log10(np.mean(clip**2) / np.mean((noisy - clip) ** 2))
    assert snr == pytest.approx(corruptions.AUDIO_SNR_DB[severity - 1], abs=0.1)


def test_unknown_corruption_and_severity_are_one_line():
    with pytest.raises(SettingsError, match="unknown corruption 'fog'; known: gaussian_noise, shot_noise"):
        corruptions.corrupt(GREY, "fog", 1, 0)
    with pytest.raises(SettingsError, match="severity 6 is not one of 1, 2, 3, 4, 5"):
        corruptions.corrupt(GREY, "contrast", 6, 0)


@pytest.mark.parametrize("name", list(corruptions.IMAGE))
def test_a_grayscale_image_is_corrupted_as_three_equal_channels_and_keeps_its_shape(name):
    """Fashion-MNIST's 28×28 uint8: the result is the first channel of the RGB image of three equal channels, corrupted."""
    rng = np.random.default_rng(2)
    gray = rng.integers(0, 256, (28, 28), dtype=np.uint8)
    out = corruptions.corrupt(gray, name, 3, index=4)
    assert out.shape == (28, 28) and out.dtype == np.uint8
    rgb = np.repeat(gray[..., None], 3, axis=2)
    assert np.array_equal(out, corruptions.corrupt(rgb, name, 3, index=4)[..., 0])


def test_grayscale_noise_keeps_the_full_sigma():
    """One channel, not the mean of three: ImageNet-C's σ per pixel, not σ/√3."""
    grey = np.full((64, 64), 128, dtype=np.uint8)
    out = corruptions.corrupt(grey, "gaussian_noise", 1, index=0).astype(float) / 255
    assert out.std() == pytest.approx(0.08, rel=0.05)


def test_plan_reads_names_severities_and_all():
    assert corruptions.plan(["gaussian_noise:1,5", "contrast:5"], "image") == [
        ("gaussian_noise", 1), ("gaussian_noise", 5), ("contrast", 5)]
    assert corruptions.plan(["pixelate"], "image") == [("pixelate", s) for s in corruptions.SEVERITIES]
    every = [(n, s) for n in corruptions.IMAGE for s in corruptions.SEVERITIES]
    assert corruptions.plan([], "image") == corruptions.plan(["all"], "image") == every and len(every) == 35
    assert corruptions.plan([], "audio") == [("audio_noise", s) for s in corruptions.SEVERITIES]
    assert corruptions.plan(["contrast:5", "contrast:3,5"], "image") == [("contrast", 5), ("contrast", 3)]  # once each
    assert corruptions.split_entries(" gaussian_noise:1,5, contrast:5 pixelate,jpeg_compression ") == [
        "gaussian_noise:1,5", "contrast:5", "pixelate", "jpeg_compression"]


@pytest.mark.parametrize(("entries", "family", "message"), [
    (["fog"], "image", "unknown corruption 'fog' in --corruptions; known: image: gaussian_noise"),
    (["fog"], "audio", "audio: audio_noise"),
    (["audio_noise"], "image", "corruption 'audio_noise' is for audio, but the dataset holds image data; use one of: "
                               "gaussian_noise"),
    (["contrast"], "audio", "corruption 'contrast' is for image, but the dataset holds audio data; use one of: audio_noise"),
    (["contrast:0"], "image", "severities are 1 to 5"),
    (["contrast:1,x"], "image", "severities are 1 to 5"),
    (["contrast:"], "image", "severities are 1 to 5"),
])
def test_plan_refuses_bad_entries_in_one_line(entries, family, message):
    with pytest.raises(SettingsError, match=message) as caught:
        corruptions.plan(entries, family)
    assert "\n" not in str(caught.value)
