"""What ``edgeperf-agent zoo`` and the controller's ``edgeperf zoo`` print: one listing, from the manifest.

Both CLIs call ``render`` (or ``as_json`` for ``--json``), so the two never disagree about a model.
Per model: task, suite and MLPerf benchmark, licence, source and accuracy target; per file: precision,
runtime, size, accuracy, and whether it is committed, fetched into this machine's cache, or not fetched.
"""

from __future__ import annotations

from typing import Any

from agent import zoo
from agent.zoo import cache


def target_text(target: dict[str, Any] | None) -> str:
    """``top1 >= 0.7569 (99% of 0.76456)``: the accuracy a run must reach, as the manifest sets it."""
    if not target:
        return "-"
    metric, reference, fraction = target.get("metric", "?"), target.get("reference"), target.get("fraction", 1.0)
    if reference is None:
        return str(metric)
    if fraction == 1:
        return f"{metric} >= {reference:g}"
    return f"{metric} >= {reference * fraction:.4g} ({fraction:.0%} of {reference:g})"


def accuracy_text(entry: zoo.ZooEntry) -> str:
    """A committed file's reproducible top-1 band, or the accuracy its publisher reports."""
    band = zoo.top1_band(entry)
    if band:
        return f"top-1 {band[0]:.3f}–{band[1]:.3f}"
    published = entry.facts.get("published_accuracy")
    if published:
        value = published.get("value")
        return f"{published.get('metric', '?')} {f'{value:.4g}' if isinstance(value, float) else value} (published)"
    note = entry.facts.get("accuracy", {}).get("note", "")
    return "top-1 n/a (macOS only)" if "macOS" in note else "accuracy n/a"


def render() -> str:
    """The zoo as text: a header per model, then one aligned row per file."""
    rows = {e.name: (f"{zoo.PREFIX}{e.name}", e.facts.get("precision", "?"), e.facts.get("runtime", "?"),
                     zoo.size_text(e.size_bytes), e.state(), accuracy_text(e)) for e in zoo.entries()}
    widths = [max((len(row[i]) for row in rows.values()), default=0) for i in range(5)]
    out = []
    for model in zoo.models():
        out.append(f"{model.name} — {model.task or 'task not given'}\n")
        facts = [("suite", model.suite), ("benchmark", model.benchmark), ("licence", model.licence),
                 ("dataset", model.dataset), ("source", model.source)]
        out.append("  " + " · ".join(f"{k} {v}" for k, v in facts if v) + "\n" if any(v for _, v in facts) else "")
        out.append(f"  accuracy target: {target_text(model.accuracy_target)}\n" if model.accuracy_target else "")
        for file in model.facts["files"]:
            row = rows[f"{model.name}/{file}"]
            out.append("  " + "  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + f"  {row[5]}\n")
    out.append(f"fetched files live in {cache.cache_dir()} (${cache.CACHE_ENV}); fetch one with "
               f"`{zoo.fetch_command('MODEL')}`\n")
    return "".join(out)


def as_json() -> dict[str, Any]:
    """The zoo for scripts: every model's facts and every file's state and local path."""
    files: dict[str, list[dict[str, Any]]] = {}
    for entry in zoo.entries():
        state = entry.state()
        files.setdefault(entry.model.name, []).append({
            "name": zoo.PREFIX + entry.name, "file": entry.file, "precision": entry.facts.get("precision"),
            "runtime": entry.facts.get("runtime"), "size_bytes": entry.size_bytes, "sha256": entry.sha256,
            "url": entry.url, "state": state, "path": str(entry.path) if state in ("committed", "fetched") else None,
            "top1_band": zoo.top1_band(entry), "published_accuracy": entry.facts.get("published_accuracy"),
        })
    keys = ("task", "suite", "benchmark", "source", "licence", "dataset", "preprocess", "postprocess", "accuracy_target")
    return {
        "manifest": str(zoo.manifest_path()),
        "cache": str(cache.cache_dir()),
        "models": [{"name": m.name, **{k: getattr(m, k) for k in keys}, "files": files.get(m.name, [])} for m in zoo.models()],
    }
