"""``edgeperf`` as an engineer uses it: campaign run/status/results/cancel/resume, devices, and its errors."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
import time

import pytest

from controller.fleet.broker import EmbeddedBroker, free_port
from controller.store.database import Store
from tests.cli_harness import edgeperf, edgeperf_here, one_error_line
from tests.fleet_harness import AgentProcess, campaign_file, wait_until

pytestmark = pytest.mark.slow




@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """An embedded broker and one agent, shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp("lab")
    with EmbeddedBroker() as broker:
        agent = AgentProcess(broker.url, "bench-01", tmp, "--tag", "lab").start()
        yield broker.url, tmp, agent
        agent.terminate()


def common(url: str, db) -> tuple[str, ...]:
    return ("--broker", url, "--db", str(db), "--artifact-host", "127.0.0.1", "--artifact-advertise", "127.0.0.1")


def test_run_then_status_results_and_devices(lab, tmp_path):
    url, _, _ = lab
    db = tmp_path / "c.db"
    spec = campaign_file(tmp_path / "cli.yaml", variants=["int8.tflite"], scenarios=["SingleStream"],
                         modes=["performance", "accuracy"], devices="{tags: [lab]}")
    run = edgeperf("campaign", "run", str(spec), *common(url, db))
    assert run.returncode == 0, run.stderr
    assert "VALID" in run.stdout and "bench-01" in run.stdout
    status = json.loads(edgeperf_here("campaign", "status", "latest", "--db", str(db), "--json").stdout)
    assert status["state"] == "finished" and status["jobs"] == {"done": 2} and status["results"] == 2
    by_name = json.loads(edgeperf_here("campaign", "status", "cli", "--db", str(db), "--json").stdout)
    assert by_name["id"] == status["id"]
    docs = json.loads(edgeperf_here("results", status["id"][:6], "--db", str(db), "--format", "json").stdout)
    assert [d["mode"] for d in docs] == ["performance", "accuracy"]
    rows = list(csv.DictReader(io.StringIO(edgeperf_here("results", "latest", "--db", str(db), "--format", "csv").stdout)))
    assert len(rows) == 2 and rows[1]["top1"] and rows[0]["device"] == "bench-01" and rows[0]["valid"] == "True"
    listed = json.loads(edgeperf_here("campaign", "list", "--db", str(db), "--json").stdout)
    assert [(c["name"], c["state"]) for c in listed] == [("cli", "finished")]
    devices = json.loads(edgeperf_here("devices", "--broker", url, "--db", str(db), "--json", "--wait", "1").stdout)
    (device,) = [d for d in devices if d["id"] == "bench-01"]
    assert device["state"] == "online" and device["tags"] == ["lab"] and device["info"]["facts"]["cpu_count_logical"] >= 1


def test_job_timeout_is_retried_then_failed_and_reported(lab, tmp_path):
    url, _, _ = lab
    db = tmp_path / "c.db"
    spec = campaign_file(tmp_path / "slow.yaml", variants=["int8.onnx"], scenarios=["SingleStream"], modes=["performance"],
                         devices="{ids: [bench-01]}", min_duration_s=30, timeout_s=3, retries=1)
    run = edgeperf("campaign", "run", str(spec), *common(url, db), "--json")
    assert run.returncode == 1, run.stderr  # nothing measured, a job failed: not a success
    summary = json.loads(run.stdout)
    assert summary["state"] == "finished_with_failures" and summary["results"] == 0
    (failure,) = summary["failed"]
    assert failure["attempts"] == 2 and "timed out on the device" in failure["error"]
    assert [a["state"] for a in summary["requeued"][0]["attempts"]] == ["failed", "failed"]
    assert f"failed {failure['key']} on bench-01 after 2 attempt(s): " in run.stderr
    assert "nothing measured: campaign slow" in run.stderr and "stored no result" in run.stderr


