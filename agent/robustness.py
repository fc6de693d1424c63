"""``--mode robustness``: accuracy on the same samples under common corruptions, and its drop from clean.

Why: a model on an edge device meets sensor noise, blur, bad light and compression, and a quantised
model often loses more accuracy there than on clean inputs, which a clean accuracy run cannot show.
So a robustness run is an accuracy run (the clean samples under LoadGen's AccuracyOnly, scored into
``kpis.accuracy``) followed by one more pass over the dataset per corruption and severity of its plan
(``agent.corruptions.plan``): the dataset is loaded again with each sample corrupted where ImageNet-C
corrupts it (``agent.datasets``: the image at the model's resolution, before normalisation; the
waveform before its features), the model is run over it without timing, sample by sample or in the
run's batches as the accuracy run does, and the outputs are scored by ``agent.scoring.score``.

Every sample's corruption is seeded by its index, the corruption and the severity, so the corrupted
samples (their ``samples_sha256``) are the same for every variant of a model on every device; and each
corrupted pass scores the clean run's samples in the same order, so clean and corrupted are paired
sample by sample:

- per corruption and severity, ``drop_pp`` = clean top-1 − corrupted top-1 with Newcombe's paired 95 %
  interval (``agent.stats.newcombe_paired``: method 10, Stat Med 1998) over the discordant pairs
  (``clean_only``: right clean and wrong corrupted; ``corrupted_only``: the other way);
- over the plan, ``mean_top1`` (ImageNet-C's mean corruption accuracy, unnormalised) and
  ``mean_drop_pp`` with Student's t 95 % interval of the mean over samples of
  d_i = clean_i − mean_k corrupted_ik (each sample's clean correctness minus its share of corruptions
  right), which keeps the pairing and the correlation between corruptions of one sample.

Only classification (top-1) is scored; other tasks are refused in one line. Cost: one extra load and
one untimed pass over the dataset per (corruption, severity).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agent import corruptions, scoring
from agent.accuracy import unpack_correctness
from agent.datasets import Samples
from agent.errors import DatasetError
from agent.runtimes.base import Session
from agent.scenarios.sut import ModelSut
from agent.stats import mean_interval_t, newcombe_paired

METHOD = ("each corruption and severity over the clean run's samples in the same order, every sample's corruption "
          "seeded by its index (agent.corruptions); drop: Newcombe paired (1998, method 10) 95 % interval; "
          "mean drop: Student's t 95 % interval of the mean over samples of (clean right − share of corruptions right)")

Reload = Callable[[corruptions.Perturb], Samples]  # the dataset loaded again with each sample perturbed
Progress = Callable[[str, dict[str, Any]], None]


def check(samples: Samples, family: str) -> None:
    """Refuse, in one line, clean samples a robustness run cannot score: not top-1, or not of ``family``."""
    if samples.task != "classification":
        raise DatasetError(f"--mode robustness scores top-1 of classification, and dataset {samples.name} is scored by "
                           f"its {samples.task} metric; use a classification dataset (fashion-mnist, imagenet:, vww:, "
                           "cifar10: or speech-commands:)")
    if samples.family != family:
        raise DatasetError(f"dataset {samples.name} holds {samples.family or 'samples that cannot be corrupted'}, not "
                           f"{family}; use fashion-mnist, imagenet:, vww:, cifar10: or speech-commands:")


def _outputs(session: Session, samples: Samples, indices: Sequence[int], batch_size: int) -> dict[int, list[np.ndarray]]:
    """The model's outputs per sample index, untimed, in the run's batches where the model takes them."""
    sut = ModelSut(session, samples, batch_size)
    kept: dict[int, list[np.ndarray]] = {}
    step = max(1, sut.batch_size)
    for start in range(0, len(indices), step):
        chunk = list(indices[start:start + step])
        for index, out in zip(chunk, sut.process(chunk), strict=True):
            kept[index] = out
    return kept


def _score(corruption: str, severity: int, accuracy: dict[str, Any], clean: np.ndarray) -> tuple[dict[str, Any], np.ndarray]:
    """The ``CorruptionScore`` of one variant from its accuracy block, and its per-sample correctness."""
    right = unpack_correctness(accuracy["correct_bits"], accuracy["n"])
    a = int(np.sum(clean & right))
    clean_only, corrupted_only = int(np.sum(clean & ~right)), int(np.sum(~clean & right))
    lo, hi = newcombe_paired(a, clean_only, corrupted_only, len(clean) - a - clean_only - corrupted_only)
    drop = (clean.mean() - right.mean()) * 100
    return {"corruption": corruption, "severity": severity, "accuracy": accuracy | {"confusion_matrix": []},
            "drop_pp": float(drop), "drop_ci95_pp": [lo * 100, hi * 100], "clean_only": clean_only,
            "corrupted_only": corrupted_only}, right


def run(session: Session, samples: Samples, kept: dict[int, list[np.ndarray]], clean: dict[str, Any] | None,
        plan: Sequence[tuple[str, int]], reload: Reload, reading: dict[str, Any] | None, batch_size: int = 1,
        progress: Progress | None = None) -> dict[str, Any]:
    """The ``kpis.robustness`` block: ``plan``'s corruptions of the clean ``samples`` (whose outputs the
    accuracy run ``kept``, scored as ``clean``), each loaded by ``reload`` and scored like the clean run."""
    if samples.family is None:
        raise DatasetError(f"dataset {samples.name} cannot be corrupted; use fashion-mnist, imagenet:, vww:, cifar10: "
                           "or speech-commands:")
    check(samples, samples.family)
    if clean is None or clean.get("correct_bits") is None or not kept:
        raise DatasetError(f"--mode robustness needs the clean run's per-sample top-1, and dataset {samples.name} "
                           "gave none; use a labelled classification dataset")
    indices = sorted(kept)
    clean_right = unpack_correctness(clean["correct_bits"], clean["n"])
    scores, rights = [], []
    for corruption, severity in plan:
        if progress is not None:
            progress("corrupting", {"corruption": corruption, "severity": severity})
        corrupted = reload(corruptions.perturbation(corruption, severity))
        if len(corrupted) != len(samples) or not np.array_equal(corrupted.labels, samples.labels):
            raise DatasetError(f"dataset {samples.name} loaded under {corruption}:{severity} gave other samples "
                               f"({len(corrupted)} for {len(samples)}); it must not change while the run reads it")
        outputs = _outputs(session, corrupted, indices, batch_size)
        accuracy, _ = scoring.score(outputs, corrupted, session.info.outputs, reading)
        score, right = _score(corruption, severity, accuracy, clean_right)
        scores.append(score)
        rights.append(right)
    return summary(samples.family, scores, clean_right, rights)


def summary(family: str, scores: list[dict[str, Any]], clean: np.ndarray, rights: Sequence[np.ndarray]) -> dict[str, Any]:
    """The ``Robustness`` block from the per-variant scores and every sample's correctness, clean and corrupted."""
    if not scores:
        raise DatasetError("--mode robustness with an empty plan of corruptions; name some with --corruptions, or none "
                           "for all of them")
    per_sample = clean.astype(np.float64) - np.mean(np.stack(rights), axis=0)
    lo, hi = mean_interval_t(per_sample)
    return {"family": family, "scores": scores, "mean_top1": float(np.mean([s["accuracy"]["top1"] for s in scores])),
            "mean_drop_pp": float(per_sample.mean() * 100),
            "mean_drop_ci95_pp": [max(-100.0, lo * 100), min(100.0, hi * 100)], "method": METHOD}
