"""Top-1, macro precision/recall/F1 and the confusion matrix on a case worked by hand."""

from __future__ import annotations

import numpy as np
import pytest

from agent.accuracy import classification_metrics


def test_hand_worked_three_class_case():
    labels = np.array([0, 0, 0, 1, 1, 2])
    predicted = np.array([0, 0, 1, 1, 2, 2])
    m = classification_metrics(predicted, labels, 3)
    assert m["top1"] == pytest.approx(4 / 6)
    assert m["confusion_matrix"] == [[2, 1, 0], [0, 1, 1], [0, 0, 1]]
    # per class: [labelled it, predicted as it, of those right] = row sum, column sum, diagonal
    assert m["class_counts"] == [[3, 2, 2], [2, 2, 1], [1, 2, 1]]
    # precision: class0 2/2, class1 1/2, class2 1/2; recall: 2/3, 1/2, 1/1
    assert m["precision_macro"] == pytest.approx((1 + 0.5 + 0.5) / 3)
    assert m["recall_macro"] == pytest.approx((2 / 3 + 0.5 + 1) / 3)
    f1 = [2 * p * r / (p + r) for p, r in ((1, 2 / 3), (0.5, 0.5), (0.5, 1))]
    assert m["f1_macro"] == pytest.approx(sum(f1) / 3)
    assert m["n"] == 6 and m["correct"] == 4
    assert m["correct_bits"] == "1A=="  # right, right, wrong, right, wrong, right: 11010100 = 0xD4
    assert m["ci95"][0] < 4 / 6 < m["ci95"][1]


def test_classes_never_seen_do_not_dilute_the_macro_average():
    """A 10-way output scored on two classes averages over the two, as scikit-learn does."""
    labels = np.array([3, 3, 7, 7])
    predicted = np.array([3, 3, 7, 3])
    m = classification_metrics(predicted, labels, 10)
    assert m["recall_macro"] == pytest.approx((1 + 0.5) / 2)
    assert m["precision_macro"] == pytest.approx((2 / 3 + 1) / 2)


def test_a_class_predicted_but_absent_counts_with_zero():
    m = classification_metrics(np.array([0, 1]), np.array([0, 0]), 2)
    assert m["precision_macro"] == pytest.approx((1 + 0) / 2)
    assert m["recall_macro"] == pytest.approx((0.5 + 0) / 2)
