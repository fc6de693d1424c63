"""Time and peak memory of ``edgeperf quantize`` on the zoo model, next to the quantiser's bare call.

Each command runs in its own child process, so its wall time includes imports (what a user waits for)
and its peak RSS (``ru_maxrss`` of that child, read with ``os.wait4``) is its own:

1. the reference: ONNX Runtime's ``quant_pre_process`` + ``quantize_static`` on the zoo's fp32 ONNX
   with the same 200 calibration images and settings — the one call the zoo build makes, with no
   scoring and no tuning;
2. ``edgeperf quantize zoo:fashion-mnist-cnn/fp32.onnx --calibration fashion-mnist:subset:200
   --eval fashion-mnist:subset:800 --accuracy-budget 1pp``: the same quantisation, plus scoring the
   fp32 and int8 models on 800 images and writing the provenance (no fall-back is needed at 1 pp);
3. the same with ``--accuracy-budget 0pp`` where the CPU's int8 kernels lose anything: the fall-back
   search at work (each operator measured alone, then cumulatively);
4. from PyTorch (``examples/quantize/fashion_cnn.py:model``) to int8 ONNX, int8 LiteRT and Core ML.

    python benchmarks/quantize.py [--repeats 3]

Medians of ``--repeats`` runs; ratios against the reference are printed beside each figure. The
machine is noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REFERENCE = """
import sys, numpy as np
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
from onnxruntime.quantization.shape_inference import quant_pre_process
from agent.datasets.fashion_mnist import committed_subset
x = (committed_subset().images[800:].astype(np.float32) / 255.0)[:, None]
class Reader(CalibrationDataReader):
    def __init__(self): self.rows = iter(x[i:i + 1] for i in range(len(x)))
    def get_next(self):
        row = next(self.rows, None)
        return None if row is None else {"image": row}
out = sys.argv[1]
quant_pre_process("agent/zoo/fashion-mnist-cnn/fp32.onnx", out + "/pre.onnx")
quantize_static(out + "/pre.onnx", out + "/int8.onnx", Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                activation_type=QuantType.QInt8, weight_type=QuantType.QInt8)
"""
ZOO = ("zoo:fashion-mnist-cnn/fp32.onnx", "--calibration", "fashion-mnist:subset:200", "--eval", "fashion-mnist:subset:800")
CASES = {
    "ORT quantize_static alone (reference)": None,
    "edgeperf quantize, ONNX, 1 pp budget": (*ZOO, "--accuracy-budget", "1pp"),
    "edgeperf quantize, ONNX, 0 pp budget (fall-back search)": (*ZOO, "--accuracy-budget", "0pp"),
    "edgeperf quantize, PyTorch to ONNX + LiteRT + Core ML": (
        "examples/quantize/fashion_cnn.py:model", "--format", "onnx,tflite,coreml", "--calibration", "fashion-mnist:subset:200",
        "--eval", "fashion-mnist:subset:800", "--accuracy-budget", "1pp"),
}


def measure(argv: list[str]) -> tuple[float, float]:
    """Wall seconds and peak RSS (MiB) of one child process."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=os.environ | {"TQDM_DISABLE": "1"})
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
    if proc.returncode not in (0, 1):  # 1: a 0 pp budget that nothing meets is still a measured search
        raise SystemExit(f"{' '.join(argv)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, usage.ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    os.chdir(Path(__file__).resolve().parent.parent)
    rows = []
    for name, case in CASES.items():
        walls, peaks = [], []
        for _ in range(args.repeats):
            with tempfile.TemporaryDirectory() as out:
                argv = ([sys.executable, "-c", REFERENCE, out] if case is None else
                        [sys.executable, "-c", "from controller.cli import main; main()", "quantize", *case, "-o", out])
                wall, peak = measure(argv)
            walls.append(wall)
            peaks.append(peak)
        rows.append((name, statistics.median(walls), statistics.median(peaks)))
    ref_wall, ref_peak = rows[0][1], rows[0][2]
    print(f"{'command':58} {'wall s':>8} {'× ref':>6} {'peak RSS MiB':>13} {'× ref':>6}")
    for name, wall, peak in rows:
        print(f"{name:58} {wall:8.1f} {wall / ref_wall:6.1f} {peak:13.0f} {peak / ref_peak:6.1f}")
    print(f"medians of {args.repeats} runs; {os.cpu_count()} CPUs; each a child process, imports included")


if __name__ == "__main__":
    main()
