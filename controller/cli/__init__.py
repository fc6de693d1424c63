"""``edgeperf``: the controller CLI. Thin typer commands over the controller library.

Exit codes: 0 something was measured and nothing failed; 1 something failed or nothing was
measured (a failed job, a regression, a row not comparable, nothing to rank), or a bug; 2 a usage
or input error (bad flag, bad YAML, unknown campaign), 3 broker or device unreachable, 4 an
INVALID run with ``--strict``, 130 interrupted. Errors are one line on stderr; every listing
command takes ``--json`` for scripts.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import time
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.live import Live
from rich.markup import escape
from rich.table import Table

from agent.contract import DEFAULT_PREFIX, Result
from agent.errors import EdgeperfError
from agent.zoo import listing as zoo_listing
from controller.analysis import robustness, scorecard
from controller.cli import certs as certs_cli
from controller.cli import fleet as fleet_cli
from controller.cli import progress
from controller.cli import quantize as quantize_cli
from controller.cli.common import (
    KINDS,
    ArtifactHost,
    ArtifactPort,
    ArtifactUrlHost,
    AsJson,
    Broker,
    CaFile,
    CertFile,
    Db,
    FleetKey,
    KeyFile,
    Kind,
    MqttVersion,
    Prefix,
    Username,
    check_output,
    check_seconds,
    cli_errors,
    console,
    err_console,
    write_output,
)
from controller.fleet import campaign as campaign_file
from controller.fleet import session
from controller.reports import render, robustness_view, scaling_view, tables, views
from controller.store.database import Store

if TYPE_CHECKING:
    from controller.analysis.compare import Comparison
    from controller.reports.reference_rows import ReferenceChoice, ReferenceSection

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmark edge AI fleets under MLPerf LoadGen rules.")
campaign_app = typer.Typer(no_args_is_help=True, help="Run, follow, resume and cancel campaigns.")
app.add_typer(campaign_app, name="campaign")
baseline_app = typer.Typer(no_args_is_help=True, help="The datacenter baseline: a campaign's models on this host's GPUs.")
app.add_typer(baseline_app, name="baseline")
export_app = typer.Typer(no_args_is_help=True, help="Export a campaign to MLflow or an MLPerf-style folder.")
app.add_typer(export_app, name="export")
reference_app = typer.Typer(no_args_is_help=True, help="Published MLPerf results as reference rows beside your devices.")
app.add_typer(reference_app, name="reference")
ReferenceOpt = Annotated[str | None, typer.Option(
    "--reference", help="show published MLPerf rows of this benchmark (e.g. resnet50) beside each row, or 'auto': "
                        "the benchmark each model's zoo entry names (docs/reference.md)")]
ReferenceSystem = Annotated[str | None, typer.Option(
    "--reference-system", help="only published systems whose name or submitter contains this text")]


def _open_store(db: Path | None, create: bool = False) -> Store:
    """The database --db names, or the default one; only commands that store results create it."""
    return Store(session.FleetOptions(db=db).db_path, create=create)


def _options(
    broker: str,
    db: Path | None,
    username: str | None = None,
    ca_file: Path | None = None,
    cert_file: Path | None = None,
    key_file: Path | None = None,
    mqtt_version: str = "3.1.1",
    fleet_key: Path | None = None,
    prefix: str = DEFAULT_PREFIX,
    **artifacts: Any,
) -> session.FleetOptions:
    return session.FleetOptions(
        broker=broker,
        db=db,
        username=username,
        ca_file=ca_file,
        cert_file=cert_file,
        key_file=key_file,
        mqtt_version=mqtt_version,
        fleet_key_file=fleet_key,
        prefix=prefix,
        **artifacts,
    )


def _emit(text: str, out: Path | None) -> None:
    """A report's text to ``out`` (saying where), or to stdout."""
    if out:
        write_output(out, text)
        console.print(f"written: {out}")
    else:
        sys.stdout.write(text)


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


broker_app = typer.Typer(invoke_without_command=True, help="Run an embedded broker, or write a hardened mosquitto config.")
app.add_typer(broker_app, name="broker")
broker_app.command("config")(certs_cli.broker_config)
app.add_typer(certs_cli.app, name="certs")
app.add_typer(fleet_cli.app, name="fleet")


@broker_app.callback()
@cli_errors
def broker(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="address to listen on")] = "0.0.0.0",
    port: Annotated[int, typer.Option(help="TCP port")] = 1883,
) -> None:
    """Run an embedded MQTT broker (amqtt) until Ctrl-C, for a lab without one.

    For a fleet left on a network, run mosquitto with 'edgeperf broker config' instead.
    """
    if ctx.invoked_subcommand is not None:
        return
    from controller.fleet.broker import EmbeddedBroker

    with EmbeddedBroker(host, port) as running:
        console.print(f"edgeperf broker listening on {running.url} (MQTT 3.1.1); Ctrl-C stops it")
        while True:
            time.sleep(3600)


