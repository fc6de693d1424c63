"""Scoring an accuracy run's outputs with its task's metric (agent.scoring, agent.postprocess).

The expected values are worked by hand from COCO's and ROC AUC's definitions, on outputs laid out
as the models emit them (TFLite's detection op: boxes, classes, scores, count; an autoencoder's
reconstruction of its input)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from agent import scoring
from agent.datasets import Samples
from agent.errors import DatasetError
from agent.runtimes.base import TensorSpec

# two images, one object each (category 1); sizes (height, width)
SIZES = [(100, 200), (50, 80)]
GT_BOXES = [[40.0, 20.0, 80.0, 50.0], [8.0, 5.0, 24.0, 20.0]]  # COCO [x, y, w, h] pixels


def _annotations(tmp_path):
    doc = {
        "images": [{"id": 11, "height": 100, "width": 200, "file_name": "a.jpg"},
                   {"id": 22, "height": 50, "width": 80, "file_name": "b.jpg"}],
        "categories": [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}],
        "annotations": [
            {"id": 1, "image_id": 11, "category_id": 1, "bbox": GT_BOXES[0], "area": 3200.0, "iscrowd": 0},
            {"id": 2, "image_id": 22, "category_id": 1, "bbox": GT_BOXES[1], "area": 240.0, "iscrowd": 0},
        ],
    }
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(doc))
    return path


def _normalised(box, size):
    """COCO [x, y, w, h] pixels as the detection op's normalised [ymin, xmin, ymax, xmax]."""
    (x, y, w, h), (height, width) = box, size
    return [y / height, x / width, (y + h) / height, (x + w) / width]


def _specs(names=("TFLite_Detection_PostProcess", "TFLite_Detection_PostProcess:1", "TFLite_Detection_PostProcess:2",
                  "TFLite_Detection_PostProcess:3")):
    shapes = ([1, 3, 4], [1, 3], [1, 3], [1])
    return [TensorSpec(n, s, "float32") for n, s in zip(names, shapes, strict=True)]


def _ssd_outputs(boxes, classes, scores, count):
    """One sample's outputs in the op's order: boxes [1,3,4], classes [1,3], scores [1,3], count [1]."""
    pad = 3 - len(boxes)
    b = np.array([*boxes, *[[0.0, 0.0, 1.0, 1.0]] * pad], dtype=np.float32)[None]
    c = np.array([*classes, *[0.0] * pad], dtype=np.float32)[None]
    s = np.array([*scores, *[0.99] * pad], dtype=np.float32)[None]  # slots past count score high: must be ignored
    return [b, c, s, np.array([count], dtype=np.float32)]


def _detection_samples(tmp_path):
    feeds = [{"image": np.zeros((1, 4, 4, 3), np.uint8)} for _ in SIZES]
    return Samples("coco", "test", feeds, np.array([11, 22]), np.zeros((2, 4, 4, 3), np.uint8), task="detection",
                   truth={"annotations": str(_annotations(tmp_path)), "image_ids": [11, 22], "sizes": SIZES})


def test_detection_map_of_one_hit_and_one_miss_is_51_of_101_recall_points(tmp_path):
    """Image 11's box is exact (score .9), image 22's misses its object (score .8): recall reaches 1/2 at
    precision 1, so COCO's 101-point AP is 51/101 at every IoU threshold."""
    miss = [0.6, 0.6, 0.9, 0.9]  # far from image 22's object
    kept = {0: _ssd_outputs([_normalised(GT_BOXES[0], SIZES[0])], [0.0], [0.9], 1),
            1: _ssd_outputs([miss], [0.0], [0.8], 1)}
    accuracy, task = scoring.score(kept, _detection_samples(tmp_path), _specs())
    assert accuracy is None
    assert task["metric"] == "mAP" and task["n"] == 2
    assert task["value"] == pytest.approx(51 / 101, abs=1e-6)
    assert task["details"]["map50"] == pytest.approx(51 / 101, abs=1e-6)
    assert task["details"]["detections"] == 2  # the padded slots past count were not read
    assert task["postprocess"]["class_offset"] == 1 and task["ci95"] is None and "no interval" in task["interval"]


