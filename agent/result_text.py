"""A result document as a readable plain-text table for the agent's terminal.

Plain text on purpose: the agent stays free of terminal-UI libraries (the controller renders
with rich). The verdict is printed with its reasons next to the numbers, never apart from them.
"""

from __future__ import annotations

import math
from typing import Any


def _num(value: float | None, fmt: str = ".3f") -> str:
    return "–" if value is None else format(value, fmt)


def _rows(doc: dict[str, Any]) -> list[tuple[str, str]]:
    k, m, r, s = doc["kpis"], doc["model"], doc["runtime"], doc["settings"]["effective"]
    lat = k["latency_ms"]
    rows = [
        ("model", f"{m['name']}  [{m['format']}, {m['precision']}, {k['model_size_mb'] * 1024:.0f} KiB, "
                  f"{m.get('parameters') or '?'} params, sha256 {m['sha256'][:12]}]"),
        ("runtime", f"{r['name']} {r['version']}, {r['accelerator']}, threads {r['threads'] or 'default'}"),
        ("run", f"{doc['scenario']} {doc['mode']}, profile {doc['profile']}, engine {doc['engine']}, "
                f"dataset {doc['dataset']['name']} ({doc['dataset']['samples']} samples)"),
        ("verdict", "VALID" if doc["valid"] else "INVALID"),
    ]
    inputs = doc["dataset"].get("inputs", [])
    if given := _given_inputs(inputs):  # what --input fixed: it decides the branch timed
        rows.insert(3, ("inputs", given))
    rows[1:1] = _provenance_rows(m)  # under the model: how the file was made
    rows += [("  because", reason) for reason in doc["invalid_reasons"]]
    rows += [("  warning", line) for line in _random_settings(inputs)]
    if doc["logs"].get("engine_rule", "").startswith("auto: native, as"):  # LoadGen installed, but not run: why
        rows.append(("  engine", doc["logs"]["engine_rule"]))
    if lat:
        basis = "per query" if k.get("latency_basis") == "query" else "per sample"
        rows.append(("latency ms", f"min {_num(lat['min'])}  mean {_num(lat['mean'])}  p50 {_num(lat['p50'])}  "
                                   f"p90 {_num(lat['p90'])}  p99 {_num(lat['p99'])}  max {_num(lat['max'])}  ({basis})"))
    if k.get("early_stopping_latency_ms") is not None:
        pct = f"p{s['target_latency_percentile'] * 100:g}"
        rows.append(("early stop", f"{pct} estimate {_num(k['early_stopping_latency_ms'])} ms"))
    # Server: the load offered as scheduled (a Poisson draw around --target-qps), next to what completed
    offered = f", offered {k['offered_qps']:,.2f} queries/s" if k.get("offered_qps") is not None else ""
    rows.append(("throughput", f"{_num(k['throughput_sps'], ',.1f')} samples/s  ({k['query_count']} queries, "
                               f"{k['sample_count']} samples, {k['duration_s']:.2f} s{offered})"))
    rows += _server_rows(doc["settings"].get("server"))
    if (acc := k.get("accuracy")) is not None:
        lo, hi = acc["ci95"]
        rows.append(("accuracy", f"top-1 {acc['top1']:.4f} (95% CI {lo:.4f}–{hi:.4f}), macro F1 {acc['f1_macro']:.4f}, "
                                 f"n={acc['n']}"))
    if (task := k.get("task_accuracy")) is not None:
        interval = f"95% CI {task['ci95'][0]:.4f}–{task['ci95'][1]:.4f}" if task.get("ci95") else task.get("interval", "")
        rows.append(("accuracy", f"{task['metric']} {task['value']:.4f} ({interval}), n={task['n']}"))
    rows += _gap_rows(k.get("fairness"), "fairness", "group")
    rows += _gap_rows(k.get("class_balance"), "class balance (not fairness)", "class")
    rows += _robustness_rows(k.get("robustness"), k.get("accuracy"))
    rows += _energy_rows(k.get("energy"))
    rows += _thermal_rows(k.get("thermals"))
    rows.append(("resources", f"load {k['load_time_ms']:.1f} ms, first inference {k['first_inference_ms']:.2f} ms, "
                              f"peak RSS {k['memory']['peak_rss_mb']:.1f} MB, CPU {k['cpu']['process_pct']:.0f}% of a core"))
    if doc["logs"].get("dir"):
        rows.append(("logs", doc["logs"]["dir"]))
    # LoadGen's own warnings, word for word: its summary only counts them
    rows += [("  warning", f"LoadGen: {w}") for w in doc["logs"].get("warnings", [])]
    facts = doc["device"]["facts"]
    device = ", ".join(str(facts[key]) for key in ("board", "cpu_model", "os_release", "kernel") if key in facts)
    rows.append(("device", f"{doc['device']['id']}: {device}"))
    if doc.get("reproduce"):
        rows.append(("reproduce", doc["reproduce"]["command"]))
    return rows