@app.command()
@cli_errors
def devices(
    broker: Broker = "mqtt://localhost:1883",
    db: Db = None,
    as_json: AsJson = False,
    wait: Annotated[float, typer.Option(help="seconds to listen for retained status")] = 2.0,
    username: Username = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    mqtt_version: MqttVersion = "3.1.1",
    fleet_key: FleetKey = None,
    prefix: Prefix = DEFAULT_PREFIX,
) -> None:
    """Who is online, what they run, and their facts (a device not heard live shows as stale)."""
    check_seconds(wait, "--wait")
    check_output(db, "--db", "controller.db")
    with session.fleet(_options(broker, db, username, ca_file, cert_file, key_file, mqtt_version, fleet_key, prefix)) as fleet:
        fleet.discover(wait)
        rows = fleet.device_rows()
    if fleet.counters.dropped:
        err_console.print(f"note: ignored {fleet.counters.dropped} message(s) that break the contract (docs/protocol.md); "
                          "the warnings above name each device and reason", highlight=False)
    if as_json:
        _print_json(rows)
        return
    console.print(tables.devices(rows))


@campaign_app.command("run")
@cli_errors
def campaign_run(
    file: Annotated[Path, typer.Argument(help="campaign YAML")],
    broker: Broker = "mqtt://localhost:1883",
    db: Db = None,
    as_json: AsJson = False,
    username: Username = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    mqtt_version: MqttVersion = "3.1.1",
    artifact_host: ArtifactHost = "0.0.0.0",
    artifact_port: ArtifactPort = 0,
    artifact_advertise: ArtifactUrlHost = None,
    discover: Annotated[float, typer.Option(help="seconds to hear devices before planning")] = 2.0,
    fleet_key: FleetKey = None,
    prefix: Prefix = DEFAULT_PREFIX,
) -> None:
    """Validate a campaign, run it across the fleet with live progress, and print its scorecard."""
    check_seconds(discover, "--discover")
    check_output(db, "--db", "controller.db")
    spec = campaign_file.load(file)
    options = _options(
        broker,
        db,
        username,
        ca_file,
        cert_file,
        key_file,
        mqtt_version,
        fleet_key,
        prefix,
        artifact_host=artifact_host,
        artifact_port=artifact_port,
        artifact_advertise=artifact_advertise,
    )
    notice = session.plaintext_notice(options)
    if notice:
        err_console.print(notice, highlight=False)
    with session.fleet(options, artifacts=True, owner=True) as fleet:
        fleet.discover(discover)
        campaign_id = fleet.create_campaign(spec)
        _follow(fleet, campaign_id, as_json)
    with Store(options.db_path) as store:
        _report(store, campaign_id, as_json)


@campaign_app.command("resume")
@cli_errors
def campaign_resume(
    ref: Annotated[str, typer.Argument(help="campaign id, name or 'latest'")],
    broker: Broker = "mqtt://localhost:1883",
    db: Db = None,
    as_json: AsJson = False,
    username: Username = None,
    ca_file: CaFile = None,
    cert_file: CertFile = None,
    key_file: KeyFile = None,
    mqtt_version: MqttVersion = "3.1.1",
    artifact_host: ArtifactHost = "0.0.0.0",
    artifact_port: ArtifactPort = 0,
    artifact_advertise: ArtifactUrlHost = None,
    fleet_key: FleetKey = None,
    prefix: Prefix = DEFAULT_PREFIX,
) -> None:
    """Finish a campaign after the controller stopped or crashed; nothing runs or is stored twice."""
    options = _options(
        broker,
        db,
        username,
        ca_file,
        cert_file,
        key_file,
        mqtt_version,
        fleet_key,
        prefix,
        artifact_host=artifact_host,
        artifact_port=artifact_port,
        artifact_advertise=artifact_advertise,
    )
    with _open_store(db) as store:  # resuming needs the database the campaign is in: a mistyped --db is not created
        found = store.campaign(ref)
        if found.get("kind") == "baseline":
            _resume_baseline(store, found["id"], as_json)
            return
    with session.fleet(options, artifacts=True, owner=True) as fleet:
        campaign_id = fleet.store.campaign(ref)["id"]
        fleet.discover(2.0)
        fleet.resume(campaign_id)
        _follow(fleet, campaign_id, as_json)
    with Store(options.db_path) as store:
        _report(store, campaign_id, as_json)


def _follow(fleet: Any, campaign_id: str, quiet: bool) -> None:
    if quiet or not console.is_terminal:
        fleet.run(campaign_id)
        return
    with Live(progress.view(fleet, campaign_id), console=console, refresh_per_second=4) as live:
        fleet.run(campaign_id, on_tick=lambda f, c: live.update(progress.view(f, c)))


def _resume_baseline(store: Store, ref: str, as_json: bool) -> None:
    from controller import baseline

    _report(store, baseline.resume_baseline(store, ref, progress=err_console.print), as_json)