def test_detection_outputs_found_by_name_and_the_manifest_offset_used(tmp_path):
    """ONNX detectors name their outputs (detection_boxes, …) in any order; a manifest saying classes
    are COCO ids already (offset 0) is followed, and the same is inferred from the names: both exact
    boxes, AP 1."""
    names = ("num_detections", "detection_scores", "detection_boxes", "detection_classes")
    specs = [TensorSpec(n, s, "float32") for n, s in zip(names, ([1], [1, 3], [1, 3, 4], [1, 3]), strict=True)]

    def sample(i):
        b, c, s, n = _ssd_outputs([_normalised(GT_BOXES[i], SIZES[i])], [1.0], [0.7], 1)
        return [n, s, b, c]

    kept = {0: sample(0), 1: sample(1)}
    _, task = scoring.score(kept, _detection_samples(tmp_path), specs, {"kind": "detection-boxes", "class_offset": 0})
    assert task["value"] == pytest.approx(1.0)
    assert task["postprocess"]["rule"] == "zoo manifest"
    # without a manifest, the names say it: TensorFlow's Object Detection API gives COCO ids
    _, inferred = scoring.score(kept, _detection_samples(tmp_path), specs)
    assert inferred["value"] == pytest.approx(1.0) and "Object Detection API" in inferred["postprocess"]["rule"]


def test_wrong_class_offset_scores_nothing(tmp_path):
    """The same exact boxes read with TFLite's +1 offset land on category 2, which has no objects: AP 0.
    The offset matters and is recorded."""
    kept = {i: _ssd_outputs([_normalised(GT_BOXES[i], SIZES[i])], [1.0], [0.7], 1) for i in range(2)}
    _, task = scoring.score(kept, _detection_samples(tmp_path), _specs())
    assert task["value"] == 0.0


def _anomaly_samples(energies, clip, clip_labels, machines=None):
    """One 4-value segment per entry, each of constant value sqrt(energy)."""
    feeds = [{"x": np.full((1, 4), np.sqrt(e), np.float32)} for e in energies]
    labels = np.array([clip_labels[c] for c in clip])
    raw = np.stack([f["x"][0] for f in feeds])
    truth = {"clip": np.array(clip)} | ({"clip_machine_ids": np.array(machines)} if machines else {})
    return Samples("toycar", "test", feeds, labels, raw, task="anomaly", truth=truth)


def _halving(samples):
    """An autoencoder that reconstructs x as x/2: the segment's error is mean((x/2)²) = energy/4."""
    return {i: [f["x"] * 0.5] for i, f in enumerate(samples.feeds)}


def test_anomaly_auc_over_clips_with_one_inversion_is_three_quarters():
    """Clips 0,1 anomalous, 2,3 normal; a clip's score is its segments' mean error. Scores (energy/4):
    clip0 mean(8,4)/4=1.5, clip1 1/4, clip2 2/4, clip3 0. Pairs (anomalous beats normal): 0>2, 0>3, 1>3,
    1<2 — AUC 3/4."""
    spec = [TensorSpec("x", [1, 4], "float32")]
    samples = _anomaly_samples([8.0, 4.0, 1.0, 2.0, 0.0], [0, 0, 1, 2, 3], {0: 1, 1: 1, 2: 0, 3: 0})
    accuracy, task = scoring.score(_halving(samples), samples, spec)
    assert accuracy is None
    assert task["metric"] == "AUC" and task["value"] == pytest.approx(0.75)
    assert task["n"] == 4 and task["details"]["segments"] == 5
    lo, hi = task["ci95"]
    assert lo <= 0.75 <= hi


def test_anomaly_auc_is_the_mean_over_machine_ids():
    """MLPerf Tiny averages the AUC of each machine id. Id 0: anomalous clips 0,1 (scores 2, 1.5) beat normal
    2,3 (1, 0.5) — AUC 1. Id 1: anomalous 4,5 (scores 1, 0.25), normal 6,7 (0.5, 2): of the 4 pairs only
    4 > 6 goes the anomalous clip's way — AUC 1/4. Mean 5/8, not the pooled AUC."""
    spec = [TensorSpec("x", [1, 4], "float32")]
    energies = [8.0, 6.0, 4.0, 2.0, 4.0, 1.0, 2.0, 8.0]  # score = energy / 4
    samples = _anomaly_samples(energies, list(range(8)), dict(enumerate([1, 1, 0, 0, 1, 1, 0, 0])), [0, 0, 0, 0, 1, 1, 1, 1])
    _, task = scoring.score(_halving(samples), samples, spec)
    assert task["details"]["auc_machine_0"] == pytest.approx(1.0)
    assert task["details"]["auc_machine_1"] == pytest.approx(0.25)
    assert task["value"] == pytest.approx(0.625) and task["details"]["machine_ids"] == 2


