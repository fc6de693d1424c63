"""From an fp32 source to int8 variants in an output folder, each with its provenance.

The order matters for the user's time: every input is checked (source, formats, datasets against
the model's inputs) before anything slow runs; the float reference is scored once; each format is
then quantised and, with ``--eval``, tuned against the budget (``tuning``). Every output gets its
provenance record twice: ``FILE.provenance.json`` beside it, and inside the file's own metadata
(``agent.model_provenance``), so any result that benchmarks the file carries it.
"""

from __future__ import annotations

import importlib.metadata
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import msgspec

from agent import model_provenance
from agent.contract import PROVENANCE_SCHEMA, CalibrationBlock, PairedAccuracy, Provenance
from agent.errors import SettingsError
from controller.analysis import paired
from controller.quantize import QuantizeError, coreml_weights, samples, sources, tuning
from controller.quantize.request import Request
from controller.quantize.samples import Scored

TOOLS = {
    "onnx": ("onnxruntime", "onnx", "numpy"),
    "tflite": ("ai-edge-quantizer", "ai-edge-litert", "litert-torch", "torch", "numpy"),
    "coreml": ("coremltools", "torch", "numpy"),
    "export": ("torch", "onnx", "numpy"),
}
OUTPUT = {"onnx": "int8.onnx", "tflite": "int8.tflite"}


@dataclass
class Output:
    """One file written to the output folder, its provenance, and how tuning went."""

    path: Path
    provenance: Provenance
    outcome: tuning.Outcome | None = None

    @property
    def missed_by_pp(self) -> float | None:
        """How far the kept variant's drop exceeds the budget (None: met, or not measured)."""
        p = self.provenance
        if p.budget_met is not False or p.accuracy is None or p.budget_pp is None:
            return None
        return -p.accuracy.delta_pp - p.budget_pp


@dataclass
class Report:
    """What ``run`` made: the float reference file and the variants, with what was measured."""

    source: sources.Source
    reference_file: Path
    reference: Scored | None
    outputs: list[Output] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def unmet(self) -> list[Output]:
        return [o for o in self.outputs if o.provenance.budget_met is False]


def versions(kind: str) -> dict[str, str]:
    """Installed versions of the tools ``kind`` used (absent ones are left out)."""
    out = {"edgeperf": importlib.metadata.version("edgeperf")}
    for name in TOOLS[kind]:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return out


def _paired(variant: Scored, reference: Scored) -> PairedAccuracy:
    d = paired.delta([variant.accuracy], [reference.accuracy])
    variant_only, source_only = d.discordant or (0, 0)
    return PairedAccuracy(dataset=reference.dataset, n=d.n, samples_sha256=reference.accuracy.samples_sha256,
                          source_top1=reference.top1, variant_top1=variant.top1, delta_pp=d.delta * 100,
                          ci95_pp=(d.lo * 100, d.hi * 100), method=d.method, source_only=source_only,
                          variant_only=variant_only, p_value=min(1.0, d.p_value))


