"""A result's ``reproduce`` line, and ``edgeperf-agent bench --from result.json`` that runs it again.

A number nobody can re-run cannot be checked. So every result carries the ``edgeperf-agent bench``
command line that gives the same workload — the model as it was named (zoo reference or path),
scenario, mode, profile, the engine that ran, run-length overrides, the resolved thread count,
every runtime option, resolved shapes and each input's values — as an argv list and as a shell
line. ``--from`` reads that argv back and refuses, in one line, to run a model file (or an input
file) whose bytes are not the ones the result measured.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from agent import model_file
from agent.contract import RuntimeOptions
from agent.errors import SettingsError
from agent.scenarios.settings import RunSettings, for_profile

PROG = "edgeperf-agent"
# RunSettings field -> (bench flag, factor from the flag's unit to the field's)
_RUN_FLAGS = {"min_duration_ms": ("--min-duration", 1000), "max_duration_ms": ("--max-duration", 1000),
              "min_query_count": ("--min-queries", 1), "max_query_count": ("--max-queries", 1),
              "server_target_qps": ("--target-qps", 1), "server_target_latency_ms": ("--target-latency-ms", 1),
              "batch_size": ("--batch-size", 1)}


def _run_length(settings: RunSettings) -> list[str]:
    """The flags that turn the profile's settings into these: only the fields that differ."""
    base = for_profile(settings.profile, settings.scenario, settings.mode)
    out = []
    for name, (flag, factor) in _RUN_FLAGS.items():
        value = getattr(settings, name)
        if value != getattr(base, name):
            out += [flag, repr(value / factor) if factor != 1 else repr(value)]
    return out


def _options(runtime: str, options: RuntimeOptions) -> list[str]:
    out = ["--threads", str(options.threads)] if options.threads is not None else []
    for provider in options.providers:
        extra = ",".join(f"{k}={v}" for k, v in options.provider_options.get(provider, {}).items())
        out += ["--provider", f"{provider}:{extra}" if extra else provider]
    if runtime == "onnxruntime":
        out += ["--optimization", options.optimization_level]
    if runtime == "litert" and not options.xnnpack:
        out.append("--no-xnnpack")
    for lib in options.delegates:
        out += ["--delegate", lib]
    if runtime == "coreml":
        out += ["--compute-units", options.compute_units]
    return out


def _inputs(records: tuple[dict[str, Any], ...], shapes: dict[str, tuple[int, ...]]) -> list[str]:
    """``--shape`` for each overridden input and ``--input`` for each input the user fixed."""
    out = []
    for rec in records:
        if rec["name"] in shapes:
            out += ["--shape", f"{rec['name']}={'x'.join(map(str, rec['shape']))}"]
        if rec["source"] == "constant":
            value = rec["value"]
            out += ["--input", f"{rec['name']}={str(value).lower() if isinstance(value, bool) else value!r}"]
        elif rec["source"] == "range":
            out += ["--input", f"{rec['name']}={rec['low']!r}:{rec['high']!r}"]
        elif rec["source"] == "file":
            out += ["--input", f"{rec['name']}={rec['path']}"]
    return out


def argv(model: str, runtime: str, engine: str, dataset: str, warmup: int, settings: RunSettings,
         options: RuntimeOptions, inputs: tuple[dict[str, Any], ...], power: list[str],
         dataset_flags: Sequence[str] = (), groups: Path | None = None) -> list[str]:
    """``edgeperf-agent bench`` arguments that repeat this run (``power``: its energy flags, if any;
    ``dataset_flags``: ``--preprocess``/``--inputs-cache`` of a dataset by path; ``groups``: its
    ``--groups`` file)."""
    group_flags = ["--groups", str(groups)] if groups is not None else []
    return [model, "--scenario", settings.scenario.value, "--mode", settings.mode.value, "--profile", settings.profile,
            "--engine", engine, "--dataset", dataset, *dataset_flags, *group_flags, "--runtime", runtime,
            "--warmup", str(warmup),
            *_run_length(settings), *_options(runtime, options), *_inputs(inputs, options.shapes), *power]


def corruption_flags(pairs: Sequence[tuple[str, int]]) -> list[str]:
    """``--corruptions`` of a robustness run: its resolved plan as ``NAME:1,3,5`` entries, so a changed
    default (``all``) cannot change the replay; none for other runs."""
    if not pairs:
        return []
    grouped: dict[str, list[int]] = {}
    for name, severity in pairs:
        grouped.setdefault(name, []).append(severity)
    return ["--corruptions", " ".join(f"{name}:{','.join(map(str, levels))}" for name, levels in grouped.items())]


def block(args: list[str]) -> dict[str, Any]:
    """The result's ``reproduce``: the argv and the line to paste."""
    return {"argv": args, "command": shlex.join([PROG, "bench", *args])}


def recorded_argv(path: Path) -> list[str]:
    """The argv a result at ``path`` records, after checking the model and input files are the bytes it measured."""
    try:
        doc = json.loads(path.read_text())
        args, want = list(doc["reproduce"]["argv"]), doc["model"]["sha256"]
        inputs = (doc.get("dataset") or {}).get("inputs") or []
    except OSError as exc:
        raise SettingsError(f"cannot read --from {path}: {exc.strerror}") from None
    except (ValueError, KeyError, TypeError):
        raise SettingsError(f"--from {path} is not a result document with a reproduce line (results from edgeperf "
                            "before it carry none); give the model and flags instead") from None
    got = model_file.resolve(args[0]).sha256
    if got != want:
        raise SettingsError(f"--from {path}: model {args[0]} has sha256 {got[:12]}…, the result measured {want[:12]}…; "
                            "restore that file (or run the model without --from)")
    for rec in inputs:
        if rec.get("source") == "file":
            file = Path(rec["path"])
            digest = model_file.sha256_of(file) if file.is_file() else "missing"
            if digest != rec["sha256"]:
                raise SettingsError(f"--from {path}: input file {file} is {'missing' if digest == 'missing' else 'changed'} "
                                    f"(the result measured sha256 {rec['sha256'][:12]}…); restore it")
    _check_groups_file(path, args, doc)
    return args


def _check_groups_file(path: Path, args: list[str], doc: dict[str, Any]) -> None:
    """A ``--groups`` file must be the bytes the result's fairness was computed from (its ``source`` names them)."""
    if "--groups" not in args[:-1]:
        return
    file = Path(args[args.index("--groups") + 1])
    source = str((((doc.get("kpis") or {}).get("fairness")) or {}).get("source", ""))
    if not source.endswith(")") or "(sha256 " not in source:
        return
    want = source.rsplit("(sha256 ", 1)[1].rstrip(")")
    digest = model_file.sha256_of(file) if file.is_file() else "missing"
    if digest != want:
        raise SettingsError(f"--from {path}: groups file {file} is {'missing' if digest == 'missing' else 'changed'} "
                            f"(the result's fairness used sha256 {want[:12]}…); restore it")