def _report(store: Store, campaign_id: str, as_json: bool) -> None:
    """The campaign's job summary (JSON) or its scorecard, then its failures on stderr, as it ended.

    Exit 0 means something was measured and nothing failed, so a script or CI job can trust it: a
    campaign ``finished_with_failures`` or without a single result stored exits 1. A cancelled one that
    stored results exits 0 (the cancel was asked for; what it measured is kept)."""
    summary = _status(store, campaign_id)
    if as_json:
        _print_json(summary)
    else:
        rows = scorecard.build(store.results(campaign_id))
        console.print(render.rich_table(views.scorecard(rows, f"campaign {campaign_id} ({summary['state']})")))
    _print_failures(summary)
    if summary["results"] == 0:
        why = "was cancelled before any result was stored" if summary["state"] == "cancelled" else "stored no result"
        err_console.print(f"[red]nothing measured[/]: campaign {escape(summary['name'])} ({campaign_id}) {why}",
                          highlight=False, soft_wrap=True)
    if summary["results"] == 0 or summary["state"] == "finished_with_failures":
        raise typer.Exit(1)


def _status(store: Store, ref: str) -> dict[str, Any]:
    campaign = store.campaign(ref)
    jobs = store.jobs(campaign["id"])
    per_device: dict[str, Counter] = {}
    for job in jobs:
        per_device.setdefault(job.device_id, Counter())[job.state] += 1
    return {
        "id": campaign["id"],
        "name": campaign["name"],
        "state": campaign["state"],
        "source": campaign["source"],
        "created_at": campaign["created_at"],
        "finished_at": campaign["finished_at"],
        "jobs": dict(Counter(j.state for j in jobs)),
        "devices": {d: dict(c) for d, c in per_device.items()},
        "results": store.result_count(campaign["id"]),
        "failed": [
            {"key": j.key, "device": j.device_id, "attempts": j.attempts, "error": j.error} for j in jobs if j.state == "failed"
        ],
        "not_measured": [{"key": j.key, "device": j.device_id, "reason": j.error} for j in jobs if j.state == "not_measured"],
        "requeued": [{"key": j.key, "attempts": store.attempts(j.id)} for j in jobs if j.attempts > 1],
    }


def _print_failures(summary: dict[str, Any]) -> None:
    """One stderr line per failed job (its key, device, attempts and the last attempt's reason), then one per job
    its device cannot measure (a phone's accuracy runs), which is no failure but no number either."""
    for skipped in summary["not_measured"]:
        err_console.print(f"[yellow]not measured[/] {escape(skipped['key'])}: {escape(skipped['reason'] or '')}",
                          highlight=False, soft_wrap=True)
    for failure in summary["failed"]:
        err_console.print(
            f"[red]failed[/] {escape(failure['key'])} on {escape(failure['device'])} after {failure['attempts']} attempt(s): "
            f"{escape(failure['error'] or '')}", highlight=False, soft_wrap=True,
        )


@campaign_app.command("status")
@cli_errors
def campaign_status(
    ref: Annotated[str, typer.Argument(help="campaign id, name or 'latest'")] = "latest", db: Db = None, as_json: AsJson = False
) -> None:
    """Where a campaign stands: jobs by state and device, failures with their reasons."""
    with _open_store(db) as store:
        summary = _status(store, ref)
    if as_json:
        _print_json(summary)
        return
    table = Table(title=f"campaign {summary['name']} ({summary['id']}): {summary['state']}")
    states = ("pending", "sent", "running", "done", "failed", "cancelled", "not_measured")
    for name in ("device", *states):
        table.add_column(name.replace("_", " "), justify="left" if name == "device" else "right")
    for device, counts in summary["devices"].items():
        table.add_row(device, *(str(counts.get(s, 0)) for s in states))
    console.print(table)
    console.print(f"results stored: {summary['results']}")
    _print_failures(summary)


@campaign_app.command("cancel")
@cli_errors
def campaign_cancel(
    ref: Annotated[str, typer.Argument(help="campaign id, name or 'latest'")],
    db: Db = None,
    broker: Annotated[str | None, typer.Option(help="also tell devices directly (when no 'campaign run' is live)")] = None,
    fleet_key: FleetKey = None,
    prefix: Prefix = DEFAULT_PREFIX,
) -> None:
    """Cancel a campaign: pending jobs are dropped, running ones stopped on their devices."""
    options = session.FleetOptions(db=db, broker=broker or "mqtt://localhost:1883", fleet_key_file=fleet_key, prefix=prefix)
    with Store(options.db_path) as store:
        campaign_id = store.campaign(ref)["id"]
        store.request_cancel(campaign_id)
    if broker:
        with session.fleet(options) as fleet:
            fleet.cancel(campaign_id)
            fleet.pump(wait_s=0.5)
    console.print(f"campaign {campaign_id}: cancel requested")


@campaign_app.command("list")
@cli_errors
def campaign_list(db: Db = None, as_json: AsJson = False) -> None:
    """Every campaign in the database, oldest first."""
    with _open_store(db) as store:
        rows = store.campaigns()
    if as_json:
        _print_json(rows)
        return
    table = Table(title="campaigns")
    for name in ("id", "name", "state", "created"):
        table.add_column(name)
    for row in rows:
        table.add_row(row["id"], row["name"], row["state"], time.strftime("%Y-%m-%d %H:%M", time.localtime(row["created_at"])))
    console.print(table)


