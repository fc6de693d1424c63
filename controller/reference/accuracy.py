"""``accuracy.txt`` of a published result, read per benchmark.

Each MLPerf benchmark's accuracy script prints its own format, and the results tree keeps that
output as written: ``accuracy=76.096%, good=38048, total=50000`` (ImageNet classifiers),
pycocotools' table ending ``mAP=37.373%`` (RetinaNet, SSD), ``{"exact_match": 82.952, "f1": 90.344}``
(BERT, SQuAD), ``Accuracy: mean = 0.86170, kidney = …`` (3D-UNet, DICE), ``Word Error Rate: …,
accuracy=…%`` (RNN-T), ``AUC=…`` (DLRM). The patterns are the ones MLCommons' submission checker
accepts, so a file it passed is read here too.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field


class AccuracyError(ValueError):
    """The file has no line in the format its benchmark's accuracy script prints."""


@dataclass(frozen=True)
class PublishedAccuracy:
    """A benchmark's accuracy metric as published: ``value`` in ``unit`` ("%" or "" for a fraction)."""

    metric: str  # top1 | mAP | F1 | DICE | WER accuracy | AUC
    value: float
    unit: str
    samples: int | None = None  # the samples scored, where the file says (ImageNet's total=)
    extra: dict[str, float] = field(default_factory=dict)  # exact_match, kidney, tumor, good, ...

    def text(self) -> str:
        return f"{self.metric} {self.value:g}{self.unit}"

    def to_dict(self) -> dict[str, object]:
        return {"metric": self.metric, "value": self.value, "unit": self.unit, "samples": self.samples, "extra": self.extra}


def _top1(text: str) -> PublishedAccuracy | None:
    found = re.search(r"^\s*accuracy\s*[=:]\s*([\d.]+)\s*%(?:,\s*good=(\d+),\s*total=(\d+))?", text, re.M | re.I)
    if found is None:
        return None
    good, total = found.group(2), found.group(3)
    return PublishedAccuracy("top1", float(found.group(1)), "%", int(total) if total else None,
                             {"good": float(good)} if good else {})


def _map(text: str) -> PublishedAccuracy | None:
    found = re.search(r"^\s*mAP\s*=\s*([\d.]+)\s*(%?)", text, re.M)
    if found is None:
        return None
    value = float(found.group(1))
    return PublishedAccuracy("mAP", value if found.group(2) else value * 100, "%")


def _f1(text: str) -> PublishedAccuracy | None:
    for line in text.splitlines():
        if '"f1"' not in line and "'f1'" not in line:
            continue
        try:
            doc = json.loads(line.strip().replace("'", '"'))
        except json.JSONDecodeError:
            continue
        if isinstance(doc, dict) and isinstance(doc.get("f1"), (int, float)):
            extra = {"exact_match": float(doc["exact_match"])} if isinstance(doc.get("exact_match"), (int, float)) else {}
            return PublishedAccuracy("F1", float(doc["f1"]), "%", None, extra)
    return None


def _dice(text: str) -> PublishedAccuracy | None:
    found = re.search(r"Accuracy:\s*mean\s*=\s*([\d.]+)(.*)$", text, re.M)
    if found is None:
        return None
    extra = {k: float(v) for k, v in re.findall(r"(\w+)\s*=\s*([\d.]+)", found.group(2))}
    return PublishedAccuracy("DICE", float(found.group(1)), "", None, extra)


def _wer(text: str) -> PublishedAccuracy | None:
    found = re.search(r"Word Error Rate:\s*([\d.]+)%.*accuracy=([\d.]+)%", text)
    if found is None:
        return None
    return PublishedAccuracy("WER accuracy", float(found.group(2)), "%", None, {"wer": float(found.group(1))})


def _auc(text: str) -> PublishedAccuracy | None:
    found = re.search(r"^\s*AUC\s*=\s*([\d.]+)", text, re.M)
    return None if found is None else PublishedAccuracy("AUC", float(found.group(1)), "")


# benchmark name prefix -> (its reader, the line it looks for, said when it is absent)
READERS = {
    "resnet": (_top1, "accuracy=NN.NNN%"), "mobilenet": (_top1, "accuracy=NN.NNN%"),
    "retinanet": (_map, "mAP=NN.NNN%"), "ssd": (_map, "mAP=NN.NNN%"),
    "bert": (_f1, '{"exact_match": …, "f1": …}'), "3d-unet": (_dice, "Accuracy: mean = …"),
    "rnnt": (_wer, "Word Error Rate: …, accuracy=…%"), "dlrm": (_auc, "AUC=…"),
}


def parse_accuracy(text: str, benchmark: str) -> PublishedAccuracy:
    """The benchmark's accuracy metric from its ``accuracy.txt``; a benchmark this does not know is
    tried against every format (open-division benchmarks are named freely)."""
    for prefix, (reader, wanted) in READERS.items():
        if benchmark.lower().startswith(prefix):
            if (found := reader(text)) is None:
                raise AccuracyError(f"no {wanted} line, which {benchmark}'s accuracy script prints")
            return found
    for reader, _wanted in READERS.values():
        if (found := reader(text)) is not None:
            return found
    raise AccuracyError(f"no accuracy line in a format edgeperf reads for benchmark {benchmark!r}")