def _provenance_rows(model: dict[str, Any]) -> list[tuple[str, str]]:
    """How ``edgeperf quantize`` made the file, from the record in its own metadata, and the warning
    when the file carries a record that breaks the contract."""
    rows = []
    if p := model.get("provenance"):
        n = len(p["float_operators"])
        floats = f"{n} operator{'' if n == 1 else 's'} left in float" if n else "no operator left in float"
        if a := p.get("accuracy"):
            lo, hi = a["ci95_pp"]
            accuracy = (f"top-1 {a['variant_top1']:.4f} vs {a['source_top1']:.4f} on {a['dataset']} ({a['n']} samples): "
                        f"{_pp(a['delta_pp'])} pp [{_pp(lo)}, {_pp(hi)}] paired")
        else:
            accuracy = p.get("accuracy_note") or "accuracy not measured"
        rows.append(("quantised", f"from {p['source_name']} (sha256 {p['source_sha256'][:12]}) by {p['method']}; "
                                  f"{accuracy}; {floats}"))
    if warning := model.get("provenance_warning"):
        rows.append(("  warning", warning))
    return rows


def _gap_rows(block: dict[str, Any] | None, label: str, member: str) -> list[tuple[str, str]]:
    """One line for ``kpis.fairness`` or ``kpis.class_balance``: the largest gap, its interval, best and worst."""
    if not block:
        return []
    by_name = {g["name"]: g for g in block["groups"]}
    what = "accuracy per group" if member == "group" else "recall per class"
    count = f"{len(block['groups'])} {member}{'' if len(block['groups']) == 1 else 'es' if member == 'class' else 's'}"
    if block.get("gap") is None:
        only = block["groups"][0]
        text = f"{what}: one {member} ({only['name']} {only['rate']:.4f}, n={only['n']}), no gap"
    else:
        lo, hi = block["gap_ci95"]
        best, worst = by_name[block["best"]], by_name[block["worst"]]
        text = (f"{what}: largest gap {block['gap']:.4f} (95% CI {lo:.4f}–{hi:.4f}), best {member} {best['name']} "
                f"{best['rate']:.4f} (n={best['n']}), worst {member} {worst['name']} {worst['rate']:.4f} (n={worst['n']}); "
                f"{count}")
    if block.get("ungrouped"):
        text += f", {block['ungrouped']} samples without a group left out"
    return [(label, text)]


def _robustness_rows(block: dict[str, Any] | None, clean: dict[str, Any] | None) -> list[tuple[str, str]]:
    """``kpis.robustness`` in two lines: clean and mean corruption accuracy with the mean drop, and the worst variant."""
    if not block or not block.get("scores"):
        return []
    lo, hi = block["mean_drop_ci95_pp"]
    clean_text = f"clean top-1 {clean['top1']:.4f}, " if clean else ""
    n = len(block["scores"])
    worst = max(block["scores"], key=lambda s: s["drop_pp"])
    w_lo, w_hi = worst["drop_ci95_pp"]
    return [("robustness", f"{clean_text}mean under {n} {block['family']} corruption{'' if n == 1 else 's'} "
                           f"{block['mean_top1']:.4f}; mean drop {_pp(block['mean_drop_pp'])} pp "
                           f"[{_pp(lo)}, {_pp(hi)}]"),
            ("  worst", f"{worst['corruption']} severity {worst['severity']}: top-1 {worst['accuracy']['top1']:.4f}, "
                        f"drop {_pp(worst['drop_pp'])} pp [{_pp(w_lo)}, {_pp(w_hi)}] paired")]