def test_a_failed_job_ends_the_campaign_finished_with_failures_and_exits_1_naming_it(lab, tmp_path):
    url, _, _ = lab
    db = tmp_path / "c.db"
    spec = tmp_path / "mixed.yaml"  # one good variant, one whose --shape names an input the model lacks: the agent refuses it
    spec.write_text(
        "name: mixed\nprofile: smoke\nscenarios: [SingleStream]\nmodes: [performance]\ndataset: synthetic\n"
        "devices: {ids: [bench-01]}\noverrides: {min_duration_s: 0.2}\nmodels:\n  - name: fmnist\n    variants:\n"
        "      - {artifact: 'zoo:fashion-mnist-cnn/int8.tflite', threads: 1}\n"
        "      - {artifact: 'zoo:fashion-mnist-cnn/int8.tflite', name: bad-shape, threads: 1, shape: {nope: 1x28}}\n"
    )
    run = edgeperf("campaign", "run", str(spec), *common(url, db))
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr
    assert "finished_with_failures" in run.stdout and "VALID" in run.stdout  # the scorecard of what was measured
    bad = "bench-01/fmnist/bad-shape/SingleStream/performance/r0"
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("failed ")]
    assert line.startswith(f"failed {bad} on bench-01 after 1 attempt(s): ") and "'nope'" in line, line  # not retried
    status = json.loads(edgeperf_here("campaign", "status", "latest", "--db", str(db), "--json").stdout)
    assert (status["state"], status["jobs"], status["results"]) == ("finished_with_failures", {"done": 1, "failed": 1}, 1)
    (good,) = json.loads(edgeperf_here("results", "latest", "--db", str(db), "--format", "json").stdout)
    assert good["model"]["name"] == "fmnist/int8.tflite" and good["valid"]
    listed = json.loads(edgeperf_here("campaign", "list", "--db", str(db), "--json").stdout)
    assert [(c["name"], c["state"]) for c in listed] == [("mixed", "finished_with_failures")]
    # resume re-sends jobs that were out, never re-runs a failed one: the campaign ends as it was, exit 1 again
    resumed = edgeperf("campaign", "resume", "latest", *common(url, db), "--json")
    assert resumed.returncode == 1, resumed.stderr
    again = json.loads(resumed.stdout)
    assert (again["state"], again["jobs"], again["results"]) == ("finished_with_failures", {"done": 1, "failed": 1}, 1)
    assert again["failed"][0]["attempts"] == 1 and f"failed {bad} on bench-01" in resumed.stderr


