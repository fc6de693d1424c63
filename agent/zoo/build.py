"""Rebuild the reference zoo from Debian's Fashion-MNIST: train, export, quantise, measure.

Not imported by the agent; run by hand when the zoo must change (see docs/zoo.md)::

    apt-get install dataset-fashion-mnist
    python -m venv /tmp/zoo && /tmp/zoo/bin/pip install torch==2.13.0 litert-torch coremltools \
        onnx onnxruntime numpy          # torch pinned in the same command, or pip pulls CUDA torch
    PYTHONPATH=. /tmp/zoo/bin/python -m agent.zoo.build

It writes the four model files, the committed 1,000-image test subset and ``manifest.json``
(sha256, size, precision, build command, accuracy measured here on the subset and the full 10k).
"""

from __future__ import annotations

import importlib.metadata
import json
import shutil
import time
from pathlib import Path

import numpy as np

from agent.datasets.fashion_mnist import CLASSES, SUBSET_FILE, debian_split
from agent.model_file import sha256_of, size_of
from agent.zoo import zoo_root

MODEL = "fashion-mnist-cnn"
SUBSET_SIZE = 1000
SEED = 0
EPOCHS = 2
CALIBRATION_SAMPLES = 512
# half-width of the top-1 band a reproduction must fall in (int8 kernels round differently by ISA; see zoo.top1_band)
TOP1_BAND = {"fp32": 0.005, "int8": 0.01}
BUILD_COMMAND = "PYTHONPATH=. python -m agent.zoo.build"
# file -> the ONNX file of the same trained model: what the datacenter baseline runs in its place,
# because ONNX Runtime (the only runtime with CUDA/TensorRT providers here) cannot load TFLite or Core ML
ONNX_SIBLINGS = {"int8.tflite": "int8.onnx", "int8.mlpackage": "int8.onnx"}


def _cnn():
    """Conv16-Pool-Conv32-Pool-FC64-FC10 over [N, 1, 28, 28] floats in [0, 1]."""
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10),
    )


def _as_input(images: np.ndarray) -> np.ndarray:
    return (images.astype(np.float32) / 255.0)[:, None, :, :]


def train(train_x: np.ndarray, train_y: np.ndarray):
    import torch

    torch.manual_seed(SEED)
    model = _cnn()
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, y = torch.from_numpy(train_x), torch.from_numpy(train_y)
    for epoch in range(EPOCHS):
        order = torch.randperm(len(x), generator=torch.Generator().manual_seed(SEED + epoch))
        for start in range(0, len(x), 64):
            idx = order[start : start + 64]
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
    return model.eval()


def export_onnx(model, path: Path) -> None:
    import torch

    torch.onnx.export(
        model, (torch.zeros(1, 1, 28, 28),), str(path), opset_version=17, dynamo=False,
        input_names=["image"], output_names=["logits"],
        dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
    )


def quantise_onnx(fp32: Path, out: Path, calib: np.ndarray) -> None:
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self.rows = iter(calib[i : i + 1] for i in range(len(calib)))

        def get_next(self):
            row = next(self.rows, None)
            return None if row is None else {"image": row}

    pre = out.with_suffix(".pre.onnx")
    quant_pre_process(str(fp32), str(pre))
    quantize_static(
        str(pre), str(out), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
        activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
    )
    pre.unlink()


def convert_tflite_int8(model, out: Path, calib: np.ndarray) -> None:
    import litert_torch
    import torch
    from litert_torch.quantize import pt2e_quantizer
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import quantize_pt2e

    args = (torch.zeros(1, 1, 28, 28),)
    quantizer = pt2e_quantizer.PT2EQuantizer().set_global(
        pt2e_quantizer.get_symmetric_quantization_config(is_per_channel=True, is_dynamic=False)
    )
    exported = torch.export.export(model, args).module()
    prepared = quantize_pt2e.prepare_pt2e(exported, quantizer)
    with torch.no_grad():
        for i in range(len(calib)):
            prepared(torch.from_numpy(calib[i : i + 1]))
    converted = quantize_pt2e.convert_pt2e(prepared, fold_quantize=False)
    edge = litert_torch.convert(converted, args, quant_config=QuantConfig(pt2e_quantizer=quantizer))
    edge.export(str(out))


def convert_coreml_w8(model, out: Path) -> None:
    import coremltools as ct
    import coremltools.optimize.coreml as cto
    import torch

    exported = torch.export.export(model, (torch.zeros(1, 1, 28, 28),)).run_decompositions({})
    mlmodel = ct.convert(exported, convert_to="mlprogram", minimum_deployment_target=ct.target.iOS17)
    config = cto.OptimizationConfig(global_config=cto.OpLinearQuantizerConfig(mode="linear_symmetric", dtype="int8"))
    compressed = cto.linear_quantize_weights(mlmodel, config)
    if out.exists():
        shutil.rmtree(out)
    compressed.save(str(out))


def ort_top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    import onnxruntime as ort

    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    logits = np.concatenate([sess.run(None, {"image": x[i : i + 256]})[0] for i in range(0, len(x), 256)])
    return float((logits.argmax(1) == y).mean())


def tflite_top1(path: Path, x: np.ndarray, y: np.ndarray) -> float:
    """Scores the int8 model the way the agent runs it: quantise in, one image per invoke."""
    from ai_edge_litert.interpreter import Interpreter

    interp = Interpreter(model_path=str(path), num_threads=1)
    interp.allocate_tensors()
    inp, outp = interp.get_input_details()[0], interp.get_output_details()[0]
    scale, zero = inp["quantization"]
    hits = 0
    for i in range(len(x)):
        q = np.clip(np.round(x[i : i + 1] / scale) + zero, -128, 127).astype(inp["dtype"])
        interp.set_tensor(inp["index"], q.reshape(inp["shape"]))
        interp.invoke()
        hits += int(interp.get_tensor(outp["index"]).argmax() == y[i])
    return hits / len(x)


