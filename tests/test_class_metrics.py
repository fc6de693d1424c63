"""Precision, recall and F1 per class and macro, with intervals (``controller.analysis.class_metrics``):
the arithmetic on hand-worked confusion matrices, the intervals' coverage by simulation, and
pooling on the stored results of real accuracy runs (runs over the same samples counted once).
"""

from __future__ import annotations

import json
import math

import msgspec
import numpy as np
import pytest

from agent import bench, contract
from agent.accuracy import classification_metrics
from agent.contract import Result, RuntimeOptions
from agent.scenarios.settings import Mode, Scenario, for_profile
from agent.stats import wilson_interval
from controller.analysis import class_metrics, scorecard
from controller.analysis.class_metrics import MACRO_KEYS, bootstrap_macro, class_figures, macro_of_counts
from tests.cli_harness import edgeperf_here
from tests.stored_results import store_campaign

# true class in rows, predicted in columns: support 6, 6, 4; predicted 7, 4, 5; right 5, 3, 4
HAND = np.array([[5, 1, 0], [2, 3, 1], [0, 0, 4]])


# ---- the arithmetic ------------------------------------------------------------------------------------
def test_per_class_figures_by_hand():
    figs = [class_figures(k, HAND[k].sum(), HAND[:, k].sum(), HAND[k, k]) for k in range(3)]
    assert [f.precision for f in figs] == pytest.approx([5 / 7, 3 / 4, 4 / 5])
    assert [f.recall for f in figs] == pytest.approx([5 / 6, 3 / 6, 1.0])
    assert [f.f1 for f in figs] == pytest.approx([10 / 13, 6 / 10, 8 / 9])
    assert figs[0].precision_ci95 == wilson_interval(5, 7) and figs[0].recall_ci95 == wilson_interval(5, 6)
    # F1 = 2q/(1+q) with q = right / (support + predicted − right) = 5/8; its interval is Wilson's of q mapped
    lo, hi = wilson_interval(5, 8)
    assert figs[0].f1_ci95 == pytest.approx((2 * lo / (1 + lo), 2 * hi / (1 + hi)))
    assert figs[0].f1 == pytest.approx(2 * (5 / 8) / (1 + 5 / 8))
    assert all(f.f1_ci95[0] <= f.f1 <= f.f1_ci95[1] for f in figs)
    assert figs[2].recall_ci95[1] == 1.0 and figs[2].recall_ci95[0] < 1  # 4 of 4: Wilson, not [1, 1]


def test_macro_matches_the_agent_and_scikit_learn():
    labels = np.repeat(np.arange(3), HAND.sum(axis=1))
    predicted = np.concatenate([np.repeat(np.arange(3), HAND[k]) for k in range(3)])
    agent = classification_metrics(predicted, labels, 4)  # a 4th class absent from both: not in the mean
    ours = macro_of_counts(HAND.sum(axis=1), HAND.sum(axis=0), np.diag(HAND))
    for key in MACRO_KEYS:
        assert float(ours[key]) == pytest.approx(agent[key])
    from sklearn import metrics  # the quantize extra's (installed for the tests)
    assert float(ours["f1_macro"]) == pytest.approx(metrics.f1_score(labels, predicted, average="macro"))
    assert float(ours["precision_macro"]) == pytest.approx(metrics.precision_score(labels, predicted, average="macro"))


def test_a_class_never_predicted_has_no_precision_and_counts_as_zero_in_the_macro():
    never = class_figures(1, 3, 0, 0)  # 3 samples, never predicted
    assert never.precision is None and never.precision_ci95 is None and never.recall == 0 and never.f1 == 0
    assert never.f1_ci95[0] == pytest.approx(0, abs=1e-12) and 0 < never.f1_ci95[1] < 1
    wrong = class_figures(2, 1, 3, 0)  # predicted 3 times, always wrong
    assert wrong.precision == 0 and wrong.precision_ci95[0] == pytest.approx(0, abs=1e-12) and wrong.recall == 0
    macro = macro_of_counts(np.array([5, 3]), np.array([8, 0]), np.array([5, 0]))
    agent = classification_metrics(np.array([0] * 8), np.array([0] * 5 + [1] * 3), 2)
    assert float(macro["precision_macro"]) == pytest.approx((5 / 8 + 0) / 2) == pytest.approx(agent["precision_macro"])
    assert float(macro["recall_macro"]) == pytest.approx(agent["recall_macro"]) == pytest.approx(0.5)


