"""Reading the 16-bit PCM WAV files the MLPerf Tiny audio datasets ship, with the standard library.

Speech Commands and the DCASE 2020 ToyCar clips are mono, 16 kHz, 16-bit PCM; Python's ``wave``
module reads exactly that and needs no extra package on a device. A file in any other form (another
sample width, several channels, another rate, not a WAV at all) would feed the model features
computed on a different signal than MLPerf scores, so it is refused with one line naming the file.
"""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

from agent.errors import DatasetError


def read_pcm16(path: Path, rate: int) -> np.ndarray:
    """The samples of a mono 16-bit PCM WAV recorded at ``rate`` Hz, as int16 (one value per sample)."""
    try:
        with wave.open(str(path), "rb") as wav:
            width, channels, found, count = wav.getsampwidth(), wav.getnchannels(), wav.getframerate(), wav.getnframes()
            data = wav.readframes(count)
    except (wave.Error, EOFError) as e:
        raise DatasetError(f"{path} is not a readable PCM WAV file ({e}); the dataset needs 16-bit PCM WAVs") from e
    except OSError as e:
        raise DatasetError(f"cannot read {path}: {e.strerror or e}") from e
    if width != 2:
        raise DatasetError(f"{path} holds {8 * width}-bit samples; the dataset needs 16-bit PCM WAVs "
                           f"(convert it, e.g. sox IN -b 16 OUT)")
    if channels != 1:
        raise DatasetError(f"{path} has {channels} channels; the dataset needs mono WAVs")
    if found != rate:
        raise DatasetError(f"{path} is sampled at {found} Hz; the dataset needs {rate} Hz (the rate MLPerf's features assume)")
    samples = np.frombuffer(data, dtype="<i2")
    if len(samples) != count:
        raise DatasetError(f"{path} is truncated: its header announces {count} samples, it holds {len(samples)}")
    return samples.astype(np.int16)
