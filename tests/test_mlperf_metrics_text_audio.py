"""SQuAD v1.1 F1/exact match (MLPerf's BERT/MobileBERT) and ROC AUC with DeLong's interval (MLPerf Tiny's
anomaly detection): hand-worked cases, equality with scikit-learn, and the 95 % intervals' coverage by simulation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from agent.errors import DatasetError
from agent.metrics.auc import midranks, roc_auc
from agent.metrics.squad import f1_score, mean_t_interval, normalize_answer, squad_scores, t_quantile_975

# --- SQuAD v1.1 ---------------------------------------------------------------------------------


def test_normalize_answer_follows_the_official_order():
    assert normalize_answer("The  Eiffel Tower!") == "eiffel tower"
    # punctuation goes first, so "U.S." becomes one token "us"; "an" and "A" go only as whole words
    assert normalize_answer("An apple, a U.S. banana; anthem") == "apple us banana anthem"
    assert normalize_answer("the") == ""


def test_hand_worked_squad_scores():
    answers = {
        "q1": ["Eiffel Tower"],                  # articles, case and punctuation ignored: F1 1, EM 1
        "q2": ["Paris", "Paris, France"],        # max over truths: 2/3 precision, 1 recall -> 0.8; EM 0
        "q3": ["the dog sat"],                   # [cat sat] vs [dog sat]: P = R = 1/2 -> 0.5
        "q4": ["red blue blue"],                 # Counter overlap red 1 + blue 1 of 3 each -> 2/3
        "q5": ["anything"],                      # no prediction: counts, scores 0
    }
    predictions = {"q1": "The Eiffel Tower.", "q2": "in Paris France", "q3": "a cat sat", "q4": "red red blue",
                   "unknown": "ignored, as the official script ignores it"}
    s = squad_scores(predictions, answers, per_question=True)
    expected = [1.0, 0.8, 0.5, 2 / 3, 0.0]
    assert s["per_question_f1"] == pytest.approx(expected)
    assert s["f1"] == pytest.approx(100 * sum(expected) / 5)
    assert s["exact_match"] == pytest.approx(100 * 1 / 5)
    assert s["n"] == 5 and s["unanswered"] == 1
    assert s["f1_ci95"] is None  # fewer than 30 questions: no t interval
    # Wilson for 1 of 5, worked from the formula: centre (p + z²/2n)/(1 + z²/n), half z√(p(1-p)/n + z²/4n²)/(1 + z²/n)
    assert s["exact_match_ci95"] == pytest.approx([3.622410863, 62.446537024], abs=1e-6)
    assert "per_question_f1" not in squad_scores(predictions, answers)


def test_f1_is_zero_but_exact_match_one_when_both_normalise_to_nothing():
    """The official script's quirk: 'the' vs 'a' are equal once normalised, but share no token."""
    assert f1_score("the", "a") == 0.0
    s = squad_scores({"q": "the"}, {"q": ["a"]})
    assert s["exact_match"] == 100.0 and s["f1"] == 0.0


def test_intervals_on_thirty_questions_have_the_hand_worked_width():
    """15 right, 15 wrong: mean F1 0.5, s = √(30·0.25/29); t(0.975, 29) = 2.0452296; Wilson 15/30."""
    answers = {f"q{i}": ["yes"] for i in range(30)}
    predictions = {f"q{i}": ("yes" if i < 15 else "no") for i in range(30)}
    s = squad_scores(predictions, answers)
    assert s["f1"] == 50.0 and s["exact_match"] == 50.0
    half = 2.045229642 * math.sqrt(30 * 0.25 / 29) / math.sqrt(30) * 100
    assert half == pytest.approx(18.98948050, abs=1e-6)
    assert s["f1_ci95"] == pytest.approx([50 - half, 50 + half], abs=1e-5)
    assert s["exact_match_ci95"] == pytest.approx([33.15412564, 66.84587436], abs=1e-6)
    assert s["f1_ci95"][0] < s["f1"] < s["f1_ci95"][1]


def test_t_quantile_matches_scipy_where_it_is_used():
    from scipy import stats  # the controller extra; CI installs it
    for df in (29, 30, 50, 199, 1000, 10_569):
        assert t_quantile_975(df) == pytest.approx(stats.t.ppf(0.975, df), abs=1e-6)


@pytest.mark.parametrize(("predictions", "answers", "needle"), [
    ({}, {}, "non-empty mapping"),
    ({"q": "x"}, {"q": "Paris"}, "list of ground-truth"),        # a bare string, not a list of answers
    ({"q": "x"}, {"q": []}, "list of ground-truth"),
    ({"q": "x"}, {"q": [3]}, "not text"),
    ({"q": 3}, {"q": ["x"]}, "must be text"),
    (["x"], {"q": ["x"]}, "predictions must be a mapping"),
])
def test_bad_squad_input_is_a_one_line_dataset_error(predictions, answers, needle):
    with pytest.raises(DatasetError, match=needle) as err:
        squad_scores(predictions, answers)
    assert "\n" not in str(err.value)


def test_f1_interval_covers_the_true_mean_95_percent_of_the_time():
    """Per-question F1 like a real model's: 25 % wrong (0), 35 % exact (1), 40 % partial (Beta(2, 5));
    true mean 0.35 + 0.4·2/7. 4,000 sets of 200 questions (the t interval covers 94.9 % here in 100,000)."""
    rng = np.random.default_rng(20261207)
    truth, reps, covered = 0.35 + 0.4 * 2 / 7, 4000, 0
    for _ in range(reps):
        kind = rng.choice(3, size=200, p=[0.25, 0.35, 0.4])
        values = np.where(kind == 0, 0.0, np.where(kind == 1, 1.0, rng.beta(2, 5, size=200)))
        lo, hi = mean_t_interval(values.tolist())
        covered += lo <= truth <= hi
    assert 0.93 <= covered / reps <= 0.97, covered / reps