def _pp(value: float) -> str:
    """Percentage points with their sign, a true minus: −0.4, +0.1, 0.0."""
    text = f"{value:+.1f}"
    return "0.0" if text in ("+0.0", "-0.0") else text.replace("-", "−")


def _given_inputs(inputs: list[dict[str, Any]]) -> str:
    """``sr=16000, x=-1:1, ids=ids.npy``: the inputs a run was given values for."""
    shown = {"constant": lambda i: f"{i['value']}", "range": lambda i: f"{i['low']:g}:{i['high']:g}",
             "file": lambda i: f"{i['path']} (sha256 {i['sha256'][:12]})"}
    return ", ".join(f"{i['name']}={shown[i['source']](i)}" for i in inputs if i["source"] in shown)


def _random_settings(inputs: list[dict[str, Any]]) -> list[str]:
    """An integer input of one value filled at random is often a setting (a sample rate, a length, a
    mode) that picks the graph's branch: a run may then time a branch nobody uses, without failing."""
    return [f"input {i['name']!r} is one {i['dtype']} value, drawn at random from {i['low']:g}..{i['high']:g}; "
            f"if it is a setting (a sample rate, a length), give it with --input {i['name']}=VALUE"
            for i in inputs
            if i["source"] == "synthetic" and i["dtype"].startswith(("int", "uint")) and math.prod(i["shape"]) == 1]


def _server_rows(server: dict[str, Any] | None) -> list[tuple[str, str]]:
    """How a Server run's bound and rate were set: the run's numbers mean little without them."""
    if not server:
        return []
    trials = [t for t in server["trials"] if not t["final"]]
    return [("server", f"bound {server['latency_bound_ms']:g} ms ({server['latency_bound_rule']}); "
                       f"rate {server['target_qps']:g} queries/s ({server['target_qps_rule']})"),
            *(("  trial", f"{t['target_qps']:g} queries/s: p99 {_num(t['p99_ms'])} ms, {t['over_latency']} of "
                          f"{t['queries']} over the bound, {'passed' if t['valid'] else t['reason']}") for t in trials)]


def _energy_rows(e: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not e:
        return []
    how = f"{e['source']} {e['rail']}, {'measured' if e['measured'] else 'ESTIMATED'}"
    if e.get("energy_j") is None:
        rows = [("energy", f"not reported [{how}]")]
    else:
        idle = f", idle {e['idle_power_w']:.3f} W" if e.get("idle_power_w") is not None else ""
        above = e.get("energy_per_inference_above_idle_mj")
        mlperf = e["mlperf"]
        unit = (f"{mlperf['mj_per_query']:.4g} mJ/query" if mlperf["metric"] == "mJ/query"
                else f"{mlperf['avg_power_w']:.3f} W, {mlperf['samples_per_joule']:,.0f} samples/J")
        rows = [("energy", f"{e['energy_per_inference_mj']:.4g} mJ/inference"
                           + (f" ({above:.4g} above idle)" if above is not None else "")
                           + f", {e['inferences_per_joule']:,.0f} inf/J, avg {e['avg_power_w']:.3f} W{idle}; MLPerf {unit}"),
                ("  source", f"{how}, {e['window_samples']} samples at {e['sample_rate_hz']:.3g} Hz, "
                             f"{e['gco2e_per_1000_inferences']:.3g} gCO2e per 1000 inferences")]
    return rows + [("  warning", w) for w in e.get("warnings", [])]


def _thermal_rows(t: dict[str, Any] | None) -> list[tuple[str, str]]:
    if not t or t.get("max_before_c") is None:
        return []
    text = f"hottest sensor {t['max_before_c']:.1f} -> {t['max_after_c']:.1f} °C"
    if t.get("cooldown"):
        text += f", cooled down {t['cooldown']['waited_s']:.0f} s first"
    rows = [("thermals", text + (", THROTTLED" if t["throttled"] else ", no throttling seen"))]
    return rows + [("  throttle", reason) for reason in t["throttle_reasons"]]


def table(rows: list[tuple[str, Any]]) -> str:
    """Aligned ``label  value`` lines."""
    width = max((len(label) for label, _ in rows), default=0)
    return "".join(f"{label:<{width}}  {value}\n" for label, value in rows)


def render(doc: dict[str, Any]) -> str:
    """The table for one result."""
    return table(_rows(doc))
