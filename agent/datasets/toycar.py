"""DCASE 2020 Task 2 ToyCar clips as MLPerf Tiny's anomaly-detection benchmark scores them (``toycar:DIR``).

MLPerf Tiny (benchmark/training/anomaly_detection: common.py, 01_test.py, baseline.yaml) scores the
ToyCar development test set: 10 s, 16 kHz, 16-bit mono WAVs named ``normal_id_XX_NNNNNNNN.wav`` and
``anomaly_id_XX_NNNNNNNN.wav`` (DIR is that ``test`` folder, or the folder holding it). The evaluation
set's unlabelled ``id_XX_…`` files cannot be scored and are refused.

Features (``toycar-logmel``, ``file_to_vector_array`` with baseline.yaml's n_mels 128, frames 5, n_fft
1024, hop 512, power 2.0 and librosa 0.6 as pinned in Tiny's requirements.txt): samples / 32768
(librosa.load's float conversion); ``librosa.feature.melspectrogram`` (centred, reflect-padded
periodic-Hann STFT, Slaney mel filters normalised by area); ``10 log10(mel + 2.22e-16)`` (``20 / power
* log10(mel + sys.float_info.epsilon)``); only frames 50..249 are kept (Tiny's "central part", so the
padded edge frames never matter for a 10 s clip); every 5 consecutive frames are concatenated,
frame-major, into one 640-value vector: 196 vectors per 10 s clip.

One sample is one vector (a segment): ``labels`` gives its clip's label (1 anomaly, 0 normal), and
``truth`` maps segments back to clips (``clip``: segment -> clip index; ``clip_labels``,
``clip_names``, ``clip_machine_ids`` per clip). Tiny scores a clip by the mean over its vectors of the
mean squared reconstruction error, then the ROC AUC per machine id (averaged over ids): that is the
scorer's job, from ``truth``.

Order: Tiny's 01_test.py walks machine ids in order and, per id, all normal clips then all anomalous
ones. We keep machine ids in order but interleave the two kinds by clip number (``normal_id_01_…0``,
``anomaly_id_01_…0``, ``normal_id_01_…1``, …), so that ``[:N]`` (N counts clips, every segment of each
is fed) holds both kinds; over the whole set the scores are the same. The EEMBC runner Tiny publishes
(y_labels.csv) scores a fixed subset of 248 clips (every tenth), all 196 segments each in accuracy mode
and only a clip's first segment in performance and energy modes; we feed every segment of every
selected clip in every mode. Quantised inputs are rounded and saturated with the input's own
parameters (``to_model_input``), as the reference submission's ``QuantizeFloatToInt8`` does; that
submission measures a segment's error between the dequantised output and the *float* features (here
``Samples.raw``), not the quantised input.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent.datasets.audio_features import fit_to_input, librosa_melspectrogram
from agent.datasets.wav import read_pcm16
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec

if TYPE_CHECKING:
    from agent.datasets import Samples

DEFAULT_PREPROCESS = "toycar-logmel"
SAMPLE_RATE = 16000
N_MELS, FRAMES, N_FFT, HOP, POWER = 128, 5, 1024, 512, 2.0
CENTRAL = slice(50, 250)  # common.py: "take central part only"
FEATURES = N_MELS * FRAMES  # 640
# the shortest clip with one vector: FRAMES kept frames need 50 + FRAMES STFT frames, 1 + len // HOP of them
MIN_SAMPLES = (CENTRAL.start + FRAMES - 1) * HOP
NAME = re.compile(r"(normal|anomaly)_(id_\d+)_(\d+)\.wav")
LAYOUT = "the DCASE 2020 ToyCar test folder (normal_id_01_00000000.wav, anomaly_id_01_00000000.wav, …)"
HINT = "the MLPerf Tiny AD autoencoder (input 1x640) or another model trained on Tiny's 5x128 log-mel vectors"


@dataclass(frozen=True)
class Clip:
    """One test clip: its file, label (1 anomaly, 0 normal), machine id and number within that id."""

    path: Path
    label: int
    machine_id: str
    number: int


def clips(root: Path) -> list[Clip]:
    """The labelled test clips of ``root`` (or of ``root/test``) in our order; or why there are none."""
    if not root.is_dir():
        raise DatasetError(f"toycar folder {root} does not exist; give {LAYOUT}")
    folder = root / "test" if not any(root.glob("*.wav")) and (root / "test").is_dir() else root
    wavs = sorted(folder.glob("*.wav"))
    if not wavs:
        raise DatasetError(f"{folder} holds no WAV files; give {LAYOUT}")
    found = []
    for path in wavs:
        match = NAME.fullmatch(path.name)
        if match is None:
            raise DatasetError(f"{path.name} in {folder} is not named normal_id_XX_N.wav or anomaly_id_XX_N.wav: "
                               f"clips without a normal/anomaly label (DCASE's evaluation set) cannot be scored; give {LAYOUT}")
        kind, machine_id, number = match.groups()
        found.append(Clip(path, int(kind == "anomaly"), machine_id, int(number)))
    return sorted(found, key=lambda c: (c.machine_id, c.number, c.label))


def log_mel_vectors(samples: np.ndarray, name: str = "clip") -> np.ndarray:
    """Tiny's ``file_to_vector_array`` of one clip of int16 samples: ``[vectors, 640]`` float32."""
    if len(samples) < MIN_SAMPLES:
        raise DatasetError(f"{name} holds {len(samples)} samples; Tiny's features need at least {MIN_SAMPLES} "
                           f"({MIN_SAMPLES / SAMPLE_RATE:.2f} s; ToyCar clips are 10 s)")
    y = samples.astype(np.float32) / np.float32(32768.0)
    mel = librosa_melspectrogram(y, SAMPLE_RATE, N_FFT, HOP, N_MELS, POWER)
    log_mel = (20.0 / POWER * np.log10(mel + sys.float_info.epsilon))[:, CENTRAL]
    count = log_mel.shape[1] - FRAMES + 1
    vectors = np.concatenate([log_mel[:, t:t + count].T for t in range(FRAMES)], axis=1)
    return vectors.astype(np.float32)


