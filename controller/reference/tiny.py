"""An MLPerf Tiny result folder (EEMBC runner logs) read into a reference row.

MLPerf Tiny has no LoadGen: its host runner drives the device over a serial link and logs one
line per measurement window, then the median over windows. A published Tiny result lives at
``{division}/{submitter}/results/{system}/{benchmark}/{performance,accuracy,energy}/results.txt``
(or ``log.txt``) with lines such as::

    00126.167 ulp-mlperf: Median throughput is 8.425 inf./sec.
    07610.329 ulp-mlperf: Top-1: 85.3%
    07610.352 ulp-mlperf: AUC: 0.94
    00126.103 ulp-ml: Median energy cost is 2833.138 uJ/inf.

Its system descriptions use their own keys ("Board Name", "Processor(s) Name", "Inference
Framework"). Tiny runs one inference at a time, so a Tiny row is a SingleStream row whose
headline is the median throughput; the anomaly-detection benchmark (``ad``) is scored by AUC,
the others by top-1.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from controller.reference.accuracy import PublishedAccuracy

FILES = ("results.txt", "log.txt")
_THROUGHPUT = re.compile(r"Median throughput is\s*([\d.]+)\s*inf\./sec\.")
_ENERGY = re.compile(r"Median energy cost is\s*([\d.]+)\s*uJ/inf\.")
_TOP1 = re.compile(r"Top-1:\s*([\d.]+)\s*%")
_AUC = re.compile(r"AUC:\s*([\d.]+)")
_RUNTIME = re.compile(r"Runtime requirements have (not )?been met", re.I)


def is_tiny(bench_dir: Path) -> bool:
    """A Tiny layout: mode folders straight under the benchmark, no scenario folders."""
    return any((bench_dir / mode).is_dir() for mode in ("performance", "accuracy", "energy"))


def _texts(folder: Path) -> list[str]:
    return [(folder / name).read_text(errors="replace") for name in FILES if (folder / name).is_file()]


def _first(pattern: re.Pattern[str], texts: list[str]) -> float | None:
    for text in texts:
        if (found := pattern.search(text)) is not None:
            return float(found.group(1))
    return None


def throughput(bench_dir: Path) -> tuple[float, bool] | None:
    """(median inferences/s, every window met the runtime requirement) from the performance run,
    or from the energy run, which logs the same; None where neither says it."""
    for mode in ("performance", "energy"):
        texts = _texts(bench_dir / mode)
        value = _first(_THROUGHPUT, texts)
        if value is not None:
            verdicts = [m.group(1) is None for text in texts for m in _RUNTIME.finditer(text)]
            return value, bool(verdicts) and all(verdicts)
    return None


def energy_mj(bench_dir: Path) -> float | None:
    """The median energy per inference of the energy run, in mJ (the runner logs µJ)."""
    value = _first(_ENERGY, _texts(bench_dir / "energy"))
    return None if value is None else value / 1000


def accuracy(bench_dir: Path, benchmark: str) -> PublishedAccuracy | None:
    """AUC for anomaly detection, top-1 (%) for the classifiers; None where the log says neither."""
    texts = _texts(bench_dir / "accuracy")
    if benchmark == "ad":
        auc = _first(_AUC, texts)
        return None if auc is None else PublishedAccuracy("AUC", auc, "")
    top1 = _first(_TOP1, texts)
    return None if top1 is None else PublishedAccuracy("top1", top1, "%")


def system_fields(doc: dict[str, Any], folder: str) -> dict[str, Any]:
    """A Tiny system description in the names Inference descriptions use (those win where both are given)."""
    return {
        "system_name": doc.get("system_name") or doc.get("Board Name") or doc.get("System Name") or folder,
        "status": str(doc.get("status") or doc.get("Status") or "").lower(),
        "accelerator_model_name": doc.get("accelerator_model_name") or doc.get("Accelerator")
        or doc.get("Processor(s) Name") or "",
        "host_processor_model_name": doc.get("host_processor_model_name") or doc.get("Processor(s) Name") or "",
        "framework": doc.get("framework") or doc.get("Inference Framework") or "",
    }
