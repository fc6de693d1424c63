"""Speech Commands v2 as MLPerf Tiny's keyword-spotting benchmark scores it (``speech-commands:DIR``).

MLPerf Tiny (benchmark/training/keyword_spotting: get_dataset.py, eval_quantized_model.py) scores the
test split of TensorFlow Datasets' ``speech_commands``: the separate archive
``speech_commands_test_set_v0.02.tar.gz``, 12 classes in this order (TFDS's ``ClassLabel``, Tiny's
``word_labels``)::

    0 down  1 go  2 left  3 no  4 off  5 on  6 right  7 stop  8 up  9 yes  10 _silence_  11 _unknown_

Two folder layouts are read:

- **the test-set archive** (what Tiny scores, and the one to use for comparable accuracy): one folder
  per class, ``down/ … yes/``, ``_silence_/``, ``_unknown_/``, each holding 1 s WAVs. Its silence and
  unknown clips are files in the archive, so the scored set is reproduced exactly from the files.
- **the main archive** ``speech_commands_v0.02.tar.gz`` (recognised by its ``testing_list.txt``): the
  utterances listed in ``testing_list.txt``, the 10 words under their own class and every other word
  as ``_unknown_`` (so unknown outnumbers the rest, as the list has it); silence clips are cut from
  every ``_background_noise_/*.wav`` exactly as TFDS builds its own silence clips (1 s windows starting
  every 0.5 s: ``range(0, len - 16000, 8000)``; no randomness, no seed). This is the dataset authors'
  test partition, *not* the set Tiny scores; ``validation_list.txt`` is not used.

Order: TFDS's own rule, examples sorted by ``md5(split name "test" + example id)`` with example id
``<folder>_<file name>`` (``_<start>`` appended for cut background clips), as
``tfds.core.hashing.Hasher`` orders a split. It mixes the classes, so ``[:N]`` (N counts utterances)
is a spread sample; whether it is the exact order of ``tfds.load(split='test').take(N)`` in Tiny's
scripts was not checked against a TFDS build.

Features (``kws-mfcc``, Tiny's ``feature_type='mfcc'`` on the test split, no augmentation): the int16
samples as float, divided by their maximum (``tf.reduce_max``: the largest value, not the largest
magnitude), zero-padded at the end to 16000 samples; the 2-sample time shift Tiny applies for
evaluation (pad 2 both sides, slice from 2) leaves the clip unchanged. Then ``abs(tf.signal.stft)``
with 480-sample (30 ms) frames every 320 samples (20 ms), FFT length 512, periodic Hann window, no end
padding (49 frames); times the 40-band HTK mel matrix over 20-4000 Hz; ``log(mel + 1e-6)``;
``tf.signal.mfccs_from_log_mel_spectrograms``, first 10 coefficients: 49x10 per utterance, fed to the
model's ``[1,49,10,1]`` input. Where Tiny's pipeline cannot run we choose, and say so: a clip longer
than 1 s (TF's pad would fail) keeps its first 16000 samples; a clip whose maximum is 0 (TF divides by
zero, giving NaN) is left unscaled. An int8 input is quantised by rounding and saturating
(``to_model_input``); Tiny's eval_quantized_model.py truncates toward zero (``np.array(x / s + zp,
dtype=np.int8)``), so quantised values may differ from Tiny's by one step. (That cast would also wrap
values below -128; with the reference model's scale 0.5847 and zero point 83 the lowest feature, c0 of
silence, sqrt(80) ln(1e-6) = -123.6, maps to -128.3, so it does not happen.)
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from agent.datasets.audio_features import (
    fit_to_input,
    tf_linear_to_mel_weight_matrix,
    tf_mfccs_from_log_mel_spectrograms,
    tf_stft_magnitude,
)
from agent.datasets.wav import read_pcm16
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec

if TYPE_CHECKING:
    from agent.datasets import Samples

DEFAULT_PREPROCESS = "kws-mfcc"
WORDS = ("down", "go", "left", "no", "off", "on", "right", "stop", "up", "yes")
SILENCE, UNKNOWN, BACKGROUND = "_silence_", "_unknown_", "_background_noise_"
CLASSES = (*WORDS, SILENCE, UNKNOWN)
SAMPLE_RATE = 16000
CLIP_SAMPLES = 16000  # 1 s
FRAME_LENGTH, FRAME_STEP = 480, 320  # 30 ms windows every 20 ms
MEL_BINS, LOWER_HZ, UPPER_HZ = 40, 20.0, 4000.0
LOG_OFFSET = 1e-6
MFCCS = 10
FRAMES = 1 + (CLIP_SAMPLES - FRAME_LENGTH) // FRAME_STEP  # 49
TESTING_LIST = "testing_list.txt"
LAYOUT = (f"the Speech Commands v2 test-set archive (folders {', '.join(WORDS)}, {SILENCE}, {UNKNOWN} of 16 kHz WAVs) "
          f"or the main archive (word folders with {TESTING_LIST})")
HINT = "the MLPerf Tiny KWS DS-CNN (input 1x49x10x1) or another model trained on Tiny's 49x10 MFCCs"


@dataclass(frozen=True)
class Utterance:
    """One scored clip: the file, where a cut background clip starts in it (None: the whole file),
    its class and its TFDS example id (which orders the split)."""

    path: Path
    start: int | None
    label: int
    key: str


def _key_order(key: str) -> str:
    return hashlib.md5(b"test" + key.encode(), usedforsecurity=False).hexdigest()


def _test_archive(root: Path) -> list[Utterance]:
    """Every WAV of the 12 class folders, labelled by its folder. Other word folders mean the main
    archive without its ``testing_list.txt``: scoring only the 10 words of it would be a silent mistake."""
    others = sorted(p.name for p in root.iterdir() if p.is_dir() and p.name not in CLASSES and any(p.glob("*.wav")))
    if others:
        named = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
        raise DatasetError(f"{root} has word folders outside the 12 classes ({named}) but no {TESTING_LIST}; give {LAYOUT}")
    clips = []
    for label, name in enumerate(CLASSES):
        folder = root / name
        if folder.is_dir():
            clips += [Utterance(p, None, label, f"{name}_{p.name}") for p in folder.glob("*.wav")]
    return clips


def _main_archive(root: Path) -> list[Utterance]:
    """``testing_list.txt``'s utterances (other words as unknown) and TFDS-style cuts of the background noise."""
    listed = [line.strip() for line in (root / TESTING_LIST).read_text().splitlines() if line.strip()]
    missing = [rel for rel in listed if not (root / rel).is_file()]
    if missing:
        raise DatasetError(f"{root / TESTING_LIST} lists {len(missing)} files not in {root} (first: {missing[0]}); "
                           f"extract the whole speech_commands_v0.02 archive there")
    clips = []
    for rel in listed:
        word, _, name = rel.partition("/")
        label = CLASSES.index(word) if word in WORDS else CLASSES.index(UNKNOWN)
        clips.append(Utterance(root / rel, None, label, f"{word}_{name}"))
    for path in sorted((root / BACKGROUND).glob("*.wav")):
        length = len(_background(path))
        clips += [Utterance(path, start, CLASSES.index(SILENCE), f"{BACKGROUND}_{path.name}_{start}")
                  for start in range(0, length - SAMPLE_RATE, SAMPLE_RATE // 2)]
    return clips


def utterances(root: Path) -> tuple[list[Utterance], str]:
    """The scored utterances of the folder in TFDS order, and which layout it has; or why it is not one."""
    if not root.is_dir():
        raise DatasetError(f"speech-commands folder {root} does not exist; give {LAYOUT}")
    if (root / TESTING_LIST).is_file():
        clips, layout = _main_archive(root), f"main archive, {TESTING_LIST} + {BACKGROUND} cut into 1 s clips"
    else:
        clips, layout = _test_archive(root), "test-set archive (MLPerf Tiny's scored split)"
    if not clips:
        raise DatasetError(f"{root} holds no Speech Commands WAVs; give {LAYOUT}")
    return sorted(clips, key=lambda c: _key_order(c.key)), layout


@functools.cache
def _mel_weights(spectrogram_bins: int) -> np.ndarray:
    return tf_linear_to_mel_weight_matrix(MEL_BINS, spectrogram_bins, SAMPLE_RATE, LOWER_HZ, UPPER_HZ)


def kws_mfcc(samples: np.ndarray) -> np.ndarray:
    """Tiny's evaluation features of one clip of int16 samples: ``[49, 10]`` float32 MFCCs."""
    audio = np.asarray(samples[:CLIP_SAMPLES], dtype=np.float64)
    peak = audio.max() if len(audio) else 0.0
    if peak != 0:
        audio = audio / peak
    audio = np.pad(audio, (0, CLIP_SAMPLES - len(audio)))
    magnitude = tf_stft_magnitude(audio, FRAME_LENGTH, FRAME_STEP)
    mel = magnitude @ _mel_weights(magnitude.shape[-1])
    return tf_mfccs_from_log_mel_spectrograms(np.log(mel + LOG_OFFSET))[:, :MFCCS].astype(np.float32)


def load(path: Path, limit: int | None, inputs: Sequence[TensorSpec], shapes: dict[str, tuple[int, ...]],
         preprocess: str | None, perturb: Callable[[np.ndarray, int], np.ndarray] | None = None) -> Samples:
    """The first ``limit`` utterances (all when None) of the folder at ``path``, as Tiny's MFCCs for the model;
    ``perturb`` (robustness) corrupts utterance i's waveform, as float samples, before its features."""
    from agent.datasets import Samples

    if (preprocess or DEFAULT_PREPROCESS) != DEFAULT_PREPROCESS:
        raise DatasetError(f"speech-commands is preprocessed as {DEFAULT_PREPROCESS} (MLPerf Tiny KWS), not {preprocess}")
    if limit is not None and limit < 1:
        raise DatasetError(f"speech-commands:{path}:{limit} selects no utterances; N counts utterances and must be >= 1")
    clips, layout = utterances(Path(path))
    total = len(clips)
    clips = clips[:limit]
    waveforms = (_samples(c) for c in clips)
    if perturb is not None:
        waveforms = (perturb(w.astype(np.float64), i) for i, w in enumerate(waveforms))
    features = np.stack([kws_mfcc(w) for w in waveforms])
    _background.cache_clear()
    feeds, records = fit_to_input(features[..., None], inputs, shapes, "speech-commands", HINT)
    labels = np.array([c.label for c in clips], dtype=np.int64)
    source = f"speech-commands:{path} ({layout}; {len(clips)} of {total} utterances in TFDS order; {DEFAULT_PREPROCESS})"
    return Samples("speech-commands", source, feeds, labels, features, inputs=records, task="classification",
                   family="audio", n_classes=len(CLASSES))


def _samples(clip: Utterance) -> np.ndarray:
    if clip.start is None:
        return read_pcm16(clip.path, SAMPLE_RATE)
    return _background(clip.path)[clip.start:clip.start + SAMPLE_RATE]


@functools.lru_cache(maxsize=8)
def _background(path: Path) -> np.ndarray:
    """A background-noise file (a minute long), read once for the hundred clips cut from it."""
    return read_pcm16(path, SAMPLE_RATE)
