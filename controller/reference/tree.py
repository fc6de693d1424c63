"""An MLCommons Inference results tree, walked into reference rows and the problems met on the way.

The layout is the one MLCommons publishes (github.com/mlcommons/inference_results_vX.Y)::

    {division}/{submitter}/systems/{system}.json
    {division}/{submitter}/results/{system}/{benchmark}/{scenario}/performance/run_1/mlperf_log_summary.txt
    {division}/{submitter}/results/{system}/{benchmark}/{scenario}/accuracy/accuracy.txt
    {division}/{submitter}/compliance/{system}/{benchmark}/{scenario}/TEST01/verify_*.txt

MLPerf Tiny trees (``tiny_results_vX.Y``) share the folders above the benchmark; below it they hold
the EEMBC runner's logs instead of LoadGen's (``tiny``).

A tree is large and written by many hands, so nothing in it stops the walk: each folder that
cannot be read becomes one ``Problem`` naming it and why, and the rest is imported. The path
given may be the whole tree, one division or one submitter.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agent.errors import EdgeperfError
from controller.reference import tiny
from controller.reference.accuracy import AccuracyError, PublishedAccuracy, parse_accuracy
from controller.reference.rows import ReferenceRow, headline
from controller.reference.summary import SCENARIOS, SummaryError, parse_summary

DIVISIONS = ("closed", "open", "network")
PERFORMANCE_SUMMARY = Path("performance", "run_1", "mlperf_log_summary.txt")
_VERSION = re.compile(r"(?:^|[_-])v(\d+\.\d+)$")


class ReferenceTreeError(EdgeperfError):
    """The path is not a results tree, or its MLPerf version cannot be told."""


@dataclass(frozen=True)
class Problem:
    """Something in the tree that was not imported (``skipped``) or imported in part (``partial``)."""

    where: str  # the folder or file, relative to the imported path
    why: str
    kind: str = "skipped"

    def line(self) -> str:
        return f"{self.kind} {self.where}: {self.why}"


@dataclass
class TreeImport:
    """What a walk found: the rows, every problem, and which MLPerf version they were labelled with and why."""

    root: Path
    version: str
    version_from: str
    rows: list[ReferenceRow] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


def version_of(root: Path, given: str | None) -> tuple[str, str]:
    """(``v4.1``, where it came from): the tree's folder name (``inference_results_v4.1``), or ``given``.

    Both given and disagreeing is an error: the rows would carry a version their tree contradicts."""
    named = None
    for part in reversed(root.resolve().parts):
        if (found := _VERSION.search(part)) is not None:
            named = (f"v{found.group(1)}", f"the folder name {part}")
            break
    if given is not None:
        found = re.fullmatch(r"v?(\d+\.\d+)", given.strip())
        if found is None:
            raise ReferenceTreeError(f"--version {given!r} is not an MLPerf version; give it as v4.1")
        version = f"v{found.group(1)}"
        if named is not None and named[0] != version:
            raise ReferenceTreeError(f"--version {version} contradicts {named[1]} ({named[0]}); drop --version or "
                                     "import the tree that version names")
        return version, named[1] if named else "--version"
    if named is None:
        raise ReferenceTreeError(f"cannot tell the MLPerf version of {root}: no folder on its path is named like "
                                 "inference_results_v4.1; pass --version v4.1")
    return named


def submitters(root: Path) -> list[tuple[str, Path]]:
    """(division, submitter folder) pairs under ``root``: the tree, a division, or one submitter."""
    if (root / "results").is_dir():
        if root.resolve().parent.name not in DIVISIONS:
            raise ReferenceTreeError(f"cannot tell the division of {root}: a submitter's folder sits in closed/, open/ or "
                                     "network/; import that folder's parent, or the whole tree")
        return [(root.resolve().parent.name, root)]
    if root.name in DIVISIONS:
        return [(root.name, d) for d in sorted(root.iterdir()) if d.is_dir()]
    return [(div.name, d) for div in sorted(root.iterdir()) if div.is_dir() and div.name in DIVISIONS
            for d in sorted(div.iterdir()) if d.is_dir()]


def read_tree(root: Path, version: str | None = None) -> TreeImport:
    """Every published result under ``root`` as rows, with one ``Problem`` per thing left out."""
    if not root.is_dir():
        raise ReferenceTreeError(f"{root} is not a folder; give the path of an MLCommons results tree "
                                 "(a checkout of github.com/mlcommons/inference_results_v4.1, or one division of it)")
    label, source = version_of(root, version)
    out = TreeImport(root, label, source)
    found = submitters(root)
    if not found:
        out.problems.append(Problem(".", "no closed/, open/ or network/ division and no results/ folder here; "
                                         "point at the top of a results tree"))
    for division, folder in found:
        _read_submitter(out, division, folder)
    return out


def _rel(out: TreeImport, path: Path) -> str:
    try:
        return str(path.relative_to(out.root))
    except ValueError:
        return str(path)


def _read_submitter(out: TreeImport, division: str, folder: Path) -> None:
    results = folder / "results"
    if not results.is_dir():
        out.problems.append(Problem(_rel(out, folder), "no results/ folder"))
        return
    for system_dir in sorted(d for d in results.iterdir() if d.is_dir()):
        system = _system(out, folder, system_dir.name)
        if system is None:
            continue
        for bench_dir in sorted(d for d in system_dir.iterdir() if d.is_dir()):
            if tiny.is_tiny(bench_dir):
                row = _tiny_row(out, division, folder, system, bench_dir)
                if row is not None:
                    out.rows.append(row)
                continue
            for scenario_dir in sorted(d for d in bench_dir.iterdir() if d.is_dir() and d.name in SCENARIOS):
                row = _row(out, division, folder, system, bench_dir.name, scenario_dir)
                if row is not None:
                    out.rows.append(row)


def _system(out: TreeImport, submitter: Path, name: str) -> dict[str, Any] | None:
    """The system description ``systems/<name>.json``, or None with a problem said."""
    path = submitter / "systems" / f"{name}.json"
    where = _rel(out, submitter / "results" / name)
    try:
        doc = json.loads(path.read_text(encoding="utf-8", errors="replace"))
    except FileNotFoundError:
        out.problems.append(Problem(where, f"no system description {_rel(out, path)}"))
        return None
    except (OSError, json.JSONDecodeError) as exc:
        out.problems.append(Problem(where, f"system description {_rel(out, path)} does not read as JSON: {exc}"))
        return None
    if not isinstance(doc, dict):
        out.problems.append(Problem(where, f"system description {_rel(out, path)} is not a JSON object"))
        return None
    return doc | {"_folder": name}


def _count(doc: dict[str, Any]) -> int | None:
    per_node, nodes = doc.get("accelerators_per_node"), doc.get("number_of_nodes", 1)
    try:
        return int(per_node) * int(nodes or 1)
    except (TypeError, ValueError):
        return None


def _compliance(submitter: Path, system: str, benchmark: str, scenario_dir: Path) -> dict[str, bool]:
    """TEST01, TEST04 … -> passed: every ``verify_*.txt`` of the test says TEST PASS (a test folder
    without one has not shown that it passed)."""
    out: dict[str, bool] = {}
    for folder in (submitter / "compliance" / system / benchmark / scenario_dir.name, scenario_dir):
        for test in sorted(folder.glob("TEST*")) if folder.is_dir() else ():
            verdicts = [v.read_text(errors="replace") for v in sorted(test.glob("verify_*.txt"))]
            out[test.name] = bool(verdicts) and all("TEST PASS" in v for v in verdicts)
    return out


def _accuracy(out: TreeImport, scenario_dir: Path, benchmark: str) -> PublishedAccuracy | None:
    path = scenario_dir / "accuracy" / "accuracy.txt"
    try:
        return parse_accuracy(path.read_text(errors="replace"), benchmark)
    except FileNotFoundError:
        why = "no accuracy/accuracy.txt; imported without accuracy"
    except (OSError, AccuracyError) as exc:
        why = f"accuracy/accuracy.txt: {exc}; imported without accuracy"
    out.problems.append(Problem(_rel(out, scenario_dir), why, "partial"))
    return None


def _row(out: TreeImport, division: str, submitter: Path, system: dict[str, Any], benchmark: str,
         scenario_dir: Path) -> ReferenceRow | None:
    where = _rel(out, scenario_dir)
    path = scenario_dir / PERFORMANCE_SUMMARY
    try:
        summary = parse_summary(path.read_text(errors="replace"))
    except FileNotFoundError:
        out.problems.append(Problem(where, f"no {PERFORMANCE_SUMMARY}"))
        return None
    except (OSError, SummaryError) as exc:
        out.problems.append(Problem(where, f"{PERFORMANCE_SUMMARY}: {exc}"))
        return None
    if summary.scenario != scenario_dir.name or summary.mode != "performance":
        out.problems.append(Problem(where, f"{PERFORMANCE_SUMMARY} is a {summary.scenario} {summary.mode} run, "
                                           f"not {scenario_dir.name} performance"))
        return None
    metric, value, unit = headline(summary)
    return ReferenceRow(
        suite="Inference", version=out.version, division=division, submitter=submitter.name, system=system["_folder"],
        system_name=str(system.get("system_name") or system["_folder"]), system_type=str(system.get("system_type") or ""),
        status=str(system.get("status") or ""), accelerator=str(system.get("accelerator_model_name") or ""),
        accelerators=_count(system), host_processor=str(system.get("host_processor_model_name") or ""),
        framework=str(system.get("framework") or ""), benchmark=benchmark, scenario=summary.scenario,
        metric=metric, value=value, unit=unit, result_field=summary.result_field, valid=summary.valid,
        latency_ms={k: v / 1e6 for k, v in summary.latency_ns.items()},
        early_stopping_ms={k: v / 1e6 for k, v in summary.early_stopping_ns.items()},
        performance_sample_count=summary.parameter("performance_sample_count"),
        min_duration_ms=summary.parameter("min_duration (ms)"), min_query_count=summary.parameter("min_query_count"),
        sut_name=summary.sut_name, accuracy=_accuracy(out, scenario_dir, benchmark),
        compliance=_compliance(submitter, system["_folder"], benchmark, scenario_dir), source=where,
    )


def _tiny_row(out: TreeImport, division: str, submitter: Path, system: dict[str, Any], bench_dir: Path) -> ReferenceRow | None:
    """An MLPerf Tiny result (``tiny``): SingleStream, headlined by the runner's median throughput."""
    where = _rel(out, bench_dir)
    found = tiny.throughput(bench_dir)
    if found is None:
        out.problems.append(Problem(where, "MLPerf Tiny result without 'Median throughput is … inf./sec.' in "
                                           "performance/ or energy/ results.txt or log.txt"))
        return None
    value, valid = found
    accuracy = tiny.accuracy(bench_dir, bench_dir.name)
    if accuracy is None:
        out.problems.append(Problem(where, "no Top-1 (or, for ad, AUC) line in accuracy/results.txt or log.txt; "
                                           "imported without accuracy", "partial"))
    fields = tiny.system_fields(system, system["_folder"])
    return ReferenceRow(
        suite="Tiny", version=out.version, division=division, submitter=submitter.name, system=system["_folder"],
        system_name=str(fields["system_name"]), system_type=str(system.get("system_type") or ""), status=fields["status"],
        accelerator=str(fields["accelerator_model_name"]), accelerators=_count(system),
        host_processor=str(fields["host_processor_model_name"]), framework=str(fields["framework"]),
        benchmark=bench_dir.name, scenario="SingleStream", metric="Median throughput", value=value, unit="inferences/s",
        result_field="Median throughput is … inf./sec.", valid=valid, accuracy=accuracy,
        energy_mj_per_inference=tiny.energy_mj(bench_dir), source=where,
    )