def _write(path: Path, record: Provenance) -> None:
    """The record beside the file (readable JSON) and inside it (travels with the file)."""
    model_provenance.embed(path, record)
    beside = path.with_name(path.name + ".provenance.json")
    beside.write_bytes(msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n")


def _targets(req: Request, source: sources.Source) -> list[str]:
    """The files ``run`` writes into the output folder."""
    names = ["fp32.onnx"] if source.torch else []
    names += [f"{req.coreml_weights}.mlpackage" if fmt == "coreml" else OUTPUT[fmt] for fmt in req.formats]
    return [n for name in names for n in (name, f"{name}.provenance.json")]


def _check_outdir(outdir: Path, targets: list[str]) -> None:
    """A writable folder that holds none of the files about to be written: variants made before are
    never overwritten (their numbers may already be in a campaign's results)."""
    if outdir.exists() and not outdir.is_dir():
        raise SettingsError(f"-o {outdir} is a file; give a folder for the variants")
    taken = [name for name in targets if (outdir / name).exists()]
    if taken:
        raise SettingsError(f"-o {outdir} already holds {', '.join(taken[:3])}{' ...' if len(taken) > 3 else ''}; "
                            "give a new folder, or remove them to make them again")
    try:
        outdir.mkdir(parents=True, exist_ok=True)
        probe = outdir / ".edgeperf-write-check"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise SettingsError(f"-o {outdir}: cannot write there ({exc.strerror}); give a writable folder") from None


def _overlap(req: Request, total: int) -> str | None:
    if req.eval is None or req.eval.name != req.calibration.name:
        return None
    n_eval = req.eval.count or total
    n_cal = req.calibration.count or total
    if n_eval + n_cal <= total:
        return None
    return (f"{n_eval + n_cal - total} of the {n_eval} evaluation samples were also used to calibrate: the accuracy "
            f"is optimistic; split the set, e.g. --calibration {req.calibration.name}:{total // 5} "
            f"--eval {req.eval.name}:{total - total // 5}")


def run(req: Request, log: Callable[[str], None] = lambda _line: None) -> Report:
    """Quantise ``req.source`` into every format of ``req.formats``; see the module docstring."""
    started = time.perf_counter()
    if req.budget_pp is not None and req.eval is None:
        raise SettingsError("--accuracy-budget needs --eval: a labelled dataset to measure the drop on")
    source = sources.load(req.source, req.shapes)
    sources.check_formats(source, req.formats)
    _check_outdir(req.outdir, _targets(req, source))
    created = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with tempfile.TemporaryDirectory(prefix="edgeperf-quantize-") as tmp:
        work = Path(tmp)
        reference_file = source.path
        if source.torch:
            reference_file = req.outdir / "fp32.onnx"
            log(f"exporting {source.name} to {reference_file}")
            method = sources.export_onnx(source, reference_file)
            _write(reference_file, Provenance(
                schema=PROVENANCE_SCHEMA, source_name=source.name, source_sha256=source.sha256, source_format=source.kind,
                format="onnx", precision="fp32", method=method, tool_versions=versions("export"),
                accuracy_note="the float reference: every variant's accuracy is compared with this file's", created_at=created))
        inputs = samples.open_model(reference_file, req.threads).info.inputs
        feeds, calibration, total = samples.calibration(req.calibration, inputs, req.shapes)
        report = Report(source, reference_file, None)
        if (warning := _overlap(req, total)) is not None:
            report.warnings.append(warning)
        if req.eval is not None:
            report.reference = samples.score(reference_file, req.eval, req.shapes, req.threads)
            log(f"float reference {reference_file.name}: top-1 {report.reference.top1:.4f} on {req.eval.text}")
        for fmt in req.formats:
            log(f"{fmt}: quantising")
            if fmt == "coreml":
                report.outputs.append(_coreml(req, source, report.reference, created))
            else:
                report.outputs.append(_tuned(req, fmt, source, reference_file, feeds, calibration, report.reference,
                                             work / fmt, created, log))
    report.seconds = time.perf_counter() - started
    return report


def _tuned(req: Request, fmt: str, source: sources.Source, reference_file: Path, feeds: list, calibration: CalibrationBlock,
           reference: Scored | None, work: Path, created: str, log: Callable[[str], None]) -> Output:
    work.mkdir()
    if fmt == "onnx":
        from controller.quantize.onnx_int8 import OnnxInt8

        quantiser = OnnxInt8(reference_file, feeds, req.calibration_method, req.per_channel, work)
        suffix, method = ".onnx", "ONNX Runtime quantize_static, QDQ int8"
    else:
        from controller.quantize.tflite_int8 import TfliteInt8

        float_tflite = work / "float.tflite"
        how = sources.export_tflite(source, float_tflite)
        names = list(feeds[0])  # the float reference's inputs, in its order (the datasets fill them so)
        quantiser = TfliteInt8(float_tflite, [[f[n] for n in names] for f in feeds], req.per_channel)
        suffix, method = ".tflite", f"AI Edge Quantizer static int8 ({how})"
        if req.calibration_method != "minmax":
            log("tflite: the AI Edge Quantizer calibrates by min/max only; --calibration-method applies to ONNX")
    probe = work / f"probe{suffix}"
    quantiser.build((), probe)
    candidates = quantiser.quantised_nodes(probe) if fmt == "onnx" else quantiser.quantised_ops(probe)
    if not candidates:
        why = quantiser.why_nothing() if fmt == "onnx" else "none of its operators is one the quantiser supports"
        raise QuantizeError(f"nothing in {source.name} could be quantised to int8 for {fmt}: {why}; "
                            "benchmark the float model instead")
    out = req.outdir / OUTPUT[fmt]
    outcome = None
    if reference is not None:
        outcome = tuning.tune(quantiser.build, candidates, lambda p: samples.score(p, req.eval, req.shapes, req.threads),
                              reference, req.budget_pp, work, suffix, probe, req.max_trials, log)
        shutil.copyfile(outcome.best.path, out)
    else:
        shutil.copyfile(probe, out)
    accuracy = _paired(outcome.best.scored, reference) if outcome else None
    record = Provenance(
        schema=PROVENANCE_SCHEMA, source_name=source.name, source_sha256=source.sha256, source_format=source.kind,
        format=fmt, precision="int8" if not (outcome and outcome.best.float_ops) else "mixed", method=method,
        settings=quantiser.settings() | {"quantised_operators": len(candidates) - len(outcome.best.float_ops if outcome else ()),
                                         "tuning_trials": outcome.trials if outcome else 0},
        calibration=calibration, float_operators=outcome.best.float_ops if outcome else (),
        tool_versions=versions(fmt), accuracy=accuracy,
        accuracy_note="" if accuracy else "not measured: no --eval dataset was given",
        budget_pp=req.budget_pp if accuracy else None,
        budget_met=(outcome.met if req.budget_pp is not None else None) if outcome else None, created_at=created)
    _write(out, record)
    return Output(out, record, outcome)


def _coreml(req: Request, source: sources.Source, reference: Scored | None, created: str) -> Output:
    out = req.outdir / f"{req.coreml_weights}.mlpackage"
    settings = coreml_weights.build(source, req.coreml_weights, out)
    accuracy, note = None, "not measured: Core ML predicts on macOS only; run an accuracy job on a Mac agent"
    if sys.platform == "darwin" and reference is not None:
        accuracy, note = _paired(samples.score(out, req.eval, req.shapes, req.threads), reference), ""
    elif reference is None:
        note = "not measured: no --eval dataset was given"
    record = Provenance(
        schema=PROVENANCE_SCHEMA, source_name=source.name, source_sha256=source.sha256, source_format=source.kind,
        format="coreml", precision="mixed", method=f"coremltools weight compression ({settings['weights']})",
        settings=settings, tool_versions=versions("coreml"), accuracy=accuracy, accuracy_note=note,
        budget_pp=req.budget_pp if accuracy else None,
        budget_met=(-accuracy.delta_pp <= req.budget_pp) if accuracy and req.budget_pp is not None else None,
        created_at=created)
    _write(out, record)
    return Output(out, record)
