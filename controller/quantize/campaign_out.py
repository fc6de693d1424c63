"""``--campaign OUT.yaml``: a campaign that benchmarks the fp32 source and every variant on the fleet.

Written as YAML text with comments (the reader is ``controller.fleet.campaign``, which checks it
again before anything runs): one model with the float file and each variant as its variants, so
the scorecard sets every int8 row against the fp32 row of the same device. Accuracy runs join the
performance runs when the evaluation set is a dataset the agents know by name; a folder of
``.npy`` files lives on this host only, so then the variants' host-measured accuracy (in their
provenance) is what the report plots. Core ML variants run on macOS agents only, so they are
written commented out, ready for a campaign that selects Macs.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from controller.quantize.pipeline import Report
from controller.quantize.request import Request

AGENT_DATASETS = ("fashion-mnist", "fashion-mnist:subset", "fashion-mnist:full")


def _artifact(path: Path | None, name: str, base: Path) -> str:
    if path is None or name.startswith("zoo:"):
        return name
    return os.path.relpath(path.resolve(), base.resolve())


def model_name(source: str) -> str:
    """What the campaign calls the model: the zoo model, a file's stem, or a function's module."""
    if source.startswith("zoo:"):
        return source.removeprefix("zoo:").split("/")[0]
    target, sep, _function = source.rpartition(":")
    if not sep or Path(source).suffix in (".onnx", ".tflite", ".pt2", ".pt", ".pth"):
        return Path(source).stem
    return Path(target).stem if target.endswith(".py") else target.rsplit(".", 1)[-1]


def text(req: Request, report: Report, out: Path) -> str:
    """The campaign file's text for ``report``, artifact paths relative to ``out``'s folder."""
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", model_name(report.source.name)).strip("-.") or "model"
    base = out.parent
    accuracy = req.eval is not None and req.eval.name in AGENT_DATASETS
    lines = [
        f"# written by edgeperf quantize from {report.source.name} (sha256 {report.source.sha256[:12]})",
        "# run it with: edgeperf campaign run " + out.name,
        f"name: quantize-{stem}",
        "profile: quick",
        "scenarios: [SingleStream, Offline]",
        f"modes: [performance{', accuracy' if accuracy else ''}]",
    ]
    if accuracy:
        lines.append(f"accuracy_dataset: {req.eval.name}")
    elif req.eval is not None:
        lines.append(f"# no accuracy runs: --eval {req.eval.text} is not a dataset the agents know by name; each "
                     "variant's accuracy measured here is in its provenance")
    lines += ["devices: all", "models:", f"  - name: {stem}", "    variants:"]
    lines += [f"      - artifact: {_artifact(report.reference_file, report.source.name, base)}", "        name: fp32"]
    for output in report.outputs:
        entry = [f"      - artifact: {_artifact(output.path, '', base)}",
                 f"        name: {output.path.name.replace('.', '-')}"]
        if output.provenance.format == "coreml":
            lines.append("      # Core ML runs on macOS agents only: uncomment for a campaign whose devices are Macs")
            entry = [f"      # {line[6:]}" for line in entry]
        lines += entry
    return "\n".join(lines) + "\n"
