"""COCO mAP (pycocotools, as MLPerf's accuracy-coco.py) and segmentation mIoU on cases worked by hand."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from agent.errors import DatasetError
from agent.metrics.detection import Detection, coco_map, normalized_to_coco_xywh
from agent.metrics.segmentation import confusion_of, miou


def _ann(ann_id, image_id, category_id, box):
    return {"id": ann_id, "image_id": image_id, "category_id": category_id, "bbox": box,
            "area": box[2] * box[3], "iscrowd": 0}


def _coco(annotations):
    return {"images": [{"id": k, "height": 100, "width": 200, "file_name": f"{k}.jpg"} for k in (1, 2, 3)],
            "categories": [{"id": 1, "name": "cat"}, {"id": 2, "name": "dog"}],
            "annotations": annotations}


# Three images, two categories; every box 40x40 (area 1600: COCO's "medium").
GT = _coco([_ann(1, 1, 1, [10, 10, 40, 40]), _ann(2, 1, 2, [50, 50, 40, 40]),
            _ann(3, 2, 1, [20, 20, 40, 40]), _ann(4, 3, 2, [5, 5, 40, 40])])
PERFECT = [Detection(1, 1, 10, 10, 40, 40, 0.9), Detection(1, 2, 50, 50, 40, 40, 0.9),
           Detection(2, 1, 20, 20, 40, 40, 0.9), Detection(3, 2, 5, 5, 40, 40, 0.9)]


def test_perfect_detections_score_one(tmp_path):
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(GT))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        m = coco_map(path, PERFECT)
    assert (m["map"], m["map50"], m["map75"]) == (1.0, 1.0, 1.0)
    assert m["images"] == 3 and m["detections"] == 4 and m["detections_unknown_category"] == 0
    assert len(m["stats"]) == 12
    assert out.getvalue() == ""  # pycocotools' progress lines and summary table stay off stdout


def test_boxes_that_overlap_two_thirds_meet_four_of_ten_thresholds():
    # Each detection is its ground-truth box moved 8 px right: intersection 32x40, union 48x40,
    # IoU = 32/48 = 2/3. Thresholds .50 .55 .60 .65 are met (AP 1 each: one detection per object,
    # all matched), .70 .. .95 are not (the detection is a false positive, the object missed: AP 0).
    # mAP@[.5:.95] = 4/10; mAP@.5 = 1; mAP@.75 = 0.
    shifted = [d._replace(x=d.x + 8) for d in PERFECT]
    m = coco_map(GT, shifted)
    assert m["map50"] == pytest.approx(1.0)
    assert m["map75"] == pytest.approx(0.0)
    assert m["map"] == pytest.approx(0.4)


def test_a_false_positive_above_a_true_positive_costs_interpolated_precision():
    # One category, two objects (image 1, image 2). Detections by score: TP 0.9, FP 0.8 (no overlap),
    # TP 0.7. Cumulative recall 1/2, 1/2, 1; precision 1, 1/2, 2/3; made non-increasing from the right:
    # 1, 2/3, 2/3. COCO's 101 recall points 0, .01, .., 1: the 51 points r <= 0.5 take precision 1
    # (first index with recall >= r), the 50 points r > 0.5 take 2/3.
    # AP = (51 * 1 + 50 * 2/3) / 101 = 84.333../101 = 0.83498 at every IoU threshold (matches are exact).
    gt = _coco([_ann(1, 1, 1, [10, 10, 40, 40]), _ann(2, 2, 1, [20, 20, 40, 40])])
    dets = [(1, 1, 10, 10, 40, 40, 0.9), (1, 1, 60, 60, 40, 40, 0.8), (2, 1, 20, 20, 40, 40, 0.7)]
    m = coco_map(gt, dets)
    expected = (51 + 50 * 2 / 3) / 101
    assert m["map"] == pytest.approx(expected) and m["map50"] == pytest.approx(expected)
    # Without the false positive it is 1: the false positive alone costs 1 - 0.83498 = 0.16502.
    assert coco_map(gt, [dets[0], dets[2]])["map"] == pytest.approx(1.0)
    # Ranked below both true positives it costs nothing (precision is 1 up to recall 1).
    assert coco_map(gt, [*dets[::2], (1, 1, 60, 60, 40, 40, 0.1)])["map"] == pytest.approx(1.0)


def test_only_scored_images_count():
    # Image 3 holds a dog that nobody detected. Scored as MLPerf does (only images seen in the
    # accuracy log: here 1 and 2), it is out of imgIds and mAP is 1.
    m = coco_map(GT, PERFECT[:3])
    assert m["map"] == pytest.approx(1.0) and m["images"] == 2
    # Named as scored (MLPerf adds an image with no results to image_ids), its dog is missed:
    # dog recall 1/2 with precision 1 -> the 51 recall points <= 0.5 score 1, the other 50 score 0:
    # dog AP 51/101; cat AP 1; mAP = (1 + 51/101) / 2 = 0.75248.
    m = coco_map(GT, PERFECT[:3], image_ids=[1, 2, 3])
    assert m["map"] == pytest.approx((1 + 51 / 101) / 2) and m["images"] == 3
    # No detection at all on a scored image with an object: everything missed, mAP 0.
    assert coco_map(GT, [], image_ids=[3])["map"] == 0.0
    # A category with no object in the scored images is -1 in pycocotools, left out of the mean:
    # image 2 holds only a cat, so the dog detection there is a false positive of a category pycocotools
    # does not score, and the cat AP (1) is mAP.
    m = coco_map(GT, [PERFECT[2], Detection(2, 2, 70, 70, 10, 10, 0.95)])
    assert m["map"] == pytest.approx(1.0)


def test_detections_of_unknown_categories_are_counted_and_left_out():
    # Category 0 (a 0-based TFLite label not mapped to COCO ids) is not among the categories:
    # pycocotools ignores it, as in MLPerf's script; the count makes the mistake visible.
    m = coco_map(GT, [*PERFECT, Detection(1, 0, 10, 10, 40, 40, 0.99)])
    assert m["map"] == pytest.approx(1.0) and m["detections_unknown_category"] == 1


def test_no_ground_truth_in_the_scored_images_gives_none():
    gt = _coco([])
    m = coco_map(gt, [(1, 1, 10, 10, 40, 40, 0.9)])
    assert m["map"] is None and m["stats"][0] == -1.0


def test_annotations_are_not_modified():
    gt = json.loads(json.dumps(GT))
    coco_map(gt, PERFECT)
    assert gt == GT  # COCOeval writes 'ignore' into the ground truth; a copy takes it


def test_normalised_boxes_become_coco_pixels():
    # [ymin, xmin, ymax, xmax] = [0.1, 0.25, 0.5, 0.75] on a 200 (h) x 400 (w) image:
    # x = 0.25*400 = 100, y = 0.1*200 = 20, w = (0.75-0.25)*400 = 200, h = (0.5-0.1)*200 = 80.
    assert normalized_to_coco_xywh([0.1, 0.25, 0.5, 0.75], 200, 400).tolist() == pytest.approx([100, 20, 200, 80])
    many = normalized_to_coco_xywh(np.array([[0.1, 0.25, 0.5, 0.75], [0, 0, 1, 1]]), 200, 400)
    assert many.shape == (2, 4)
    assert many[1].tolist() == [0, 0, 400, 200]


@pytest.mark.parametrize(("boxes", "height", "width"), [
    ([0.1, 0.2, 0.3], 100, 100),
    ([0.1, float("nan"), 0.3, 0.4], 100, 100),
    ([0.1, 0.2, 0.3, 0.4], 0, 100),
])
def test_normalised_box_refusals(boxes, height, width):
    with pytest.raises(DatasetError):
        normalized_to_coco_xywh(boxes, height, width)


def test_refusals(tmp_path):
    with pytest.raises(DatasetError, match="not found"):
        coco_map(tmp_path / "missing.json", PERFECT)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(DatasetError, match="not a COCO annotation json"):
        coco_map(tmp_path / "bad.json", PERFECT)
    (tmp_path / "list.json").write_text("[1, 2]")
    with pytest.raises(DatasetError, match="'images', 'annotations' and 'categories'"):
        coco_map(tmp_path / "list.json", PERFECT)
    no_area = _coco([{"id": 1, "image_id": 1, "category_id": 1, "bbox": [0, 0, 1, 1], "iscrowd": 0}])
    with pytest.raises(DatasetError, match="lacks area"):
        coco_map(no_area, PERFECT)
    with pytest.raises(DatasetError, match="image 9, which is not in the annotations"):
        coco_map(GT, [Detection(9, 1, 10, 10, 40, 40, 0.9)])
    with pytest.raises(DatasetError, match="non-finite"):
        coco_map(GT, [Detection(1, 1, float("nan"), 10, 40, 40, 0.9)])
    with pytest.raises(DatasetError, match="non-finite"):
        coco_map(GT, [Detection(1, 1, 10, 10, float("inf"), 40, 0.9)])
    with pytest.raises(DatasetError, match="negative"):
        coco_map(GT, [Detection(1, 1, 10, 10, -4, 40, 0.9)])
    with pytest.raises(DatasetError, match="has 6 values"):
        coco_map(GT, [(1, 1, 10, 10, 40, 40)])
    with pytest.raises(DatasetError, match="scored image 7"):
        coco_map(GT, PERFECT, image_ids=[7])
    with pytest.raises(DatasetError, match="no image to score"):
        coco_map(GT, [])


# Segmentation: 3 classes, 4x4.
LABELS = np.array([[0, 0, 1, 1],
                   [0, 0, 1, 1],
                   [2, 2, 2, 2],
                   [2, 2, 2, 2]])
PREDICTED = np.array([[0, 1, 1, 1],
                      [0, 0, 1, 2],
                      [2, 2, 0, 2],
                      [2, 2, 2, 2]])


def test_miou_hand_worked():
    c = confusion_of(PREDICTED, LABELS, 3)
    # rows = label, columns = prediction:
    # label 0 (4 px): predicted 0,1,0,0 -> [3, 1, 0]; label 1 (4 px): 1,1,1,2 -> [0, 3, 1];
    # label 2 (8 px): one predicted 0, seven 2 -> [1, 0, 7]
    assert c.tolist() == [[3, 1, 0], [0, 3, 1], [1, 0, 7]]
    m = miou(c)
    # IoU0 = 3 / (row 4 + col 4 - 3) = 3/5; IoU1 = 3 / (4 + 4 - 3) = 3/5; IoU2 = 7 / (8 + 8 - 7) = 7/9
    assert m["per_class_iou"] == pytest.approx([0.6, 0.6, 7 / 9])
    assert m["miou"] == pytest.approx((0.6 + 0.6 + 7 / 9) / 3)  # 0.65926
    assert m["pixel_accuracy"] == pytest.approx(13 / 16)
    assert m["pixels"] == 16


def test_ignored_pixels_are_left_out():
    labels = LABELS.copy()
    labels[0, 1] = 255  # was label 0 predicted 1
    labels[1, 3] = 255  # was label 1 predicted 2
    c = confusion_of(PREDICTED, labels.astype(np.uint8), 3)
    assert c.tolist() == [[3, 0, 0], [0, 3, 0], [1, 0, 7]]
    m = miou(c)
    # IoU0 = 3 / (3 + 4 - 3) = 3/4; IoU1 = 3/3 = 1; IoU2 = 7 / (8 + 7 - 7) = 7/8
    assert m["per_class_iou"] == pytest.approx([0.75, 1.0, 0.875])
    assert m["miou"] == pytest.approx((0.75 + 1 + 0.875) / 3)
    assert m["pixel_accuracy"] == pytest.approx(13 / 14) and m["pixels"] == 14
    # With no ignore_index, 255 is an out-of-range label and refused.
    with pytest.raises(DatasetError, match="class 255"):
        confusion_of(PREDICTED, labels, 3, ignore_index=None)


def test_a_class_absent_from_both_is_not_counted():
    m = miou(confusion_of(PREDICTED, LABELS, 5))
    assert m["per_class_iou"][3:] == [None, None]
    assert m["miou"] == pytest.approx((0.6 + 0.6 + 7 / 9) / 3)
    assert m["classes_scored"] == 3


def test_a_class_only_predicted_counts_zero_unless_it_is_the_ignored_label():
    # ADE20K-top31 style: label 0 is ignored; a pixel predicted 0 is a miss of its true class.
    labels = np.array([0, 1, 1, 2])
    predicted = np.array([1, 0, 1, 2])
    c = confusion_of(predicted, labels, 3, ignore_index=0)
    assert c.tolist() == [[0, 0, 0], [1, 1, 0], [0, 0, 1]]  # the first pixel (label 0) is left out
    # As tf.metrics.mean_iou: class 0 appears in the predictions, IoU 0/1 = 0, counted:
    # (0 + 1/2 + 1) / 3 = 0.5, with IoU1 = 1 / (2 + 1 - 1) = 1/2 and IoU2 = 1.
    assert miou(c)["miou"] == pytest.approx(0.5)
    # As MLPerf Mobile (classes 1..31 scored): class 0 not scored, (1/2 + 1) / 2 = 0.75.
    m = miou(c, ignore_index=0)
    assert m["per_class_iou"] == [None, pytest.approx(0.5), pytest.approx(1.0)]
    assert m["miou"] == pytest.approx(0.75)


def test_confusions_add_over_images():
    one = confusion_of(PREDICTED, LABELS, 3)
    assert miou(one + one)["per_class_iou"] == pytest.approx(miou(one)["per_class_iou"])
    assert miou(one + one)["pixels"] == 32


def test_segmentation_refusals():
    with pytest.raises(DatasetError, match="do not match"):
        confusion_of(PREDICTED[:2], LABELS, 3)
    with pytest.raises(DatasetError, match="class 3"):
        confusion_of(PREDICTED + 1, LABELS, 3)
    with pytest.raises(DatasetError, match="integer class ids"):
        confusion_of(PREDICTED + 0.5, LABELS, 3)
    with pytest.raises(DatasetError, match="no pixel"):
        miou(confusion_of(PREDICTED, np.full((4, 4), 255), 3))
    with pytest.raises(DatasetError, match="square"):
        miou(np.zeros((2, 3), dtype=np.int64))