def test_the_bootstrap_is_seeded_and_brackets_the_estimate():
    cm = np.array([[50, 5, 3], [4, 40, 6], [2, 8, 30]])
    first, again = bootstrap_macro(cm), bootstrap_macro(cm)
    assert first == again
    estimate = macro_of_counts(cm.sum(1), cm.sum(0), np.diag(cm))
    for key in MACRO_KEYS:
        lo, hi = first[key]
        assert lo <= float(estimate[key]) <= hi and 0 < hi - lo < 0.3
    fewer = bootstrap_macro(np.ceil(cm / 4))  # a quarter of the samples: wider intervals
    assert all(fewer[key][1] - fewer[key][0] > first[key][1] - first[key][0] for key in MACRO_KEYS)
    assert bootstrap_macro(cm, method="percentile") != first


# ---- coverage by simulation -------------------------------------------------------------------------------
def _population(k: int, acc: float, rng: np.random.Generator) -> np.ndarray:
    """A joint distribution of (true, predicted): uneven class sizes, right with probability ``acc``,
    wrong towards the other classes unevenly."""
    sizes = rng.dirichlet(np.full(k, 5.0))
    p = np.zeros((k, k))
    for i in range(k):
        others = [j for j in range(k) if j != i]
        p[i, others] = sizes[i] * (1 - acc) * rng.dirichlet(np.full(k - 1, 0.7))
        p[i, i] = sizes[i] * acc
    return p


def _coverage(k: int, n: int, acc: float, reps: int, seed: int) -> tuple[dict[str, float], dict[str, float]]:
    """Share of 95 % intervals covering the population's value: macro (the shipped bootstrap) and per class (Wilson)."""
    rng = np.random.default_rng(seed)
    p = _population(k, acc, rng)
    truth = {key: float(v) for key, v in macro_of_counts(p.sum(1), p.sum(0), np.diag(p)).items()}
    right = np.diag(p)
    true_class = {"precision": right / p.sum(0), "recall": right / p.sum(1), "f1": 2 * right / (p.sum(0) + p.sum(1))}
    macro = dict.fromkeys(MACRO_KEYS, 0)
    per_class = {name: [0, 0] for name in true_class}
    for r in range(reps):
        cm = rng.multinomial(n, p.ravel()).reshape(k, k)
        intervals = bootstrap_macro(cm, seed=r)
        for key in MACRO_KEYS:
            macro[key] += intervals[key][0] <= truth[key] <= intervals[key][1]
        for c in range(k):
            if cm[c].sum() + cm[:, c].sum() == 0:
                continue
            f = class_figures(c, cm[c].sum(), cm[:, c].sum(), cm[c, c])
            for name, true in true_class.items():
                if (ci := getattr(f, f"{name}_ci95")) is not None:
                    per_class[name][0] += ci[0] <= true[c] <= ci[1]
                    per_class[name][1] += 1
    return {k2: v / reps for k2, v in macro.items()}, {k2: hit / total for k2, (hit, total) in per_class.items()}


SETTINGS = ((3, 200, 0.6), (5, 1000, 0.7), (10, 200, 0.95), (10, 500, 0.85), (20, 200, 0.85))