def load(path: Path, limit: int | None, inputs: Sequence[TensorSpec], shapes: dict[str, tuple[int, ...]],
         preprocess: str | None) -> Samples:
    """Every segment of the first ``limit`` clips (all when None) of the folder at ``path``, for the model."""
    from agent.datasets import Samples

    if (preprocess or DEFAULT_PREPROCESS) != DEFAULT_PREPROCESS:
        raise DatasetError(f"toycar is preprocessed as {DEFAULT_PREPROCESS} (MLPerf Tiny AD), not {preprocess}")
    if limit is not None and limit < 1:
        raise DatasetError(f"toycar:{path}:{limit} selects no clips; N counts clips and must be >= 1")
    found = clips(Path(path))
    total = len(found)
    found = found[:limit]
    per_clip = [log_mel_vectors(read_pcm16(c.path, SAMPLE_RATE), str(c.path)) for c in found]
    features = np.concatenate(per_clip)
    feeds, records = fit_to_input(features, inputs, shapes, "toycar", HINT)
    clip = np.repeat(np.arange(len(found), dtype=np.int64), [len(v) for v in per_clip])
    clip_labels = np.array([c.label for c in found], dtype=np.int64)
    truth = {"clip": clip, "clip_labels": clip_labels, "clip_names": [c.path.name for c in found],
             "clip_machine_ids": [c.machine_id for c in found]}
    source = (f"toycar:{path} ({len(found)} of {total} clips, {len(features)} segments of {FEATURES} features; "
              f"{DEFAULT_PREPROCESS})")
    return Samples("toycar", source, feeds, clip_labels[clip], features, inputs=records, task="anomaly", truth=truth)
