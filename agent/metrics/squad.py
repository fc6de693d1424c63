"""SQuAD v1.1 F1 and exact match, as MLPerf Inference scores BERT and MobileBERT, with 95 % intervals.

The scoring is the official SQuAD v1.1 evaluation that MLCommons' ``language/bert/accuracy-squad.py``
runs (it shells out to ``language/bert/evaluate_v1.1.py`` in github.com/mlcommons/inference, a copy of
allenai/bi-att-flow's ``squad/evaluate-v1.1.py``), line for line:

- ``normalize_answer``: lower case, drop every ``string.punctuation`` character, replace the whole
  words a/an/the with a space (``\\b(a|an|the)\\b``), collapse whitespace — in that order;
- F1 per ground truth: token overlap as a ``Counter`` intersection (a token counts as often as it
  occurs in both), 0 when nothing overlaps (so two answers that both normalise to nothing score
  F1 0 though exact match 1, as the official script does);
- per question, the maximum over its ground-truth answers; the dataset score is the mean × 100.

Counting: every question in ``answers`` counts in ``n``. A question with no prediction scores 0 for
both F1 and exact match and still counts (the official script warns "Unanswered question ... will
receive score 0." and divides by all questions); ``unanswered`` says how many there were. A
prediction for an id that is not in ``answers`` is ignored, as the official script ignores it.

Intervals (in percent, like the scores, clipped to [0, 100]):

- exact match is a proportion: Wilson's score interval (``agent.stats.wilson_interval``);
- F1 is the mean of per-question values in [0, 1]: Student's t interval on the mean,
  ``mean ± t(0.975, n-1) · s / √n`` with the sample standard deviation ``s``. The agent has no
  scipy, so the t quantile is the Cornish–Fisher expansion of Abramowitz & Stegun 26.7.5 to four
  terms (within 1e-7 of the exact quantile for n - 1 >= 29, the only range used). Below 30 questions
  the mean of such lumpy values (many exact 0s and 1s) is too far from normal to trust, so
  ``f1_ci95`` is None there. When every question scores the same the interval has zero width: the
  data carry no spread to estimate from, and the interval says nothing then.

``per_question_f1`` (the values in [0, 1], in the order of ``answers``) is left out unless asked for
with ``per_question=True``: SQuAD v1.1's dev set has 10,570 questions, too many for a result document.
"""

from __future__ import annotations

import math
import re
import string
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from agent.errors import DatasetError
from agent.stats import Z95, wilson_interval

MIN_N_FOR_T_INTERVAL = 30

_PUNCTUATION = set(string.punctuation)
_ARTICLES = re.compile(r"\b(a|an|the)\b")


def normalize_answer(text: str) -> str:
    """Lower text and remove punctuation, articles and extra whitespace (the official order)."""
    text = text.lower()
    text = "".join(ch for ch in text if ch not in _PUNCTUATION)
    text = _ARTICLES.sub(" ", text)
    return " ".join(text.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    """Token-level F1 of one prediction against one ground truth, in [0, 1]."""
    prediction_tokens = normalize_answer(prediction).split()
    truth_tokens = normalize_answer(ground_truth).split()
    num_same = sum((Counter(prediction_tokens) & Counter(truth_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(prediction_tokens)
    recall = num_same / len(truth_tokens)
    return 2 * precision * recall / (precision + recall)


def exact_match_score(prediction: str, ground_truth: str) -> bool:
    return normalize_answer(prediction) == normalize_answer(ground_truth)


def t_quantile_975(df: int) -> float:
    """Student's t 0.975 quantile for ``df`` degrees of freedom: Abramowitz & Stegun 26.7.5
    (Cornish–Fisher in 1/df around the normal quantile), four terms."""
    if df < 1:
        raise ValueError("the t quantile needs at least 1 degree of freedom")
    z = Z95
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def mean_t_interval(values: Sequence[float]) -> tuple[float, float] | None:
    """95 % Student's t interval for the mean of ``values`` (each in [0, 1]), clipped to [0, 1];
    None below ``MIN_N_FOR_T_INTERVAL`` values."""
    n = len(values)
    if n < MIN_N_FOR_T_INTERVAL:
        return None
    mean = math.fsum(values) / n
    variance = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    half = t_quantile_975(n - 1) * math.sqrt(variance / n)
    return (max(0.0, mean - half), min(1.0, mean + half))


def _check(predictions: Any, answers: Any) -> None:
    if not isinstance(answers, Mapping) or not answers:
        raise DatasetError("SQuAD answers must be a non-empty mapping of question id to its ground-truth answer texts")
    if not isinstance(predictions, Mapping):
        raise DatasetError("SQuAD predictions must be a mapping of question id to the predicted answer text")
    for qid, truths in answers.items():
        if isinstance(truths, str | bytes) or not isinstance(truths, Sequence) or not truths:
            raise DatasetError(f"SQuAD question {qid!r} needs a non-empty list of ground-truth answer texts, got {truths!r}")
        if not all(isinstance(t, str) for t in truths):
            raise DatasetError(f"SQuAD question {qid!r} has a ground-truth answer that is not text: {truths!r}")
        if qid in predictions and not isinstance(predictions[qid], str):
            raise DatasetError(f"SQuAD prediction for {qid!r} must be text, got {type(predictions[qid]).__name__}")


def squad_scores(predictions: Mapping[str, str], answers: Mapping[str, Sequence[str]], *,
                 per_question: bool = False) -> dict[str, Any]:
    """SQuAD v1.1 F1 and exact match of ``predictions`` (question id -> text) against ``answers``
    (question id -> its ground-truth texts), in percent, with 95 % intervals (see the module)."""
    _check(predictions, answers)
    f1s: list[float] = []
    exact = unanswered = 0
    for qid, truths in answers.items():
        if qid not in predictions:
            unanswered += 1
            f1s.append(0.0)
            continue
        prediction = predictions[qid]
        exact += max(exact_match_score(prediction, t) for t in truths)
        f1s.append(max(f1_score(prediction, t) for t in truths))
    n = len(f1s)
    em_lo, em_hi = wilson_interval(exact, n)
    f1_ci = mean_t_interval(f1s)
    out: dict[str, Any] = {
        "f1": 100.0 * math.fsum(f1s) / n,
        "exact_match": 100.0 * exact / n,
        "n": n,
        "unanswered": unanswered,
        "f1_ci95": None if f1_ci is None else [100.0 * f1_ci[0], 100.0 * f1_ci[1]],
        "exact_match_ci95": [100.0 * em_lo, 100.0 * em_hi],
    }
    if per_question:
        out["per_question_f1"] = f1s
    return out