def test_95_percent_intervals_cover_95_percent():
    """A smaller run of the module doc's simulation (there: 400 matrices a setting): 80 matrices in each
    of five settings, 2,000 resamples each, pooled per figure; per-class Wilson intervals over every class."""
    macro_hits = dict.fromkeys(MACRO_KEYS, 0.0)
    class_hits = {"precision": [], "recall": [], "f1": []}
    reps = 80
    for i, (k, n, acc) in enumerate(SETTINGS):
        macro, per_class = _coverage(k, n, acc, reps, seed=100 + i)
        for key in MACRO_KEYS:
            macro_hits[key] += macro[key] / len(SETTINGS)
            assert macro[key] >= 0.875, (k, n, acc, key, macro[key])  # no setting far short (80 draws: ±2.4 pp)
        for name, share in per_class.items():
            class_hits[name].append(share)
    for key, share in macro_hits.items():
        assert 0.925 <= share <= 0.99, (key, share)
    for name, shares in class_hits.items():
        assert 0.925 <= float(np.mean(shares)) <= 0.99 and min(shares) >= 0.9, (name, shares)


# ---- a row's runs: pooled as top-1 is --------------------------------------------------------------------
@pytest.fixture(scope="module")
def accuracy_doc() -> dict:
    """A real accuracy run of the zoo's int8 model on the committed 1,000 Fashion-MNIST images."""
    settings = for_profile("smoke", Scenario.SINGLE_STREAM, Mode.ACCURACY)
    doc = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.tflite", settings=settings, engine="native",
                                       options=RuntimeOptions(threads=1), dataset="fashion-mnist:subset", warmup_runs=1,
                                       device_id="pi-a"))
    assert doc["kpis"]["accuracy"]["class_counts"] and doc["kpis"]["accuracy"]["confusion_matrix"]
    return doc


def _typed(doc: dict) -> Result:
    return contract.convert("result", doc)


def _with_accuracy(result: Result, run_id: str, **changes) -> Result:
    accuracy = msgspec.structs.replace(result.kpis.accuracy, **changes)
    return msgspec.structs.replace(result, run_id=run_id, kpis=msgspec.structs.replace(result.kpis, accuracy=accuracy))


def test_a_real_run_per_class_and_macro(accuracy_doc):
    result = _typed(accuracy_doc)
    acc = accuracy_doc["kpis"]["accuracy"]
    out = class_metrics.figures([result.kpis.accuracy])
    assert out is not None and out.samples == acc["n"] == 1000 and out.runs == 1
    cm = np.asarray(acc["confusion_matrix"])
    assert len(out.classes) == 10 and np.array_equal(out.confusion, cm)
    for f in out.classes:
        assert (f.support, f.predicted, f.right) == tuple(acc["class_counts"][f.cls])
        assert f.recall == pytest.approx(cm[f.cls, f.cls] / cm[f.cls].sum())
    for key in MACRO_KEYS:  # the agent's own macro values, now with an interval
        m = out.macro[key]
        assert m.value == pytest.approx(acc[key]) and m.lo < m.value < m.hi and m.method == class_metrics.METHOD_BOOTSTRAP


def test_runs_over_the_same_samples_count_once_and_different_samples_add_up(accuracy_doc):
    one = _typed(accuracy_doc)
    single = class_metrics.figures([one.kpis.accuracy])
    twice = class_metrics.figures([one.kpis.accuracy, _with_accuracy(one, "again").kpis.accuracy])
    assert twice.samples == 1000 and twice.runs == 2  # the same 1,000 images scored twice are 1,000 samples
    assert [c.to_dict() for c in twice.classes] == [c.to_dict() for c in single.classes]
    assert twice.macro == single.macro
    other = _with_accuracy(one, "other", samples_sha256="f" * 64)  # another 1,000 samples (the same counts, for the test)
    summed = class_metrics.figures([one.kpis.accuracy, other.kpis.accuracy])
    assert summed.samples == 2000 and np.array_equal(summed.confusion, 2 * single.confusion)
    for a, b in zip(summed.classes, single.classes, strict=True):
        assert (a.support, a.right) == (2 * b.support, 2 * b.right) and a.recall == pytest.approx(b.recall)
        assert a.recall_ci95[1] - a.recall_ci95[0] < b.recall_ci95[1] - b.recall_ci95[0]  # twice the evidence
    # runs over the same samples that disagree: the mean of their counts, each sample still once
    cm = np.asarray(one.kpis.accuracy.confusion_matrix)
    moved = cm.copy()
    moved[0, 0] -= 2
    moved[0, 6] += 2  # two T-shirts now called shirts
    counts = np.stack([moved.sum(1), moved.sum(0), np.diag(moved)], axis=1)
    changed = _with_accuracy(one, "changed", confusion_matrix=tuple(map(tuple, moved.tolist())),
                             class_counts=tuple(map(tuple, counts.tolist())))
    mean = class_metrics.figures([one.kpis.accuracy, changed.kpis.accuracy])
    assert mean.samples == 1000 and mean.classes[0].right == cm[0, 0] - 1 and mean.classes[6].predicted == cm[:, 6].sum() + 1