def test_classification_with_a_background_output_is_read_with_offset_minus_one():
    """1001 outputs for a 1000-class dataset (TensorFlow classifiers): output k is class k − 1."""
    spec = [TensorSpec("logits", [1, 1001], "float32")]
    labels = np.array([5, 999, 0])
    kept = {i: [np.eye(1001, dtype=np.float32)[[label + 1]]] for i, label in enumerate(labels)}
    feeds = [{"x": np.zeros((1, 2), np.float32)} for _ in labels]
    samples = Samples("imagenet", "test", feeds, labels, np.zeros((3, 2), np.float32), n_classes=1000)
    accuracy, task = scoring.score(kept, samples, spec)
    assert task is None
    assert accuracy["top1"] == 1.0 and accuracy["postprocess"]["class_offset"] == -1
    assert accuracy["confusion_matrix"] == []  # 1000 classes: left out of the result


def test_unknown_postprocess_is_one_clear_line():
    spec = [TensorSpec("logits", [1, 3], "float32")]
    samples = Samples("x", "test", [{"x": np.zeros((1, 1), np.float32)}], np.array([0]), np.zeros((1, 1), np.float32))
    with pytest.raises(DatasetError, match=r"post-processing .softmax-magic., which edgeperf cannot score yet"):
        scoring.score({0: [np.zeros((1, 3), np.float32)]}, samples, spec, {"kind": "softmax-magic"})


def _constant_box_detector(path):
    """A real ONNX detector of one box: always [0.25, 0.25, 0.75, 0.75] (normalised), COCO class 1, scored
    by the image's mean brightness, outputs named as TensorFlow's Object Detection API names them."""
    from onnx import TensorProto, helper

    from tests.conftest import save_onnx

    nodes = [
        helper.make_node("ReduceMean", ["image"], ["mean"], keepdims=0),
        helper.make_node("Reshape", ["mean", "one_by_one"], ["detection_scores"]),
        helper.make_node("Identity", ["box"], ["detection_boxes"]),
        helper.make_node("Identity", ["cls"], ["detection_classes"]),
        helper.make_node("Identity", ["count"], ["num_detections"]),
    ]
    inits = [helper.make_tensor("one_by_one", TensorProto.INT64, [2], [1, 1]),
             helper.make_tensor("box", TensorProto.FLOAT, [1, 1, 4], [0.25, 0.25, 0.75, 0.75]),
             helper.make_tensor("cls", TensorProto.FLOAT, [1, 1], [1.0]),
             helper.make_tensor("count", TensorProto.FLOAT, [1], [1.0])]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in
               (("detection_boxes", [1, 1, 4]), ("detection_classes", [1, 1]), ("detection_scores", [1, 1]),
                ("num_detections", [1]))]
    graph = helper.make_graph(nodes, "detector", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 8, 8])],
                              outputs, inits)
    return save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def detection_fixture(tmp_path):
    """The detector above and a COCO folder of two images whose mAP under it is 51/101: image 1 (bright) holds its
    object exactly where the detector's box lands, image 2 (dark) holds it elsewhere."""
    import cv2

    root = tmp_path / "coco"
    (root / "val2017").mkdir(parents=True)
    (root / "annotations").mkdir()
    images = [(1, 16, 24, 220, [6.0, 4.0, 12.0, 8.0]), (2, 10, 10, 40, [0.0, 0.0, 2.0, 2.0])]
    doc = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    for image_id, height, width, grey, box in images:
        name = f"{image_id:012d}.jpg"
        assert cv2.imwrite(str(root / "val2017" / name), np.full((height, width, 3), grey, np.uint8))
        doc["images"].append({"id": image_id, "file_name": name, "height": height, "width": width})
        doc["annotations"].append({"id": image_id, "image_id": image_id, "category_id": 1, "bbox": box,
                                   "area": box[2] * box[3], "iscrowd": 0})
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(doc))
    return _constant_box_detector(tmp_path / "detector.onnx"), root


def test_bench_scores_a_coco_folder_with_map(tmp_path, capsys):
    """End to end: a COCO folder by path, a real ONNX detector, accuracy mode: mAP 51/101, as worked above,
    carried in ``kpis.task_accuracy`` through the result contract, with no top-1."""
    from agent import cli
    from agent.contract import decode_body

    model, root = detection_fixture(tmp_path)
    out = tmp_path / "result.json"
    code = cli.main(["bench", str(model), "--mode", "accuracy", "--profile", "smoke", "--engine", "native", "--warmup", "1",
                     "--threads", "1", "--dataset", f"coco:{root}", "--preprocess", "coco-ssd-mobilenet", "--json", str(out)])
    assert code == 0, capsys.readouterr().err
    result = decode_body("result", out.read_bytes())
    task = result.kpis.task_accuracy
    assert result.kpis.accuracy is None and task is not None
    assert task.metric == "mAP" and task.n == 2 and task.value == pytest.approx(51 / 101, abs=1e-6)
    assert task.postprocess["class_offset"] == 0 and "Object Detection API" in task.postprocess["rule"]
    assert "mAP 0.5050" in capsys.readouterr().out