def test_cancel_stops_a_running_campaign(lab, tmp_path):
    url, _, agent = lab
    db = tmp_path / "c.db"
    spec = campaign_file(tmp_path / "long.yaml", variants=["int8.onnx", "fp32.onnx"], scenarios=["SingleStream"],
                         modes=["performance"], devices="{ids: [bench-01]}", min_duration_s=60)
    runner = subprocess.Popen([sys.executable, "-c", "from controller.cli import main; main()", "campaign", "run", str(spec),
                               *common(url, db), "--json"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def running() -> bool:
        if not db.exists():
            return False
        store = Store(db)
        try:
            return any(c["state"] == "running" for c in store.campaigns()) and bool(
                store.jobs(store.campaign("latest")["id"], ("running",)))
        finally:
            store.close()

    wait_until(running, 60, "a job running on the device")
    cancel = edgeperf_here("campaign", "cancel", "latest", "--db", str(db))
    assert cancel.returncode == 0 and "cancel requested" in cancel.stdout
    out, err = runner.communicate(timeout=60)
    assert runner.returncode == 1, err  # cancelled before anything was measured: not a success
    assert "nothing measured: campaign long" in err and "was cancelled before any result was stored" in err
    summary = json.loads(out)
    assert summary["state"] == "cancelled" and set(summary["jobs"]) == {"cancelled"}
    wait_until(lambda: "cancelled by the controller" in agent.log(), 30, "the agent stopping the job")
    assert agent.alive()


@pytest.mark.parametrize(
    ("text", "fragment"),
    [("name: x\nprofile: fast\nmodels: []\n", ":2: profile:"), ("name: x\nmodels:\n  - name: m\n    variantz: []\n", "variantz")],
)
def test_bad_campaign_file_is_one_line_naming_file_line_and_key(tmp_path, text, fragment):
    spec = tmp_path / "bad.yaml"
    spec.write_text(text)
    one_error_line(edgeperf_here("campaign", "run", str(spec), "--db", str(tmp_path / "c.db")), 2, "bad.yaml", fragment)


def test_unknown_campaign_and_unreachable_broker(tmp_path):
    # a command that only reads refuses a database that is not there (a mistyped --db), and creates none
    one_error_line(edgeperf_here("campaign", "status", "nope", "--db", str(tmp_path / "c.db")), 2, "no results database at")
    assert not (tmp_path / "c.db").exists()
    Store(tmp_path / "c.db").close()
    one_error_line(edgeperf_here("campaign", "status", "nope", "--db", str(tmp_path / "c.db")), 2, "no campaign 'nope'")
    started = time.monotonic()
    proc = edgeperf_here("devices", "--broker", f"mqtt://127.0.0.1:{free_port()}", "--db", str(tmp_path / "c.db"))
    one_error_line(proc, 3, "no connection to broker", "edgeperf broker")
    assert time.monotonic() - started < 30


@pytest.mark.parametrize("argv", [
    ("campaign", "run", "{spec}", "--broker", "mqtt://127.0.0.1:1"),
    ("baseline", "run", "{spec}", "--power", "none"),
    ("devices", "--broker", "mqtt://127.0.0.1:1", "--wait", "0"),
], ids=["campaign run", "baseline run", "devices"])
def test_a_db_that_cannot_be_created_is_one_line_before_anything_runs(tmp_path, argv):
    # Commands that create the database used to make its folder as they went and died in a traceback
    # (FileExistsError) when a file stood in the way; the folder is now checked before the broker,
    # the campaign or a model is touched.
    (tmp_path / "a-file").write_text("kept")
    spec = campaign_file(tmp_path / "c.yaml", variants=["int8.onnx"], scenarios=["SingleStream"], modes=["performance"])
    db = tmp_path / "a-file" / "c.db"
    proc = edgeperf_here(*(arg.format(spec=spec) for arg in argv), "--db", str(db))
    one_error_line(proc, 2, f"--db {db}: {tmp_path / 'a-file'} is a file, not a folder; write elsewhere")
    missing = tmp_path / "missing" / "c.db"
    proc = edgeperf_here(*(arg.format(spec=spec) for arg in argv), "--db", str(missing))
    one_error_line(proc, 2, f"--db {missing}: folder {missing.parent} does not exist; create it")
    assert not missing.parent.exists() and (tmp_path / "a-file").read_text() == "kept"


def test_resume_refuses_a_mistyped_db_and_creates_none(tmp_path):
    # resume finishes a stored campaign: a --db that holds none is a typo, not a new empty database
    db = tmp_path / "typo.db"
    one_error_line(edgeperf_here("campaign", "resume", "latest", "--db", str(db)), 2, f"no results database at {db}")
    assert not db.exists()


def test_fleet_bundle_refuses_a_missing_folder_before_downloading(tmp_path):
    out = tmp_path / "missing" / "agents.tar.gz"
    started = time.monotonic()
    proc = edgeperf_here("fleet", "bundle", "-o", str(out))
    one_error_line(proc, 2, f"-o {out}: folder {out.parent} does not exist")
    assert time.monotonic() - started < 30 and not out.parent.exists()  # no wheel was built or downloaded


def test_edgeperf_broker_serves_until_interrupted(tmp_path):
    import signal

    from agent.transport import BrokerUrl, Connection

    port = free_port()
    # Ctrl-C as in a terminal: a test run started in the background (`cmd &` in a script) ignores
    # SIGINT, children inherit that, and Python then leaves it ignored.
    proc = subprocess.Popen([sys.executable, "-c", "from controller.cli import main; main()", "broker", "--host", "127.0.0.1",
                             "--port", str(port)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        client = Connection("probe", BrokerUrl.parse(f"mqtt://127.0.0.1:{port}"))
        wait_until(lambda: _connects(client), 20, "the broker to accept a client")
        client.stop()
    finally:
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130 and "listening on mqtt://127.0.0.1" in out and "Traceback" not in err


def _connects(client) -> bool:
    from agent.transport import BrokerUnreachable

    try:
        client.start(wait_s=1)
    except BrokerUnreachable:
        return False
    return True


def test_live_view_shows_each_device_and_what_just_happened(lab, tmp_path):
    from rich.console import Console

    from controller.cli import progress
    from controller.fleet import campaign as campaign_module
    from controller.fleet import session

    url, _, _ = lab
    options = session.FleetOptions(broker=url, db=tmp_path / "c.db", artifact_host="127.0.0.1", artifact_advertise="127.0.0.1")
    with session.fleet(options, artifacts=True, owner=True) as fleet:
        fleet.discover(1.0)
        spec = campaign_module.load(campaign_file(tmp_path / "v.yaml", variants=["int8.tflite"], scenarios=["SingleStream"],
                                                  modes=["performance"], devices="{ids: [bench-01]}"))
        campaign_id = fleet.create_campaign(spec)
        frames = []

        def render(f, c):
            console = Console(file=io.StringIO(), width=140, color_system=None)
            console.print(progress.view(f, c))
            frames.append(console.file.getvalue())

        assert fleet.run(campaign_id, on_tick=render) == "finished"
    assert any("bench-01" in frame and "0/1" in frame for frame in frames)
    assert "1/1" in frames[-1] and "results stored 1" in frames[-1]
    assert any("running" in frame for frame in frames)  # the phase the device reported