def main() -> None:
    train_set, test = debian_split("train"), debian_split("t10k")
    if train_set is None or test is None:
        raise SystemExit("needs Debian's Fashion-MNIST: apt-get install dataset-fashion-mnist")
    root = zoo_root()
    out = root / MODEL
    out.mkdir(exist_ok=True)
    (root / "data").mkdir(exist_ok=True)
    np.savez_compressed(
        root / SUBSET_FILE, images=test.images[:SUBSET_SIZE], labels=test.labels[:SUBSET_SIZE].astype(np.uint8)
    )

    started = time.time()
    train_x, test_x = _as_input(train_set.images), _as_input(test.images)
    model = train(train_x, train_set.labels)
    calib = train_x[np.random.default_rng(SEED).choice(len(train_x), CALIBRATION_SAMPLES, replace=False)]

    files = {"fp32.onnx": None, "int8.onnx": None, "int8.tflite": None, "int8.mlpackage": None}
    export_onnx(model, out / "fp32.onnx")
    quantise_onnx(out / "fp32.onnx", out / "int8.onnx", calib)
    convert_tflite_int8(model, out / "int8.tflite", calib)
    convert_coreml_w8(model, out / "int8.mlpackage")

    sub_x, sub_y = test_x[:SUBSET_SIZE], test.labels[:SUBSET_SIZE]
    scorers = {"fp32.onnx": ort_top1, "int8.onnx": ort_top1, "int8.tflite": tflite_top1}
    precision = {
        "fp32.onnx": ("fp32", "onnxruntime", "torch.onnx.export opset 17, dynamic batch"),
        "int8.onnx": ("int8", "onnxruntime", "ORT quantize_static QDQ, per-channel, QInt8/QInt8, 512 calibration images"),
        "int8.tflite": ("int8", "litert", "litert-torch PT2E, per-channel symmetric, int8 input/output, 512 calibration images"),
        "int8.mlpackage": ("mixed", "coreml", "coremltools mlprogram (iOS17), linear_quantize_weights int8; activations fp16"),
    }
    for name in files:
        path = out / name
        kind, runtime, how = precision[name]
        accuracy: dict[str, object] = {}
        if name in scorers:
            subset_top1 = scorers[name](path, sub_x, sub_y)
            half = TOP1_BAND[kind]
            accuracy = {
                "subset_top1": subset_top1,
                "subset_top1_band": [round(subset_top1 - half, 4), round(subset_top1 + half, 4)],
                "subset_n": SUBSET_SIZE,
                "full_top1": scorers[name](path, test_x, test.labels),
                "full_n": len(test.labels),
            }
        else:
            accuracy = {"note": "not measured: Core ML predicts on macOS only"}
        files[name] = {
            "sha256": sha256_of(path), "size_bytes": size_of(path), "precision": kind,
            "runtime": runtime, "how": how, "accuracy": accuracy,
        }
        if name in ONNX_SIBLINGS:
            files[name]["onnx_sibling"] = ONNX_SIBLINGS[name]

    tools = ("torch", "litert-torch", "onnxruntime", "onnx", "coremltools", "ai-edge-litert", "numpy")
    versions = {p: importlib.metadata.version(p) for p in tools}
    fp32_top1 = files["fp32.onnx"]["accuracy"]["subset_top1"]
    # only this model and its data are rebuilt: the fetchable entries beside them are kept as they are
    manifest = json.loads((root / "manifest.json").read_text())
    manifest["data"] = {
        "fashion-mnist-subset": {
            "file": SUBSET_FILE, "sha256": sha256_of(root / SUBSET_FILE), "n": SUBSET_SIZE,
            "what": f"images 0..{SUBSET_SIZE - 1} of the official Fashion-MNIST t10k test set (MIT), uint8 28x28",
            "source": "Debian dataset-fashion-mnist: /usr/share/datasets/fashion-mnist/t10k-*-ubyte.gz",
        }
    }
    manifest["models"][MODEL] = {
        "task": "image classification, 10 classes",
        "suite": "edgeperf reference",
        "source": "trained here by agent/zoo/build.py on Debian's Fashion-MNIST (docs/zoo.md)",
        "licence": "Apache-2.0 (edgeperf); data: Fashion-MNIST, MIT",
        "dataset": "fashion-mnist",
        "postprocess": {"kind": "classes", "class_offset": 0},
        "accuracy_target": {"metric": "top1", "reference": fp32_top1, "fraction": 0.98,
                            "where": f"edgeperf's own rule: a variant keeps 98 % of the fp32 top-1 on the committed subset "
                                     f"({fp32_top1}); each file's reproduction band is its subset_top1_band"},
        "classes": list(CLASSES),
        "input": "image: float32 [N,1,28,28] (NCHW), pixel/255 in [0,1]; the int8 TFLite takes it quantised",
        "output": "logits: [N,10]",
        "architecture": "Conv16-Pool-Conv32-Pool-FC64-FC10",
        "training": f"Adam lr 1e-3, batch 64, {EPOCHS} epochs, seed {SEED}, 60k Fashion-MNIST train images",
        "build_command": BUILD_COMMAND,
        "build_seconds": round(time.time() - started, 1),
        "tool_versions": versions,
        "files": files,
    }
    (root / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    print(json.dumps(files, indent=2))


if __name__ == "__main__":
    main()