@app.command()
@cli_errors
def results(
    ref: Annotated[str, typer.Argument(help="campaign id, name or 'latest'")] = "latest",
    db: Db = None,
    fmt: Annotated[str, typer.Option("--format", help="table | json | csv")] = "table",
    kind: Kind = "fleet",
) -> None:
    """A campaign's results: one per job, as a table, JSON documents or CSV rows."""
    if fmt not in ("table", "json", "csv"):
        raise typer.BadParameter(f"unknown format {fmt!r}; use table, json or csv", param_hint="--format")
    if fmt == "json":  # every document whole, as stored (fields this version does not read included)
        with _open_store(db) as store:
            _print_json(store.documents(store.campaign(ref, _checked_kind(kind))["id"]))
        return
    campaign, results = _campaign_results(db, ref, kind)
    if fmt == "csv":
        out = io.StringIO()
        writer = csv.DictWriter(out, fieldnames=list(tables.FLAT_COLUMNS))
        writer.writeheader()
        writer.writerows(tables.flat_row(result) for result in results)
        sys.stdout.write(out.getvalue())
    else:
        rows = scorecard.build(results)
        console.print(render.rich_table(views.scorecard(rows, f"campaign {campaign['name']} ({campaign['id']})")))


def _warn_if_one_campaign(a: dict[str, Any], b: dict[str, Any], consequence: str) -> bool:
    """A comparison of a campaign with itself is almost always a mistaken reference: say so on stderr."""
    if a["id"] != b["id"]:
        return False
    err_console.print(f"[yellow]warning[/]: both sides are campaign {a['name']} ({a['id']}): {consequence}", highlight=False)
    return True


def _checked_kind(kind: str) -> str:
    if kind not in KINDS:
        raise typer.BadParameter(f"unknown kind {kind!r}; use {' or '.join(KINDS)}", param_hint="--kind")
    return kind


def _campaign_results(db: Path | None, ref: str, kind: str = "fleet") -> tuple[dict[str, Any], list[Result]]:
    """The campaign ``ref`` names (``latest``: the newest of ``kind``) and its results, typed."""
    with _open_store(db) as store:
        campaign = store.campaign(ref, _checked_kind(kind))
        return campaign, store.results(campaign["id"])


@app.command("scorecard")
@cli_errors
def scorecard_cmd(
    ref: Annotated[str, typer.Argument(help="campaign id, name or 'latest'")] = "latest",
    db: Db = None,
    as_json: AsJson = False,
    fleet: Annotated[bool, typer.Option("--fleet", help="rows per device class, percentiles from merged histograms")] = False,
    rank: Annotated[str | None, typer.Option(help="rank rows by one KPI key, e.g. latency_ms.p90")] = None,
    score: Annotated[Path | None, typer.Option(help="rank by a weighted score: YAML with a 'score:' map of KPI: weight")] = None,
    kind: Kind = "fleet",
    reference: ReferenceOpt = None,
    reference_system: ReferenceSystem = None,
    per_class: Annotated[bool, typer.Option("--per-class", help="accuracy rows: precision, recall and F1 per class "
                                            "with 95 % intervals, after the scorecard (--json always has them)")] = False,
    robust: Annotated[bool, typer.Option("--robustness", help="robustness runs: top-1 per corruption and severity, the "
                                         "drop from clean and each variant against fp32, with paired intervals")] = False,
    scaling: Annotated[bool, typer.Option("--scaling", help="a sweep's speed-up and parallel efficiency against threads, "
                                          "batch size and devices at once, with 95 % intervals")] = False,
) -> None:
    """Per-device KPI table with 95 % intervals; fleet rows per device class; rankings within a scenario and mode."""
    campaign, results = _campaign_results(db, ref, kind)
    rows = scorecard.build(results, fleet=fleet)
    curves = robustness.curves(rows) if robust else []
    if robust and not curves:
        raise EdgeperfError(f"--robustness: campaign {campaign['name']} has no robustness runs with per-sample results; "
                            "run it with modes: [robustness] (or edgeperf-agent bench --mode robustness)")
    scaled = scaling_view.groups(results) if scaling else []
    if scaling and not scaled:
        raise EdgeperfError(f"--scaling: campaign {campaign['name']} has no sweep points (two or more values of threads, "
                            "batch size or devices at once); add a sweep: to the campaign file (docs/campaigns.md)")
    published = _reference_section(db, reference, reference_system, rows)
    ranked = None
    if rank or score:
        weights = ranking_weights(score) if score else None
        try:
            ranked = scorecard.rank(rows, kpi=None if weights else rank, weights=weights)
        except KeyError as exc:
            raise typer.BadParameter(f"unknown KPI {exc.args[0]!r}; see docs/kpis.md", param_hint="--rank/--score") from None
    by = rank or f"score in {score}"
    if as_json:
        _print_json({"campaign": campaign["id"], "rows": [r.to_dict() for r in rows],
                     "ranking": None if ranked is None else ranked.to_dict(by)}
                    | ({} if published is None else {"reference": published.to_dict()})
                    | ({"robustness": [c.to_dict() for c in curves]} if robust else {})
                    | ({"scaling": scaling_view.to_dicts(scaled)} if scaling else {}))
    else:
        title = f"{'fleet ' if fleet else ''}scorecard: {campaign['name']} ({campaign['id']})"
        console.print(render.rich_table(views.scorecard(rows, title)))
        for (scenario, mode), group in (ranked.groups.items() if ranked else ()):
            console.print(render.rich_table(views.ranking(group, f"{by} — {scenario} {mode}")))
        for row, missing in (ranked.unscored if ranked else ()):
            err_console.print(f"not ranked: {row.label} has no {', '.join(missing)}", highlight=False)
        _print_reference(published)
        if per_class and (classes := views.per_class(rows)).rows:
            console.print(render.rich_table(classes))
        elif per_class:
            err_console.print("--per-class: no accuracy row carries class counts or a confusion matrix", highlight=False)
        for view in robustness_view.tables(curves):
            console.print(render.rich_table(view))
        for view in scaling_view.views(scaled):
            console.print(render.rich_table(view))
    if ranked is not None and not ranked.groups:
        err_console.print(f"[red]nothing ranked[/]: no row has {', '.join(ranked.wanted)}", highlight=False)
        raise typer.Exit(1)


