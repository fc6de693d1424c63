"""Preparing an ImageNet-layout folder for a run: decoding with MLPerf's preprocessing vs ``--inputs-cache``.

A device that benchmarks a model on 50,000 ImageNet images decodes and resizes them once per run
unless the prepared inputs are kept (``agent.datasets.inputs_cache``). This prints, side by side:

1. the reference: the same images decoded with OpenCV alone (``cv2.imread`` of every file, nothing
   else), the least any loader must spend;
2. ``datasets.load("imagenet:DIR")`` with ``imagenet-vgg`` and no cache: decoding plus MLPerf's resize,
   crop, mean subtraction and layout;
3. the same with ``--inputs-cache``, first run (computes and writes the entry);
4. the same again: a cache hit (one file read; every dataset file is still stat-ed for the key).

The images are generated (noise JPEGs of ImageNet's typical 500×375), so nothing is downloaded.

    python benchmarks/inputs_cache.py [--images 500] [--repeats 3]

Medians of ``--repeats``; ratios against the reference. The machine is noisy: compare within one run.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from agent import datasets
from agent.runtimes.base import TensorSpec

INPUT = TensorSpec("image", (1, 3, 224, 224), "float32")


def _images(root: Path, count: int) -> None:
    import cv2

    rng = np.random.default_rng(0)
    lines = []
    for i in range(1, count + 1):
        name = f"ILSVRC2012_val_{i:08d}.JPEG"
        cv2.imwrite(str(root / name), rng.integers(0, 256, (375, 500, 3), dtype=np.uint8))
        lines.append(f"{name} {i % 1000}")
    (root / "val_map.txt").write_text("\n".join(lines) + "\n")


def _median_s(run: Callable[[], object], repeats: int, before: Callable[[], None] = lambda: None) -> float:
    times = []
    for _ in range(repeats):
        before()
        t0 = time.perf_counter()
        run()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=500)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    import cv2

    with tempfile.TemporaryDirectory() as tmp:
        root, cache = Path(tmp) / "val", Path(tmp) / "cache"
        root.mkdir()
        _images(root, args.images)
        files = sorted(root.glob("*.JPEG"))
        spec = f"imagenet:{root}"

        def clear() -> None:
            for entry in cache.glob("*"):
                entry.unlink()

        reference = _median_s(lambda: [cv2.imread(str(f)) for f in files], args.repeats)
        plain = _median_s(lambda: datasets.load(spec, [INPUT], {}), args.repeats)
        first = _median_s(lambda: datasets.load(spec, [INPUT], {}, inputs_cache=cache), args.repeats, clear)
        datasets.load(spec, [INPUT], {}, inputs_cache=cache)
        hit = _median_s(lambda: datasets.load(spec, [INPUT], {}, inputs_cache=cache), args.repeats)

    print(f"{args.images} JPEGs 500x375 -> 3x224x224 float32 (imagenet-vgg), median of {args.repeats}")
    print(f"{'what':<44} {'seconds':>8} {'per image':>11} {'vs cv2.imread':>14}")
    for what, seconds in (("reference: cv2.imread of every file", reference), ("load, no cache", plain),
                          ("load, --inputs-cache, first run (writes)", first), ("load, --inputs-cache, hit", hit)):
        print(f"{what:<44} {seconds:8.3f} {seconds / args.images * 1e3:9.2f} ms {seconds / reference:13.2f}x")


if __name__ == "__main__":
    main()
