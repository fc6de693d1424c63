"""The spectral features MLPerf Tiny's audio benchmarks are trained on, in numpy alone.

MLPerf Tiny computes keyword-spotting MFCCs with ``tf.signal`` (TensorFlow 2) and anomaly-detection
log-mel energies with librosa 0.6. Neither library belongs on a small device (TensorFlow is ~600 MB),
yet a model scores its published accuracy only on the features it was trained on: a different mel
scale, window or DCT scaling costs accuracy silently. So each step is rewritten here from those
libraries' definitions, with the formula in its docstring and tests that check it by hand-worked
values (tests/test_datasets_audio.py). Arithmetic is float64 (the libraries use float32 in places),
so values agree with theirs to float32 rounding, not bit for bit.

Two families, named for the library they reproduce:

- ``tf_*``: ``tf.signal.hann_window``, ``stft`` (``pad_end=False``), ``linear_to_mel_weight_matrix``
  (HTK mel scale) and ``mfccs_from_log_mel_spectrograms``;
- ``librosa_*``: ``librosa.filters.mel`` (Slaney mel scale, Slaney area normalisation — librosa 0.6's
  ``norm=1``, later spelled ``norm="slaney"``) and ``librosa.feature.melspectrogram``'s power
  spectrogram (centred frames, reflect padding, periodic Hann window: librosa 0.6's defaults).
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import Any

import numpy as np

from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec
from agent.runtimes.quant import to_model_input
from agent.runtimes.shapes import concrete_shape

# tf.signal's mel scale (mel_ops.py): the HTK formula with a natural logarithm
_TF_MEL_BREAK_HZ = 700.0
_TF_MEL_Q = 1127.0
# librosa's Slaney mel scale (core/time_frequency.py): linear to 1 kHz, logarithmic above
_SLANEY_F_SP = 200.0 / 3.0
_SLANEY_MIN_LOG_HZ = 1000.0
_SLANEY_MIN_LOG_MEL = _SLANEY_MIN_LOG_HZ / _SLANEY_F_SP  # 15
_SLANEY_LOGSTEP = np.log(6.4) / 27.0


def frames(signal: np.ndarray, length: int, step: int) -> np.ndarray:
    """``[count, length]`` windows of ``signal`` starting every ``step`` samples, without padding the end
    (``tf.signal.frame(pad_end=False)``, librosa's ``util.frame``): ``count = 1 + (len - length) // step``,
    0 when the signal is shorter than one window."""
    if len(signal) < length:
        return np.zeros((0, length), dtype=signal.dtype)
    return np.lib.stride_tricks.sliding_window_view(signal, length)[::step]


def tf_hann_window(length: int, periodic: bool = True) -> np.ndarray:
    """``tf.signal.hann_window``: ``w[n] = 0.5 - 0.5 cos(2 pi n / d)``, ``n = 0 .. length-1``, where
    ``d = length`` for a periodic window of even length and ``d = length - 1`` otherwise (TF adds the
    periodic extra sample only to even lengths)."""
    denominator = length - 1 + (1 if periodic and length % 2 == 0 else 0)
    if denominator == 0:
        return np.ones(length)
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / denominator)


def tf_stft_magnitude(signal: np.ndarray, frame_length: int, frame_step: int, fft_length: int | None = None) -> np.ndarray:
    """``abs(tf.signal.stft(signal, frame_length, frame_step, fft_length, window_fn=hann_window))``:
    frames without end padding, each multiplied by the periodic Hann window, zero-padded at its end to
    ``fft_length`` (default: the smallest power of two >= ``frame_length``) and transformed by a real
    FFT. Returns ``[frames, fft_length // 2 + 1]`` magnitudes."""
    if fft_length is None:
        fft_length = 1 << (frame_length - 1).bit_length()
    windowed = frames(np.asarray(signal, dtype=np.float64), frame_length, frame_step) * tf_hann_window(frame_length)
    return np.abs(np.fft.rfft(windowed, n=fft_length, axis=-1))


def tf_hertz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """HTK mel scale as ``tf.signal`` writes it: ``mel = 1127 ln(1 + f / 700)``."""
    return _TF_MEL_Q * np.log1p(np.asarray(hertz, dtype=np.float64) / _TF_MEL_BREAK_HZ)


def tf_linear_to_mel_weight_matrix(num_mel_bins: int, num_spectrogram_bins: int, sample_rate: float,
                                   lower_edge_hertz: float, upper_edge_hertz: float) -> np.ndarray:
    """``tf.signal.linear_to_mel_weight_matrix``: ``[num_spectrogram_bins, num_mel_bins]`` triangles.

    Spectrogram bin ``k`` sits at ``f_k = k * (sample_rate / 2) / (num_spectrogram_bins - 1)``
    (``linspace(0, nyquist, num_spectrogram_bins)``). Band edges are ``num_mel_bins + 2`` points evenly
    spaced in mel between ``mel(lower)`` and ``mel(upper)``; band ``m`` has lower edge ``e[m]``, centre
    ``e[m+1]``, upper edge ``e[m+2]``. The weight of bin ``k`` in band ``m`` is
    ``max(0, min((mel(f_k) - e[m]) / (e[m+1] - e[m]), (e[m+2] - mel(f_k)) / (e[m+2] - e[m+1])))``:
    triangles linear in mel with peak 1, no area normalisation. Row 0 (the DC bin) is zero, as in
    HTK."""
    linear = np.linspace(0.0, sample_rate / 2.0, num_spectrogram_bins)[1:]
    bins_mel = tf_hertz_to_mel(linear)[:, None]
    edges = np.linspace(tf_hertz_to_mel(lower_edge_hertz), tf_hertz_to_mel(upper_edge_hertz), num_mel_bins + 2)
    lower, center, upper = edges[:-2][None, :], edges[1:-1][None, :], edges[2:][None, :]
    lower_slopes = (bins_mel - lower) / (center - lower)
    upper_slopes = (upper - bins_mel) / (upper - center)
    weights = np.maximum(0.0, np.minimum(lower_slopes, upper_slopes))
    return np.pad(weights, [[1, 0], [0, 0]])


def dct_type2(x: np.ndarray) -> np.ndarray:
    """Unnormalised DCT-II over the last axis (``tf.signal.dct(type=2, norm=None)``, equal to
    ``scipy.fft.dct(type=2, norm=None)``): ``y[k] = 2 sum_n x[n] cos(pi k (2n + 1) / (2N))``."""
    n = x.shape[-1]
    basis = np.cos(np.pi * np.arange(n)[None, :] * (2 * np.arange(n)[:, None] + 1) / (2 * n))  # [n(in), k(out)]
    return 2.0 * np.asarray(x, dtype=np.float64) @ basis


def tf_mfccs_from_log_mel_spectrograms(log_mel: np.ndarray) -> np.ndarray:
    """``tf.signal.mfccs_from_log_mel_spectrograms``: ``dct_type2(log_mel) / sqrt(2 N)`` over the last
    axis (``N`` mel bins), which makes the DCT orthonormal except for coefficient 0 (scaled by
    ``sqrt(2)`` relative to the orthonormal DCT): a constant row ``v`` gives ``c0 = sqrt(2N) v``, all
    other coefficients 0."""
    return dct_type2(log_mel) / np.sqrt(2.0 * log_mel.shape[-1])


def slaney_hz_to_mel(hertz: np.ndarray | float) -> np.ndarray:
    """librosa's default (Slaney) mel scale: ``f / (200/3)`` below 1 kHz, and
    ``15 + ln(f / 1000) / (ln(6.4) / 27)`` from 1 kHz up."""
    f = np.asarray(hertz, dtype=np.float64)
    log_part = _SLANEY_MIN_LOG_MEL + np.log(np.maximum(f, _SLANEY_MIN_LOG_HZ) / _SLANEY_MIN_LOG_HZ) / _SLANEY_LOGSTEP
    return np.where(f >= _SLANEY_MIN_LOG_HZ, log_part, f / _SLANEY_F_SP)


def slaney_mel_to_hz(mels: np.ndarray | float) -> np.ndarray:
    """Inverse of ``slaney_hz_to_mel``."""
    m = np.asarray(mels, dtype=np.float64)
    log_part = _SLANEY_MIN_LOG_HZ * np.exp(_SLANEY_LOGSTEP * (m - _SLANEY_MIN_LOG_MEL))
    return np.where(m >= _SLANEY_MIN_LOG_MEL, log_part, _SLANEY_F_SP * m)


def librosa_mel_filterbank(sample_rate: float, n_fft: int, n_mels: int, fmin: float = 0.0,
                           fmax: float | None = None) -> np.ndarray:
    """``librosa.filters.mel(sr, n_fft, n_mels, fmin, fmax, htk=False, norm=1)``: ``[n_mels, 1 + n_fft // 2]``.

    FFT bin ``k`` sits at ``k * sr / n_fft``. ``n_mels + 2`` frequencies ``h`` are evenly spaced on the
    Slaney mel scale between ``fmin`` and ``fmax`` (default ``sr / 2``) and mapped back to Hz; band ``m``
    is the triangle, linear in Hz, rising from ``h[m]`` to 1 at ``h[m+1]`` and falling to 0 at ``h[m+2]``,
    then scaled by ``2 / (h[m+2] - h[m])`` so every band has the same area (Slaney normalisation)."""
    fmax = sample_rate / 2.0 if fmax is None else fmax
    fft_hz = np.linspace(0.0, sample_rate / 2.0, 1 + n_fft // 2)
    mel_hz = slaney_mel_to_hz(np.linspace(slaney_hz_to_mel(fmin), slaney_hz_to_mel(fmax), n_mels + 2))
    widths = np.diff(mel_hz)
    ramps = mel_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    return weights * (2.0 / (mel_hz[2:] - mel_hz[:-2]))[:, None]


def librosa_power_spectrogram(y: np.ndarray, n_fft: int, hop_length: int, power: float = 2.0) -> np.ndarray:
    """``abs(librosa.stft(y, n_fft, hop_length)) ** power`` with librosa 0.6's defaults:
    ``win_length = n_fft``, periodic Hann window (``scipy.signal.get_window('hann', n_fft, fftbins=True)``,
    ``0.5 - 0.5 cos(2 pi n / n_fft)``), ``center=True``: the signal is padded by ``n_fft // 2`` on both
    sides by reflection (``np.pad(mode='reflect')``), so frame ``t`` is centred on sample ``t * hop``.
    Returns ``[1 + n_fft // 2, 1 + len(y) // hop_length]`` (frequency by time, as librosa)."""
    padded = np.pad(np.asarray(y, dtype=np.float64), n_fft // 2, mode="reflect")
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n_fft) / n_fft)
    spectrum = np.fft.rfft(frames(padded, n_fft, hop_length) * window, axis=-1)
    return (np.abs(spectrum) ** power).T


def librosa_melspectrogram(y: np.ndarray, sample_rate: float, n_fft: int, hop_length: int, n_mels: int,
                           power: float = 2.0) -> np.ndarray:
    """``librosa.feature.melspectrogram(y, sr, n_fft=, hop_length=, n_mels=, power=)``:
    ``librosa_mel_filterbank @ librosa_power_spectrogram``, ``[n_mels, frames]`` (multiplied frame-major:
    the same numbers, several times faster)."""
    filterbank = _cached_filterbank(float(sample_rate), n_fft, n_mels)
    return (librosa_power_spectrogram(y, n_fft, hop_length, power).T @ filterbank.T).T


@functools.lru_cache(maxsize=4)
def _cached_filterbank(sample_rate: float, n_fft: int, n_mels: int) -> np.ndarray:
    return librosa_mel_filterbank(sample_rate, n_fft, n_mels)


def fit_to_input(features: np.ndarray, inputs: Sequence[TensorSpec], shapes: dict[str, tuple[int, ...]], dataset: str,
                 hint: str) -> tuple[list[dict[str, np.ndarray]], tuple[dict[str, Any], ...]]:
    """Per-sample feeds of ``features`` (``[samples, *feature shape]``, real values) for a model with one
    input whose shape, without its size-1 axes, is the feature shape (``[1,49,10,1]`` and ``[1,490]``
    do not both fit 49x10 features: only the first keeps their layout), quantised with the input's own
    parameters where it is quantised; or one line saying why they do not fit (``hint``: a model that does)."""
    per_sample = "x".join(map(str, features.shape[1:]))
    if len(inputs) != 1:
        raise DatasetError(f"dataset {dataset} gives one {per_sample} feature array per sample, but the model has "
                           f"{len(inputs)} inputs ({', '.join(s.name for s in inputs)}); use {hint}")
    spec = inputs[0]
    shape = concrete_shape(spec, shapes)
    floating = np.issubdtype(np.dtype(spec.dtype), np.floating)
    if not shape or shape[0] != 1 or tuple(d for d in shape[1:] if d != 1) != tuple(d for d in features.shape[1:] if d != 1) \
            or not (spec.quantised or floating):
        raise DatasetError(f"dataset {dataset} gives {per_sample} float features per sample, but input {spec.name!r} takes "
                           f"{'x'.join(map(str, shape))} {spec.dtype}; use {hint}")
    feeds = [{spec.name: to_model_input(sample.reshape(shape), spec)} for sample in features]
    record = {"name": spec.name, "shape": list(shape), "dtype": spec.dtype, "source": "dataset"}
    return feeds, (record,)
