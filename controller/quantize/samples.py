"""Calibration and evaluation samples, and scoring a model file on them with the agent's own runtimes.

The accuracy that decides a variant must be the accuracy the agent will report when it benchmarks
that file, so scoring goes through the agent's datasets (the same preprocessing, the same int8
input quantisation) and runtime sessions, not through a second copy of them here. Each score
keeps which samples were right and the samples' fingerprint, so a variant and its source are
compared sample by sample (``controller.analysis.paired``).

Evaluation takes the first N samples of its dataset, calibration the last N (``request``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from agent import datasets, model_file, runtimes
from agent.accuracy import classification_metrics
from agent.contract import Accuracy, CalibrationBlock, RuntimeOptions
from agent.datasets import Samples
from agent.errors import DatasetError
from agent.runtimes.base import Session, TensorSpec
from agent.runtimes.quant import to_real_output
from controller.quantize.request import DataSpec

BATCH = 256  # samples per runtime call where the model's batch dimension is free


@dataclass(frozen=True)
class Scored:
    """A model's top-1 on the evaluation samples (which samples it got right: ``accuracy.correct_bits``)
    and its first output (real values, one row per sample) to compare variants by more than their arg-max."""

    accuracy: Accuracy
    outputs: np.ndarray
    dataset: str

    @property
    def top1(self) -> float:
        return self.accuracy.top1


def open_model(path: Path, threads: int | None) -> Session:
    """The agent's runtime session for a model file, as a benchmark would open it."""
    model = model_file.resolve(str(path))
    return runtimes.open_session(model, runtimes.runtime_for(model), RuntimeOptions(threads=threads))


def _indices(total: int, spec: DataSpec, flag: str, tail: bool) -> np.ndarray:
    count = total if spec.count is None else spec.count
    if count > total:
        raise DatasetError(f"{flag} {spec.text}: the dataset holds {total} samples; ask for at most {total}")
    return np.arange(total - count, total) if tail else np.arange(count)


def load(spec: DataSpec, inputs: tuple[TensorSpec, ...], shapes: dict[str, tuple[int, ...]], flag: str) -> Samples:
    """The dataset ``spec`` names, fitted to ``inputs``; synthetic data is drawn as many times as asked."""
    if spec.name == "synthetic":
        return datasets.synthetic(inputs, shapes, count=spec.count or datasets.SYNTHETIC_SAMPLES)
    try:
        return datasets.load(spec.name, inputs, shapes)
    except DatasetError as exc:
        raise DatasetError(f"{flag} {spec.text}: {exc}") from None


def calibration(spec: DataSpec, inputs: tuple[TensorSpec, ...], shapes: dict[str, tuple[int, ...]]
                ) -> tuple[list[dict[str, np.ndarray]], CalibrationBlock, int]:
    """The last N samples of ``spec`` as feeds for the float model's ``inputs``, what they were, and
    how many samples the dataset holds (to tell whether evaluation's first samples overlap them)."""
    samples = load(spec, inputs, shapes, "--calibration")
    picked = _indices(len(samples), spec, "--calibration", tail=True)
    first, last = int(picked[0]), int(picked[-1])
    fingerprint = samples.fingerprint(picked) if samples.labels is not None else None
    block = CalibrationBlock(dataset=spec.name, source=f"{samples.source}, samples {first}-{last}", n=len(picked),
                             samples_sha256=fingerprint)
    return [samples.feeds[i] for i in picked], block, len(samples)


def run_all(session: Session, feeds: list[dict[str, np.ndarray]]) -> np.ndarray:
    """The first output of every feed, in order, batched where the model's batch dimension is free."""
    if session.batchable:
        rows = []
        for start in range(0, len(feeds), BATCH):
            chunk = feeds[start : start + BATCH]
            stacked = {name: np.concatenate([f[name] for f in chunk]) for name in chunk[0]}
            rows.append(session.run(stacked)[0])
        return np.concatenate(rows)
    return np.concatenate([session.run(feed)[0] for feed in feeds])


def score(path: Path, spec: DataSpec, shapes: dict[str, tuple[int, ...]], threads: int | None) -> Scored:
    """Top-1 of the model at ``path`` over the first N labelled samples of ``spec``."""
    session = open_model(path, threads)
    samples = load(spec, session.info.inputs, shapes, "--eval")
    if samples.labels is None:
        raise DatasetError(f"--eval {spec.text} has no labels, so accuracy cannot be measured; give a labelled dataset "
                           "(fashion-mnist:subset, or a folder of .npy files with labels.npy)")
    picked = _indices(len(samples), spec, "--eval", tail=False)
    raw = run_all(session, [samples.feeds[i] for i in picked])
    outputs = to_real_output(raw, session.info.outputs[0]).reshape(len(picked), -1).astype(np.float64)
    labels = samples.labels[picked]
    if int(labels.max()) >= outputs.shape[1]:
        raise DatasetError(f"--eval {spec.text}: labels go up to {int(labels.max())}, but the model's first output "
                           f"({session.info.outputs[0].name}) has {outputs.shape[1]} values per sample; "
                           "give a dataset labelled for this model")
    metrics = classification_metrics(outputs.argmax(axis=1), labels, outputs.shape[1])
    accuracy = Accuracy(top1=metrics["top1"], ci95=tuple(metrics["ci95"]), n=metrics["n"], correct=metrics["correct"],
                        correct_bits=metrics["correct_bits"], samples_sha256=samples.fingerprint(picked))
    return Scored(accuracy, outputs, spec.text)