def test_counts_from_the_matrix_and_no_counts_at_all(accuracy_doc):
    one = _typed(accuracy_doc)
    full = class_metrics.figures([one.kpis.accuracy])
    from_matrix = class_metrics.figures([_with_accuracy(one, "m", class_counts=()).kpis.accuracy])
    assert [c.to_dict() for c in from_matrix.classes] == [c.to_dict() for c in full.classes]
    big = _with_accuracy(one, "b", confusion_matrix=())  # over 100 classes the agent keeps only class_counts
    counts_only = class_metrics.figures([big.kpis.accuracy])
    assert [c.to_dict() for c in counts_only.classes] == [c.to_dict() for c in full.classes]
    assert counts_only.confusion is None
    assert all(m.lo is None and m.method == class_metrics.METHOD_NO_MATRIX for m in counts_only.macro.values())
    bare = _with_accuracy(one, "bare", confusion_matrix=(), class_counts=())
    assert class_metrics.figures([bare.kpis.accuracy]) is None
    assert class_metrics.figures([one.kpis.accuracy, bare.kpis.accuracy]) is None  # its samples would count nowhere
    # the scorecard: cells with intervals, per-class figures in to_dict, and none without counts
    row = scorecard.build([one])[0]
    assert [row.cells[k].value for k in scorecard.MACRO_KPIS] == pytest.approx([full.macro[k].value for k in MACRO_KEYS])
    cells = [row.cells[k] for k in scorecard.MACRO_KPIS]
    assert all(c.lo is not None and c.method == class_metrics.METHOD_BOOTSTRAP for c in cells)
    listed = row.to_dict()["per_class"]
    assert len(listed) == 10 and set(listed[0]) == {"class", "support", "predicted", "right", "precision", "precision_ci95",
                                                    "recall", "recall_ci95", "f1", "f1_ci95"}
    json.dumps(row.to_dict())
    plain = scorecard.build([bare])[0]
    assert plain.to_dict()["per_class"] == [] and plain.classes is None
    cell = plain.cells["accuracy.f1_macro"]
    assert cell.value == pytest.approx(accuracy_doc["kpis"]["accuracy"]["f1_macro"]) and cell.lo is None
    assert cell.method == class_metrics.METHOD_AGENT


def test_the_scorecard_cli_per_class_and_json(accuracy_doc, tmp_path):
    db = tmp_path / "c.db"
    store_campaign(db, "classes", [accuracy_doc])
    table = edgeperf_here("scorecard", "classes", "--db", str(db), "--per-class")
    assert table.returncode == 0, table.stderr
    words = table.stdout.split()  # a narrow terminal folds headers and cells over lines: compare words
    assert {"macro", "F1", "per", "Wilson"} <= set(words) and "class:" in words  # the per-class table and its note
    out = json.loads(edgeperf_here("scorecard", "classes", "--db", str(db), "--json").stdout)
    row = out["rows"][0]
    assert len(row["per_class"]) == 10 and row["kpis"]["accuracy.f1_macro"]["ci95"] is not None
    assert math.isclose(row["kpis"]["accuracy.f1_macro"]["value"], accuracy_doc["kpis"]["accuracy"]["f1_macro"])