# --- ROC AUC ------------------------------------------------------------------------------------


def test_hand_worked_auc_and_delong_interval():
    # anomalous 0.35, 0.8 vs normal 0.1, 0.4: 0.35 beats 0.1 only, 0.8 beats both -> 3/4
    r = roc_auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([0, 0, 1, 1]))
    assert r["auc"] == 0.75 and (r["n_positive"], r["n_negative"]) == (2, 2)
    # V10 = [1/2, 1], V01 = [1, 1/2]: var = 0.125/2 + 0.125/2 = 0.125 -> 0.75 ± 1.96·0.35355, clipped at 1
    assert r["ci95"] == pytest.approx([0.75 - 1.959963985 * math.sqrt(0.125), 1.0])
    assert r["ci95"][0] == pytest.approx(0.057048088)


def test_midranks_average_tied_ranks():
    assert midranks(np.array([3.0, 1.0, 3.0, 2.0, 3.0])).tolist() == [4.0, 1.0, 4.0, 2.0, 4.0]


def test_auc_equals_scikit_learn_with_ties():
    from sklearn import metrics as sklearn_metrics  # the quantize extra; CI installs it
    rng = np.random.default_rng(7)
    for size in (5, 40, 333):
        scores = rng.integers(0, 6, size).astype(float)       # many ties, within and across classes
        labels = rng.integers(0, 2, size)
        labels[:2] = [0, 1]
        assert roc_auc(scores, labels)["auc"] == pytest.approx(sklearn_metrics.roc_auc_score(labels, scores), abs=1e-12)
        continuous = rng.normal(labels * 0.7, 1.0)
        assert roc_auc(continuous, labels.astype(bool))["auc"] == pytest.approx(
            sklearn_metrics.roc_auc_score(labels, continuous), abs=1e-12)


def _delong_direct(scores: np.ndarray, labels: np.ndarray) -> tuple[float, float]:
    """DeLong 1988 from the definition: psi(x, y) = 1 if x > y, 1/2 if equal, over all pairs, O(mn)."""
    x, y = scores[labels == 1], scores[labels == 0]
    psi = (x[:, None] > y[None, :]) + 0.5 * (x[:, None] == y[None, :])
    v10, v01 = psi.mean(axis=1), psi.mean(axis=0)
    return float(psi.mean()), float(v10.var(ddof=1) / x.size + v01.var(ddof=1) / y.size)


def test_delong_interval_matches_the_structural_components_from_the_definition():
    rng = np.random.default_rng(11)
    for m, n in ((3, 4), (30, 70), (120, 45)):
        labels = np.r_[np.ones(m, dtype=int), np.zeros(n, dtype=int)]
        scores = np.round(rng.normal(labels * 0.8, 1.0), 1)      # rounded: ties across classes
        auc, variance = _delong_direct(scores, labels)
        half = 1.959963984540054 * math.sqrt(variance)
        r = roc_auc(scores, labels)
        assert r["auc"] == pytest.approx(auc, abs=1e-12)
        assert r["ci95"] == pytest.approx([max(0.0, auc - half), min(1.0, auc + half)], abs=1e-12)


def test_delong_interval_covers_the_true_auc_95_percent_of_the_time():
    """4,000 sets of 50 anomalous N(1, 1) and 50 normal N(0, 1) scores: true AUC Φ(1/√2) = 0.7602.
    (DeLong covers about 94.4 % here in 20,000, a known slight shortfall at this size.)"""
    rng = np.random.default_rng(20261207)
    truth = 0.5 * (1 + math.erf(0.5))            # Φ(Δ/√2) with Δ = 1
    labels = np.r_[np.ones(50, dtype=int), np.zeros(50, dtype=int)]
    reps, covered = 4000, 0
    for _ in range(reps):
        lo, hi = roc_auc(rng.normal(labels.astype(float), 1.0), labels)["ci95"]
        covered += lo <= truth <= hi
    assert 0.93 <= covered / reps <= 0.97, covered / reps


def test_few_clips_give_no_interval_and_one_class_is_an_error():
    assert roc_auc(np.array([0.2, 0.9, 0.1]), np.array([0, 1, 0]))["ci95"] is None   # one anomalous clip
    with pytest.raises(DatasetError, match="got 0 anomalous and 3 normal") as err:
        roc_auc(np.array([0.2, 0.9, 0.1]), np.array([0, 0, 0]))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize(("scores", "labels", "needle"), [
    ([0.1, float("nan")], [0, 1], "NaN"),
    ([0.1, 0.2], [0, 2], "1 \\(anomalous\\) or 0"),
    ([0.1, 0.2, 0.3], [0, 1], "same length"),
    ([[0.1, 0.2]], [[0, 1]], "1-D"),
    (["a", "b"], [0, 1], "must be numbers"),
])
def test_bad_auc_input_is_a_one_line_dataset_error(scores, labels, needle):
    with pytest.raises(DatasetError, match=needle) as err:
        roc_auc(np.asarray(scores) if not isinstance(scores[0], str) else scores, np.asarray(labels))
    assert "\n" not in str(err.value)
