"""A zoo model's preprocessing and post-processing reach a fleet job's run.

The agent runs a job's artifact by its hash, not by its zoo name, so what the manifest says about
reading the model (its preprocessing id for a dataset by path, its class offset) travels in the job.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import msgspec
import numpy as np
import pytest

from agent import bench, contract, zoo
from agent.jobs import request_from_job
from controller.fleet import campaign, scheduler
from tests.conftest import save_onnx
from tests.test_datasets_images import COLOURS, _imagenet_val_map


def _background_first_classifier(path):
    """Four scores: 0 for a background class, then each input channel's mean (red, green, blue)."""
    from onnx import TensorProto, helper, numpy_helper

    weights = np.hstack([np.zeros((3, 1), np.float32), np.eye(3, dtype=np.float32)])
    graph = helper.make_graph(
        [helper.make_node("GlobalAveragePool", ["image"], ["pooled"]), helper.make_node("Flatten", ["pooled"], ["flat"]),
         helper.make_node("Gemm", ["flat", "w", "b"], ["scores"])],
        "background", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 32, 32])],
        [helper.make_tensor_value_info("scores", TensorProto.FLOAT, [1, 4])],
        [numpy_helper.from_array(weights, "w"), numpy_helper.from_array(np.full(4, -5, np.float32), "b")])
    return save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


@pytest.fixture
def colours_zoo(tmp_path, monkeypatch):
    (tmp_path / "zoo" / "colours").mkdir(parents=True)
    model = _background_first_classifier(tmp_path / "zoo" / "colours" / "fp32.onnx")
    facts = {"sha256": hashlib.sha256(model.read_bytes()).hexdigest(), "size_bytes": model.stat().st_size,
             "precision": "fp32", "runtime": "onnxruntime"}
    entry = {"task": "colours", "preprocess": "imagenet-mobilenet", "postprocess": {"kind": "classes", "class_offset": -1},
             "files": {"fp32.onnx": facts}}
    (tmp_path / "zoo" / "manifest.json").write_text(json.dumps({"schema": "edgeperf.zoo/2", "models": {"colours": entry}}))
    monkeypatch.setenv(zoo.MANIFEST_ENV, str(tmp_path / "zoo" / "manifest.json"))
    return model


def test_a_job_carries_the_zoo_models_preprocessing_and_class_offset(tmp_path, colours_zoo):
    root = _imagenet_val_map(tmp_path / "val", COLOURS)
    text = (f"name: colours\nprofile: smoke\nengine: native\nmodes: [accuracy]\naccuracy_dataset: imagenet:{root}\n"
            "models:\n  - name: colours\n    variants:\n      - artifact: zoo:colours/fp32.onnx\n        threads: 1\n")
    spec = campaign.expand(campaign.loads(text, "c.yaml", tmp_path), [("pi-01", [])])[0]
    assert spec.dataset == f"imagenet:{root}"
    artifact = {"url": "http://lab/fp32.onnx", "sha256": "0" * 64, "size": 1, "name": "fp32.onnx"}
    sent = scheduler.job_message(spec, "r1", 1, "c1", artifact, "ctl")
    job = contract.decode_body("job", msgspec.json.encode(sent))  # as the agent reads it off the wire
    assert job.preprocess == "imagenet-mobilenet" and job.postprocess == contract.PostProcessSpec("classes", -1)

    cached = tmp_path / "cache" / "3f2a.onnx"  # the agent's artifact cache names files by hash, not by zoo name
    cached.parent.mkdir()
    shutil.copy(colours_zoo, cached)
    doc = bench.run(request_from_job(job, cached, tmp_path / "logs", "pi-01"))
    assert doc["dataset"]["preprocess"] == "imagenet-mobilenet"
    accuracy = doc["kpis"]["accuracy"]
    assert accuracy["top1"] == 1.0 and accuracy["postprocess"] == {"kind": "classes", "class_offset": -1, "rule": "zoo manifest"}


def test_a_campaign_dataset_by_path_is_checked_for_its_form_only(tmp_path):
    """The folder is on the devices: the controller checks the spec's form, and names the kinds when it is wrong."""
    base = "name: c\nmodels:\n  - name: m\n    variants:\n      - artifact: zoo:fashion-mnist-cnn/int8.onnx\n"
    assert campaign.loads(base + "dataset: coco:/data/coco:50\n", "c.yaml", tmp_path).dataset == "coco:/data/coco:50"
    with pytest.raises(campaign.CampaignError, match=r"c\.yaml:6: dataset: .*KIND:PATH\[:N\] with KIND one of: imagenet, coco"):
        campaign.loads(base + "dataset: imagenett:/data\n", "c.yaml", tmp_path)
    with pytest.raises(campaign.CampaignError, match=r"c\.yaml:6: dataset: dataset coco: names no folder"):
        campaign.loads(base + "dataset: 'coco:'\n", "c.yaml", tmp_path)
