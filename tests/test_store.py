"""The results database: schema migration keeps old data, results are stored once per run id."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3

import pytest

from agent import bench
from agent.contract import Result, checked_result
from agent.scenarios.settings import Scenario, for_profile, with_overrides
from controller.store.database import SCHEMA_VERSION, Store, StoreError
from tests.cli_harness import edgeperf_here, one_error_line

V1_CAMPAIGNS = """CREATE TABLE campaigns(
    id TEXT PRIMARY KEY, name TEXT NOT NULL, source TEXT, spec TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, finished_at REAL, cancel_requested INTEGER NOT NULL DEFAULT 0)"""


def test_a_version_1_database_is_migrated_without_losing_campaigns(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite3.connect(path)
    db.execute(V1_CAMPAIGNS)
    db.execute("INSERT INTO campaigns(id, name, source, spec, state, created_at) "
               "VALUES ('c1', 'old', 'x.yaml', '{}', 'finished', 1)")
    db.execute("PRAGMA user_version=1")
    db.commit()
    db.close()
    store = Store(path)
    assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    (campaign,) = store.campaigns()
    assert campaign["name"] == "old" and campaign["kind"] == "fleet"
    new = store.create_campaign("gpu", "x.yaml", {}, [], kind="baseline")
    assert store.campaign(new)["kind"] == "baseline"
    store.close()


def _open_when_released(path, barrier) -> None:
    barrier.wait()
    Store(path).close()


def test_commands_opening_one_database_at_once_migrate_it_once(tmp_path):
    """`campaign run` and `campaign status` started together on an old file both open it."""
    for name in ("new.db", "old.db"):
        path = tmp_path / name
        if name == "old.db":
            db = sqlite3.connect(path)
            db.execute("PRAGMA journal_mode=WAL")  # as every edgeperf database is
            db.execute(V1_CAMPAIGNS)
            db.execute("PRAGMA user_version=1")
            db.commit()
            db.close()
        context = multiprocessing.get_context("spawn")
        barrier = context.Barrier(6)
        openers = [context.Process(target=_open_when_released, args=(path, barrier)) for _ in range(6)]
        for p in openers:
            p.start()
        for p in openers:
            p.join(60)
        assert [p.exitcode for p in openers] == [0] * 6, name
        store = Store(path)
        assert store.db.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        store.close()


def test_results_are_stored_once_per_run_id(tmp_path):
    store = Store(tmp_path / "c.db")
    campaign = store.create_campaign("c", "c.yaml", {"retries": 1, "cooldown_s": 0}, [("d/m/x", "d", {})])
    (job,) = store.jobs(campaign)
    run_id = store.start_attempt(job)
    doc = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.onnx", engine="native", device_id="d", run_id=run_id,
                                       settings=with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=100),
                                       warmup_runs=2))
    assert store.add_result(*checked_result(doc), "d") is True
    assert store.add_result(*checked_result(doc), "d") is False
    assert store.result_count(campaign) == 1 and store.jobs(campaign)[0].state == "done"
    store.close()


def test_results_read_typed_documents_as_stored_and_an_undecodable_row_is_named(tmp_path):
    """Analysis reads ``results`` (typed); whole-document output reads ``documents`` (the JSON as sent,
    fields this version does not declare kept). A row the contract no longer reads is an error that
    names it, not a run quietly missing from a scorecard or a regression gate."""
    store = Store(tmp_path / "c.db")
    campaign = store.create_campaign("c", "c.yaml", {"retries": 0, "cooldown_s": 0}, [("d/m/a", "d", {}), ("d/m/b", "d", {})])
    first, second = store.jobs(campaign)
    doc = bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/int8.onnx", engine="native", device_id="d",
                                       settings=with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=100),
                                       warmup_runs=2))
    doc["lab_note"] = "kept as sent"  # a field a newer agent might add
    ids = [store.start_attempt(job) for job in (first, second)]
    for run_id in ids:
        store.add_result(*checked_result(doc | {"run_id": run_id}), "d")

    results = store.results(campaign)
    assert all(isinstance(r, Result) for r in results) and [r.run_id for r in results] == ids
    assert results[0].kpis.latency_ms.p90 == doc["kpis"]["latency_ms"]["p90"]
    documents = store.documents(campaign)
    assert [d["run_id"] for d in documents] == ids and documents[0]["lab_note"] == "kept as sent"

    older = json.loads(json.dumps(documents[1]))
    older["kpis"]["latency_ms"]["p90"] = "12 ms"  # what this contract refuses
    store.db.execute("UPDATE results SET doc = ? WHERE run_id = ?", (json.dumps(older), ids[1]))
    with pytest.raises(StoreError, match=rf"result {ids[1]} does not read as edgeperf.result/1: .* at \$\.kpis\.latency_ms\.p90"):
        store.results(campaign)
    assert [d["run_id"] for d in store.documents(campaign)] == ids  # still there, as stored
    store.close()
    # the commands that read results say so in one line; the JSON listing still prints every document as stored
    one_error_line(edgeperf_here("scorecard", "c", "--db", str(tmp_path / "c.db")), 2, ids[1], "--format json")
    listed = edgeperf_here("results", "c", "--db", str(tmp_path / "c.db"), "--format", "json")
    assert listed.returncode == 0 and [d["run_id"] for d in json.loads(listed.stdout)] == ids