def ranking_weights(path: Path) -> dict[str, float]:
    """``score:`` weights from a YAML file, each KPI checked against the dictionary."""
    import yaml

    from agent.kpi import BY_KEY

    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise typer.BadParameter(f"{path}: {exc}", param_hint="--score") from None
    weights = (data or {}).get("score") if isinstance(data, dict) else None
    if not isinstance(weights, dict) or not weights:
        raise typer.BadParameter(f"{path}: needs a 'score:' mapping of KPI: weight", param_hint="--score")
    for key, weight in weights.items():
        if key not in BY_KEY and key != scorecard.DELTA_KPI:
            raise typer.BadParameter(f"{path}: score.{key}: unknown KPI; see docs/kpis.md", param_hint="--score")
        if not isinstance(weight, (int, float)) or weight < 0:
            raise typer.BadParameter(f"{path}: score.{key}: weight must be a number >= 0", param_hint="--score")
    return {k: float(v) for k, v in weights.items()}


@baseline_app.command("run")
@cli_errors
def baseline_run(
    file: Annotated[Path, typer.Argument(help="the campaign YAML the edge fleet ran")],
    provider: Annotated[list[str] | None, typer.Option(help="ORT execution provider, repeat in priority order "
                                                             "(default: TensorRT, CUDA where available, else CPU)")] = None,
    power: Annotated[str, typer.Option(help="auto | none | a --power spec (auto: NVML on a GPU host)")] = "auto",
    map_: Annotated[list[str] | None, typer.Option("--map", help="NAME=model.onnx: the ONNX file to run for a "
                                                                 "TFLite/Core ML variant")] = None,
    idle_seconds: Annotated[float, typer.Option(help="idle power baseline before each energy run")] = 2.0,
    trt_cache: Annotated[Path | None, typer.Option(help="TensorRT engine cache directory")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would run where, run nothing")] = False,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Run a campaign's models in process on this host's GPUs (ORT TensorRT/CUDA) as the baseline."""
    from controller import baseline

    check_seconds(idle_seconds, "--idle-seconds")  # a job's power_idle_s has the same bound
    check_output(db, "--db", "controller.db")
    spec = campaign_file.load(file)
    args = {"providers": provider or None, "power": None if power == "none" else power,
            "mapping": baseline.parse_mapping(map_ or []), "idle_s": idle_seconds, "trt_cache_dir": trt_cache}
    if dry_run:
        plan = baseline.plan_baseline(spec, **args)
        baseline.announce(plan, plan.name, len(plan.jobs), console.print)
        return
    with _open_store(db, create=True) as store:
        _report(store, baseline.run_baseline(spec, store, progress=err_console.print, **args), as_json)


@baseline_app.command("resume")
@cli_errors
def baseline_resume(ref: Annotated[str, typer.Argument(help="baseline campaign id or name")], db: Db = None,
                    as_json: AsJson = False) -> None:
    """Finish an interrupted baseline on the host it started on."""
    with _open_store(db) as store:
        _resume_baseline(store, ref, as_json)


@app.command("compare")
@cli_errors
def compare_cmd(
    ref: Annotated[str, typer.Argument(help="the edge campaign (id, name or 'latest': the newest fleet campaign)")],
    baseline_ref: Annotated[str | None, typer.Option("--baseline", help="the baseline campaign (id, name or 'latest')")] = None,
    fmt: Annotated[str, typer.Option("--format", help="table | md | html | json")] = "table",
    out: Annotated[Path | None, typer.Option("-o", "--output", help="write here instead of the terminal")] = None,
    db: Db = None,
    reference: ReferenceOpt = None,
    reference_system: ReferenceSystem = None,
) -> None:
    """Edge devices next to the datacenter baseline (--baseline) and/or published MLPerf results (--reference)."""
    from controller.analysis import compare

    if fmt not in ("table", "md", "html", "json"):
        raise typer.BadParameter(f"unknown format {fmt!r}; use table, md, html or json", param_hint="--format")
    if baseline_ref is None and reference is None:
        raise EdgeperfError("compare with what? give --baseline CAMPAIGN, --reference BENCHMARK|auto, or both")
    check_output(out)
    campaign, results = _campaign_results(db, ref, "fleet")
    if baseline_ref is None:
        _compare_reference(db, campaign, results, reference, reference_system, fmt, out)
        return
    base_campaign, base_results = _campaign_results(db, baseline_ref, "baseline")
    itself = _warn_if_one_campaign(campaign, base_campaign, "every ratio is 1×; name the edge campaign and the baseline "
                                                            "(--baseline latest is the newest baseline)")
    if not itself and base_campaign.get("kind") != "baseline":
        err_console.print(f"[yellow]warning[/]: --baseline {baseline_ref} is a {base_campaign.get('kind')} campaign, "
                          "not a datacenter baseline", highlight=False)
    comps = compare.compare(scorecard.build(results), scorecard.build(base_results))
    view = views.comparison(comps, f"{campaign['name']} vs baseline {base_campaign['name']} ({base_campaign['id']})")
    if reference is not None:
        _compare_reference(db, campaign, results, reference, reference_system, fmt, out, view, comps)
        return
    if fmt == "table" and out is None:
        console.print(render.rich_table(view))
        return
    text = {"md": render.markdown, "table": render.markdown, "html": render.html_page,
            "json": lambda v: json.dumps([c.to_dict() for c in comps], indent=2, default=str) + "\n"}[fmt](view)
    _emit(text, out)


def _reference_choice(db: Path | None, benchmark: str, system: str | None) -> ReferenceChoice:
    """The stored published rows ``--reference`` and ``--reference-system`` ask for (refused at once when none fit)."""
    from controller import reference as published
    from controller.reports import reference_rows

    with _open_store(db) as store:
        return reference_rows.choice(published.stored(store), benchmark, system)


def _reference_section(db: Path | None, benchmark: str | None, system: str | None,
                       rows: list[scorecard.Row]) -> ReferenceSection | None:
    """Published rows beside ``rows`` (None without ``--reference``)."""
    from controller.reports import reference_rows

    if benchmark is None:
        return None
    return reference_rows.section(_reference_choice(db, benchmark, system), rows)


def _print_reference(section: ReferenceSection | None) -> None:
    """The published rows' table, then one stderr line per local row left without one."""
    if section is None:
        return
    for view in section.views():
        console.print(render.rich_table(view))
    for note in section.notes:
        err_console.print(f"no published row: {note}", highlight=False, markup=False)


def _compare_reference(db: Path | None, campaign: dict[str, Any], results: list[Result], benchmark: str,
                       system: str | None, fmt: str, out: Path | None, view: views.View | None = None,
                       comps: list[Comparison] | None = None) -> None:
    """``compare --reference``: the campaign's rows beside published rows, after the baseline's table
    (``view``, made from ``comps``) when there is one."""
    from controller.reports import reference_rows

    section = reference_rows.section(_reference_choice(db, benchmark, system), scorecard.build(results))
    if fmt == "table" and out is None:
        if view is not None:
            console.print(render.rich_table(view))
        _print_reference(section)
        return
    shown = [v for v in (view, *section.views()) if v is not None]
    if fmt == "json":
        text = json.dumps({"campaign": campaign["id"], "baseline": None if comps is None else [c.to_dict() for c in comps],
                           "reference": section.to_dict()}, indent=2, default=str) + "\n"
    elif fmt == "html":
        text = reference_rows.html_page(shown, f"{campaign['name']} beside published MLPerf results")
    else:
        text = "\n".join([render.markdown(v) for v in shown] + [f"_no published row: {n}_" for n in section.notes]) + "\n"
    _emit(text, out)


@reference_app.command("import")
@cli_errors
def reference_import(
    path: Annotated[Path, typer.Argument(help="an MLCommons results tree (a checkout of inference_results_v4.1 or "
                                              "tiny_results_v1.1), one division of it, or one submitter")],
    version: Annotated[str | None, typer.Option("--version", help="the MLPerf version, e.g. v4.1, when the folder "
                                                                  "name does not say it")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """Import published results as reference rows; importing the same tree again adds nothing."""
    from controller import reference as published

    check_output(db, "--db", "controller.db")
    walk = published.read_tree(path, version)  # a path that is no tree is said before a database is made
    with _open_store(db, create=True) as store:
        done = published.store_rows(store, walk)
    for problem in walk.problems:
        err_console.print(problem.line(), highlight=False, markup=False)
    if as_json:
        _print_json({"path": str(path), "version": walk.version, "version_from": walk.version_from,
                     "rows": len(walk.rows), "new": done.new, "changed": done.changed, "unchanged": done.unchanged,
                     "problems": [{"kind": p.kind, "where": p.where, "why": p.why} for p in walk.problems]})
    else:
        skipped = sum(p.kind == "skipped" for p in walk.problems)
        suites = " and ".join(sorted({f"MLPerf {r.suite}" for r in walk.rows})) or "MLPerf"
        console.print(f"{len(walk.rows)} published rows from {path} as {suites} {walk.version} (version from "
                      f"{walk.version_from}): {done.new} new, {done.changed} changed, {done.unchanged} already stored; "
                      f"{skipped} skipped", highlight=False, markup=False)
    if not walk.rows:
        err_console.print(f"[red]nothing imported[/]: no readable published result under {escape(str(path))}",
                          highlight=False)
        raise typer.Exit(1)


@reference_app.command("list")
@cli_errors
def reference_list(
    benchmark: Annotated[str | None, typer.Option(help="only this benchmark, as results trees spell it (resnet50)")] = None,
    scenario: Annotated[str | None, typer.Option(help="only this scenario (SingleStream, Offline, ...)")] = None,
    db: Db = None,
    as_json: AsJson = False,
) -> None:
    """The stored published rows: benchmark, scenario, published result, accuracy, division, status, compliance."""
    from controller import reference as published
    from controller.reports import reference_rows

    with _open_store(db) as store:
        rows = published.stored(store, benchmark, scenario)
    if as_json:
        _print_json([r.to_dict() for r in rows])
        return
    console.print(render.rich_table(reference_rows.stored_view(rows, f"published MLPerf rows ({len(rows)})")))


@export_app.command("mlflow")
@cli_errors
def export_mlflow(
    ref: Annotated[str, typer.Argument(help="campaign id, name or 'latest'")],
    tracking_uri: Annotated[str, typer.Option(envvar="MLFLOW_TRACKING_URI", help="e.g. file:./mlruns or http://mlflow:5000")],
    experiment: Annotated[str | None, typer.Option(help="experiment name (default edgeperf/<campaign name>)")] = None,
    db: Db = None,
) -> None:
    """One MLflow run per result: params = settings and facts, metrics = KPIs, artifacts = result and logs."""
    from controller.reports import exports
    from controller.reports.exports import mlflow

    with _open_store(db) as store:
        campaign, results, documents = exports.campaign_results(store, ref)
    runs = mlflow.export_runs(results, documents, campaign, tracking_uri, experiment)
    new = sum(r.created for r in runs)
    name = experiment or mlflow.default_experiment(campaign)
    console.print(f"{len(runs)} runs in experiment {name!r} at {tracking_uri} ({new} new, {len(runs) - new} already there)")


@export_app.command("mlperf")
@cli_errors
def export_mlperf(
    ref: Annotated[str, typer.Argument(help="campaign id, name or 'latest'")],
    out: Annotated[Path, typer.Option("-o", "--out", help="the folder to write (must be empty)")],
    overwrite: Annotated[bool, typer.Option(help="replace folders an earlier edgeperf export wrote")] = False,
    db: Db = None,
) -> None:
    """An MLPerf-style folder: per system/model/scenario, LoadGen logs, accuracy, system description."""
    from controller.reports import exports
    from controller.reports.exports import mlperf

    with _open_store(db) as store:
        campaign, results, _documents = exports.campaign_results(store, ref)
    try:
        files = mlperf.export_campaign(results, campaign, out, overwrite=overwrite)
    except OSError as exc:  # a folder that cannot be made or written (read-only, /proc, disk full)
        problem = f"cannot write -o {out}: {exc.strerror} ({exc.filename})"
        raise exports.ExportError(f"{problem}; give a folder you can write") from None
    console.print(f"{len(files)} files written under {out}")


@app.command("report")
@cli_errors
def report_cmd(
    ref: Annotated[str, typer.Argument(help="campaign id, name or 'latest'")] = "latest",
    fmt: Annotated[str, typer.Option("--format", help="html | md | csv | json")] = "html",
    out: Annotated[Path | None, typer.Option("-o", "--output", help="write here (default: stdout)")] = None,
    baseline_ref: Annotated[str | None, typer.Option("--baseline", help="a baseline campaign to compare with")] = None,
    title: Annotated[str | None, typer.Option(help="report title")] = None,
    db: Db = None,
    kind: Kind = "fleet",
    reference: ReferenceOpt = None,
    reference_system: ReferenceSystem = None,
) -> None:
    """A shareable report: tables, plots (latency CDFs, energy vs latency, throughput, power trace) and device facts."""
    from controller.reports import campaign_report as report

    if fmt not in report.FORMATS:
        raise typer.BadParameter(f"unknown format {fmt!r}; use {', '.join(report.FORMATS)}", param_hint="--format")
    if reference is not None and fmt == "csv":
        raise EdgeperfError("--reference: published rows are not in the CSV report (its lines are device rows); use "
                            "--format html, md or json with --reference")
    check_output(out)
    campaign, results = _campaign_results(db, ref, kind)
    base = _campaign_results(db, baseline_ref, "baseline")[1] if baseline_ref else None
    choice = None if reference is None else _reference_choice(db, reference, reference_system)
    text = report.build(fmt, campaign, results, base, title=title, reference=choice)
    _emit(text, out)


@app.command("diff")
@cli_errors
def diff_cmd(
    old: Annotated[str, typer.Argument(help="the reference campaign (id, name or 'latest')")],
    new: Annotated[str, typer.Argument(help="the campaign to judge")],
    fail_on: Annotated[str, typer.Option("--fail-on", help="e.g. 'p90:+5%,top1:-0.5pp,energy:+10%'")],
    strict: Annotated[bool, typer.Option("--strict", help="also fail on changes beyond a threshold whose noise is "
                                                          "unknown (a side without repeats)")] = False,
    db: Db = None,
    as_json: AsJson = False,
    kind: Kind = "fleet",
) -> None:
    """Exit 1 for a change beyond its threshold AND significant over the repeats, or a row not measured."""
    from controller.analysis import gate
    from controller.reports import gate_text

    rules = gate.parse_rules(fail_on)
    old_campaign, old_results = _campaign_results(db, old, kind)
    new_campaign, new_results = _campaign_results(db, new, kind)
    _warn_if_one_campaign(old_campaign, new_campaign, "every change is 0")
    outcome = gate.compare(scorecard.build(old_results), scorecard.build(new_results), rules, strict=strict)
    if as_json:
        _print_json({"old": old_campaign["id"], "new": new_campaign["id"], "rules": [r.text for r in rules],
                     "strict": strict, "passed": outcome.passed, "findings": [f.to_dict() for f in outcome.findings],
                     "missing": outcome.missing, "notes": outcome.notes, "regressions": len(outcome.regressions)})
    else:
        title = (f"diff {old_campaign['name']} ({old_campaign['id']}) -> "
                 f"{new_campaign['name']} ({new_campaign['id']})")
        for text, style in gate_text.lines(outcome, title, fail_on, strict):
            console.print(text, style=style, highlight=False, markup=False)
    if not outcome.passed:
        raise typer.Exit(1)


@app.command()
@cli_errors
def demo(
    json_out: Annotated[Path | None, typer.Option("--json", help="write every result document to this file")] = None,
    db: Annotated[Path | None, typer.Option("--db", help="keep the demo's results database here [default: a temporary "
                                                          "one, removed at the end]")] = None,
) -> None:
    """Offline, on this machine: a broker, an artifact server, two agents, a campaign, a scorecard.

    Exits 1 with one line naming the problem and the fix when it measured nothing or a job failed; SIGTERM and
    SIGHUP stop the agents and remove its temporary folder, as Ctrl-C does (exit 128 + the signal's number)."""
    from controller.fleet import demo as demo_lib

    check_output(json_out, "--json", "demo.json")
    check_output(db, "--db", "demo.db")
    try:
        outcome = demo_lib.run(console, db)
    except demo_lib.Stopped as stop:
        err_console.print(f"stopped by {stop}: demo agents stopped, temporary folder removed", highlight=False)
        raise typer.Exit(128 + stop.signum) from None
    if json_out:
        write_output(json_out, json.dumps(outcome.docs, indent=2) + "\n", "--json")
        console.print(f"results: {json_out}")
    if outcome.problem:
        err_console.print(f"[bold red]error:[/] {escape(outcome.problem)}", highlight=False, soft_wrap=True)
        raise typer.Exit(1)


app.command("quantize")(quantize_cli.quantize)


@app.command("zoo")
@cli_errors
def zoo_list(as_json: AsJson = False) -> None:
    """List the reference models: facts, formats, accuracy, and which files are fetched on this machine.
    The same listing as ``edgeperf-agent zoo`` (fetch with ``edgeperf-agent zoo fetch NAME``)."""
    if as_json:
        _print_json(zoo_listing.as_json())
        return
    console.print(zoo_listing.render(), markup=False, highlight=False, soft_wrap=True, end="")


def main() -> None:
    """Run the CLI; a usage mistake (unknown option, bad value) is one ``error:`` line, exit 2, like
    every other error here, not typer's framed panel."""
    try:
        code = app(prog_name="edgeperf", standalone_mode=False)
    except typer.TyperException as exc:  # typer's own click: UsageError, BadParameter, NoSuchOption
        message = exc.format_message()
        if message:  # empty after a group called without a command has printed its help
            where = f"{exc.ctx.command_path}: " if getattr(exc, "ctx", None) else ""
            err_console.print(f"[bold red]error:[/] {escape(where + message)} (see --help)", highlight=False)
        sys.exit(getattr(exc, "exit_code", 2))
    except typer.Abort:  # end of input at a prompt
        err_console.print("aborted")
        sys.exit(1)
    sys.exit(code if isinstance(code, int) else 0)
