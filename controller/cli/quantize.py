"""``edgeperf quantize``: a thin command over ``controller.quantize.pipeline``.

Exit codes: 0 every variant written (and within budget where one was given), 1 a budget that
could not be met (the best variant is written and the miss said), 2 bad input (source, format,
dataset, flags) or a model the quantisers refuse.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table

from agent.runtimes.shapes import parse_shape_overrides
from controller.cli.common import check_output, cli_errors, console, err_console, write_output
from controller.quantize import campaign_out, pipeline
from controller.quantize.request import (
    CALIBRATION_METHODS,
    COREML_WEIGHTS,
    Request,
    check_choice,
    parse_budget,
    parse_data,
    parse_formats,
)


def _pp(value: float) -> str:
    return f"{value:+.2f}"


def _table(report: pipeline.Report) -> Table:
    table = Table(title=f"edgeperf quantize: {escape(report.source.name)} (sha256 {report.source.sha256[:12]})")
    for column in ("file", "precision", "top-1", "vs fp32, pp [95 % paired]", "operators in float", "budget"):
        table.add_column(column)
    if report.reference is not None:
        table.add_row(escape(report.reference_file.name), "fp32", f"{report.reference.top1:.4f}", "reference", "all", "")
    for out in report.outputs:
        p = out.provenance
        acc = p.accuracy
        delta = f"{_pp(acc.delta_pp)} [{_pp(acc.ci95_pp[0])}, {_pp(acc.ci95_pp[1])}] n={acc.n}" if acc else "not measured"
        budget = "" if p.budget_met is None else f"met ({p.budget_pp:g} pp)" if p.budget_met else \
            f"MISSED by {out.missed_by_pp:.2f} pp"
        table.add_row(escape(out.path.name), p.precision, f"{acc.variant_top1:.4f}" if acc else "–", delta,
                      escape(", ".join(p.float_operators)) or "none", budget)
    return table


@cli_errors
def quantize(
    source: Annotated[str, typer.Argument(help="fp32 model: .onnx, float .tflite, torch.export .pt2, TorchScript .pt, "
                                               "or FILE.py:FUNCTION returning (nn.Module, example_inputs)")],
    calibration: Annotated[str, typer.Option("--calibration", help="DATASET[:N] the activation ranges are measured on "
                                                                   "(its last N samples): a dataset name or a folder of .npy")],
    output: Annotated[Path, typer.Option("-o", "--output", help="folder the variants are written to")],
    formats: Annotated[str, typer.Option("--format", help="onnx, tflite, coreml; comma-separated")] = "onnx",
    eval_set: Annotated[str | None, typer.Option("--eval", help="labelled DATASET[:N] accuracy is measured on "
                                                                "(its first N samples)")] = None,
    budget: Annotated[str | None, typer.Option("--accuracy-budget", help="largest top-1 drop allowed, in "
                                                                         "percentage points, e.g. 1pp")] = None,
    method: Annotated[str, typer.Option("--calibration-method", help="ONNX: minmax | entropy | percentile")] = "minmax",
    per_tensor: Annotated[bool, typer.Option("--per-tensor", help="one scale per weight tensor instead of per "
                                                                  "channel")] = False,
    coreml_weights: Annotated[str, typer.Option("--coreml-weights", help="int8 | palette6 | palette4")] = "int8",
    shape: Annotated[list[str], typer.Option("--shape", help="NAME=D1xD2x..: input sizes (TorchScript sources, "
                                                             "free dimensions)")] = [],  # noqa: B006 (typer reads the default)
    campaign: Annotated[Path | None, typer.Option("--campaign", help="write a campaign YAML that benchmarks the "
                                                                     "source and every variant")] = None,
    max_trials: Annotated[int, typer.Option("--max-trials", min=1, max=100_000, help="variants tuning may build "
                                                                                      "per format")] = 200,
    threads: Annotated[int | None, typer.Option("--threads", min=1, max=1024, help="runtime threads for "
                                                                                   "scoring")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the provenance records as JSON")] = False,
) -> None:
    """Quantise an fp32 model to int8 ONNX / LiteRT / Core ML variants within an accuracy budget (docs/quantize.md)."""
    if campaign is not None and campaign.parent.resolve() != output.resolve():  # the output folder is made below
        check_output(campaign, "--campaign", "quantize.yaml")
    req = Request(
        source=source, calibration=parse_data(calibration, "--calibration"), formats=parse_formats(formats),
        outdir=output, eval=parse_data(eval_set, "--eval") if eval_set is not None else None,
        budget_pp=parse_budget(budget) if budget is not None else None,
        calibration_method=check_choice(method, CALIBRATION_METHODS, "--calibration-method"),
        per_channel=not per_tensor, coreml_weights=check_choice(coreml_weights, COREML_WEIGHTS, "--coreml-weights"),
        shapes=parse_shape_overrides(shape), max_trials=max_trials, threads=threads,
    )
    os.environ.setdefault("TQDM_DISABLE", "1")  # coremltools' and the quantisers' progress bars: the log says what runs
    with contextlib.redirect_stdout(sys.stderr):  # the tools print their own progress (ORT's calibrators): stdout is ours
        report = pipeline.run(req, log=lambda line: err_console.print(escape(line), highlight=False))
    for warning in report.warnings:
        err_console.print(f"[yellow]warning:[/] {escape(warning)}", highlight=False)
    if campaign is not None:
        write_output(campaign, campaign_out.text(req, report, campaign), "--campaign")
    if as_json:
        import msgspec

        print(json.dumps([msgspec.to_builtins(o.provenance) | {"file": str(o.path)} for o in report.outputs], indent=2))
    else:
        console.print(_table(report))
        for out in report.outputs:
            if out.provenance.accuracy is None:
                console.print(f"{escape(out.path.name)}: {escape(out.provenance.accuracy_note)}")
        console.print(f"{len(report.outputs)} variant(s) in {escape(str(output))} in {report.seconds:.1f} s; provenance "
                      "beside each file (.provenance.json) and inside it" +
                      (f"; campaign: edgeperf campaign run {escape(str(campaign))}" if campaign else ""))
    for out in report.unmet:
        limit = f", tuning stopped by --max-trials {max_trials}" if out.outcome and out.outcome.stopped_by_limit else ""
        err_console.print(f"[bold red]error:[/] {escape(out.path.name)} misses the {out.provenance.budget_pp:g} pp budget "
                          f"by {out.missed_by_pp:.2f} pp with {len(out.provenance.float_operators)} operator(s) in float"
                          f"{limit} (the most accurate variant tried is written); raise --accuracy-budget or --max-trials, "
                          "calibrate on more or more representative samples, or try --calibration-method entropy",
                          highlight=False)
    if report.unmet:
        raise typer.Exit(1)
