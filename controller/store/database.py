"""The controller's record: devices, campaigns, jobs, attempts and results in one SQLite file (WAL).

Results are keyed by run id and inserted with ``INSERT OR IGNORE``, so a result delivered twice
(QoS 1 redelivery, an agent's outbox re-send, a resumed campaign) is stored once. Every attempt
of a job keeps its own run id and fate, so a re-queued job is visible, not silent. WAL lets
``campaign status`` read while ``campaign run`` writes; ``synchronous=FULL`` keeps what was
acked to an agent on disk before the ack leaves.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.contract import RESULT_SCHEMA, ProtocolError, Result, decode_body
from agent.errors import EdgeperfError

SCHEMA_VERSION = 4  # raise with every schema change: a file at this version is opened without a write
# published MLPerf results (controller/reference), one row per suite/version/division/submitter/system/benchmark/scenario
_REFERENCE_ROWS = """CREATE TABLE IF NOT EXISTS reference_rows(
    suite TEXT NOT NULL, version TEXT NOT NULL, division TEXT NOT NULL, submitter TEXT NOT NULL, system TEXT NOT NULL,
    benchmark TEXT NOT NULL, scenario TEXT NOT NULL, doc TEXT NOT NULL, imported_at REAL NOT NULL,
    PRIMARY KEY(suite, version, division, submitter, system, benchmark, scenario))"""
# version -> statements that bring a database of the version before it up to it
MIGRATIONS = {
    2: ["ALTER TABLE campaigns ADD COLUMN kind TEXT NOT NULL DEFAULT 'fleet'"],
    3: ["CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL)"],
    4: [_REFERENCE_ROWS],  # a table of its own: nothing stored before changes
}
TERMINAL = ("done", "failed", "cancelled", "not_measured")
# A campaign is ``running`` (a baseline stopped by Ctrl-C: ``interrupted``) until it ends in one of these:
# every job done; every job settled but some failed (a result is still a result, but the campaign's exit
# code is 1); or cancelled. Each stamps ``finished_at``; resuming sets ``running`` again.
CAMPAIGN_ENDED = ("finished", "finished_with_failures", "cancelled")
_SCHEMA = """
CREATE TABLE IF NOT EXISTS devices(
    id TEXT PRIMARY KEY, state TEXT, agent_version TEXT, tags TEXT, job TEXT, info TEXT, last_seen REAL);
CREATE TABLE IF NOT EXISTS campaigns(
    id TEXT PRIMARY KEY, name TEXT NOT NULL, source TEXT, spec TEXT NOT NULL, state TEXT NOT NULL,
    created_at REAL NOT NULL, finished_at REAL, cancel_requested INTEGER NOT NULL DEFAULT 0,
    kind TEXT NOT NULL DEFAULT 'fleet');
CREATE TABLE IF NOT EXISTS jobs(
    id TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, position INTEGER NOT NULL, key TEXT NOT NULL, device_id TEXT NOT NULL,
    spec TEXT NOT NULL, state TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, run_id TEXT, result_run_id TEXT,
    error TEXT, sent_at REAL, accepted_at REAL, finished_at REAL, resends INTEGER NOT NULL DEFAULT 0,
    UNIQUE(campaign_id, key));
CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs(campaign_id, state);
CREATE TABLE IF NOT EXISTS attempts(
    run_id TEXT PRIMARY KEY, job_id TEXT NOT NULL, attempt INTEGER NOT NULL, state TEXT NOT NULL, reason TEXT,
    started_at REAL, ended_at REAL);
CREATE TABLE IF NOT EXISTS results(
    run_id TEXT PRIMARY KEY, job_id TEXT, campaign_id TEXT, device_id TEXT NOT NULL, model TEXT, scenario TEXT,
    mode TEXT, valid INTEGER, doc TEXT NOT NULL, received_at REAL NOT NULL);
CREATE INDEX IF NOT EXISTS results_by_campaign ON results(campaign_id);
CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
""" + _REFERENCE_ROWS + ";"


class StoreError(EdgeperfError):
    """The database cannot be opened or a campaign reference does not exist."""


def default_db() -> Path:
    """``$XDG_DATA_HOME/edgeperf/controller.db`` (~/.local/share/edgeperf/controller.db)."""
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "edgeperf" / "controller.db"


@dataclass(frozen=True)
class Job:
    """One row of ``jobs``: a device's share of a campaign, with its current attempt."""

    id: str
    campaign_id: str
    position: int
    key: str
    device_id: str
    spec: dict[str, Any]
    state: str
    attempts: int
    run_id: str | None
    error: str | None
    sent_at: float | None
    accepted_at: float | None
    finished_at: float | None
    resends: int


class Store:
    """All reads and writes of the controller database."""

    def __init__(self, path: Path, create: bool = True) -> None:
        """Open (``create``: or create) the database at ``path``. Commands that only read pass
        ``create=False``: a mistyped ``--db`` must be said, not answered from a new empty file."""
        self.path = path
        if not create and not path.is_file():
            raise StoreError(f"no results database at {path}; check --db, or run a campaign first "
                             "('campaign run' and 'baseline run' create it)")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
            self.db.row_factory = sqlite3.Row
            self._use_wal()
            self.db.execute("PRAGMA synchronous=FULL")
            if self.db.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
                with self.transaction():  # one opener at a time, or two could migrate the same file
                    self._prepare_schema()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot open the results database {path}: {exc}; pass another --db or move the file aside"
            ) from None

    def _use_wal(self, wait_s: float = 30.0) -> None:
        """Switch the file to WAL (readers never block the writer; it persists in the file).

        The switch needs the file to itself and SQLite does not wait for that with the busy
        timeout: when two commands open a new database at once, one is told "locked" at once.
        So it is retried, for as long as any other statement would wait.
        """
        deadline = time.monotonic() + wait_s
        while True:
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.02)

    def _prepare_schema(self) -> None:
        """Create or migrate the tables. Runs inside a write transaction: another process opening
        the same new file waits for it, then finds the schema complete and the version set."""
        version = self.db.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer edgeperf (schema {version}); upgrade edgeperf")
        fresh = not self.db.execute("SELECT 1 FROM sqlite_master WHERE name = 'campaigns'").fetchone()
        if not fresh:
            for step in range(max(version, 1) + 1, SCHEMA_VERSION + 1):
                for statement in MIGRATIONS[step]:
                    self.db.execute(statement)
        for statement in _SCHEMA.split(";"):  # executescript would commit first
            if statement.strip():
                self.db.execute(statement)
        self.db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")

    def close(self) -> None:
        self.db.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (batched message handling commits once per batch)."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    @property
    def controller_id(self) -> str:
        """This database's controller id, made once: jobs carry it, and agents take acks and cancels
        for a job only from it, so a colleague's controller on the same broker cannot settle our runs."""
        row = self.db.execute("SELECT value FROM meta WHERE key = 'controller_id'").fetchone()
        if row:
            return row[0]
        self.db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES ('controller_id', ?)",
                        (f"controller-{uuid.uuid4().hex[:12]}",))
        return self.db.execute("SELECT value FROM meta WHERE key = 'controller_id'").fetchone()[0]

    # ---- devices -----------------------------------------------------------------------------
    def upsert_device(self, device_id: str, heard: bool = False, **fields: Any) -> None:
        """Record what a status or info message said; unspecified columns keep their value. ``last_seen``
        moves only when the device was ``heard`` live (a retained status can be hours old)."""
        columns = {k: json.dumps(v) if k in ("tags", "info") else v for k, v in fields.items()}
        if heard:
            columns["last_seen"] = time.time()
        names = ", ".join(columns)
        updates = ", ".join(f"{k}=excluded.{k}" for k in columns)
        self.db.execute(
            f"INSERT INTO devices(id, {names}) VALUES (?{', ?' * len(columns)}) ON CONFLICT(id) DO UPDATE SET {updates}",
            (device_id, *columns.values()),
        )

    def devices(self) -> list[dict[str, Any]]:
        rows = self.db.execute("SELECT * FROM devices ORDER BY id").fetchall()
        return [dict(r) | {"tags": json.loads(r["tags"] or "[]"), "info": json.loads(r["info"] or "{}")} for r in rows]

    # ---- campaigns ---------------------------------------------------------------------------
    def create_campaign(
        self, name: str, source: str, spec: dict[str, Any], jobs: Iterable[tuple[str, str, dict[str, Any]]], kind: str = "fleet"
    ) -> str:
        """A campaign and its job matrix (``(key, device_id, spec)`` in dispatch order), atomically.

        ``kind`` is ``fleet`` (devices over MQTT) or ``baseline`` (this host's GPUs, in process)."""
        campaign_id = uuid.uuid4().hex[:12]
        now = time.time()
        with self.transaction() as db:
            db.execute(
                "INSERT INTO campaigns(id, name, source, spec, state, created_at, kind) VALUES (?, ?, ?, ?, 'running', ?, ?)",
                (campaign_id, name, source, json.dumps(spec), now, kind),
            )
            db.executemany(
                "INSERT INTO jobs(id, campaign_id, position, key, device_id, spec, state) VALUES (?, ?, ?, ?, ?, ?, 'pending')",
                [(uuid.uuid4().hex, campaign_id, i, key, device, json.dumps(job)) for i, (key, device, job) in enumerate(jobs)],
            )
        return campaign_id

    def campaign(self, ref: str, kind: str = "fleet") -> dict[str, Any]:
        """A campaign by id (or unique id prefix), by name (the newest of that name), or ``latest``:
        the newest campaign of ``kind`` (``fleet``; ``baseline`` for the datacenter baseline), so
        that a baseline run after a campaign does not become the "latest" edge results."""
        if ref == "latest":
            row = self.db.execute("SELECT * FROM campaigns WHERE kind = ? ORDER BY created_at DESC LIMIT 1", (kind,)).fetchone()
        else:
            row = self.db.execute("SELECT * FROM campaigns WHERE id = ?", (ref,)).fetchone()
            row = (
                row
                or self.db.execute("SELECT * FROM campaigns WHERE name = ? ORDER BY created_at DESC LIMIT 1", (ref,)).fetchone()
            )
            if row is None:
                rows = self.db.execute("SELECT * FROM campaigns WHERE id LIKE ?", (ref + "%",)).fetchall()
                row = rows[0] if len(rows) == 1 else None
        if row is None:
            known = [r[0] for r in self.db.execute("SELECT name FROM campaigns ORDER BY created_at DESC LIMIT 5")]
            hint = f"; recent: {', '.join(known)}" if known else "; none stored yet in this database"
            raise StoreError(f"no campaign {ref!r} in {self.path}{hint}")
        return dict(row) | {"spec": json.loads(row["spec"])}

    def campaigns(self) -> list[dict[str, Any]]:
        return [
            dict(r)
            for r in self.db.execute("SELECT id, name, kind, state, created_at, finished_at FROM campaigns ORDER BY created_at")
        ]

    def set_campaign_state(self, campaign_id: str, state: str) -> None:
        """``running``, ``interrupted`` or one of ``CAMPAIGN_ENDED`` (which stamp the end time)."""
        finished = time.time() if state in CAMPAIGN_ENDED else None
        self.db.execute("UPDATE campaigns SET state = ?, finished_at = ? WHERE id = ?", (state, finished, campaign_id))

    def request_cancel(self, campaign_id: str) -> None:
        self.db.execute("UPDATE campaigns SET cancel_requested = 1 WHERE id = ?", (campaign_id,))

    def cancel_requested(self, campaign_id: str) -> bool:
        row = self.db.execute("SELECT cancel_requested FROM campaigns WHERE id = ?", (campaign_id,)).fetchone()
        return bool(row and row[0])

    # ---- jobs and attempts -------------------------------------------------------------------
    @staticmethod
    def _job(row: sqlite3.Row) -> Job:
        return Job(**{k: row[k] for k in row.keys() if k != "result_run_id"} | {"spec": json.loads(row["spec"])})  # noqa: SIM118

    def jobs(self, campaign_id: str, states: Iterable[str] | None = None) -> list[Job]:
        query, args = "SELECT * FROM jobs WHERE campaign_id = ?", [campaign_id]
        if states is not None:
            states = list(states)
            query += f" AND state IN ({', '.join('?' * len(states))})"
            args += states
        return [self._job(r) for r in self.db.execute(query + " ORDER BY position", args)]

    def job_for_run(self, run_id: str) -> Job | None:
        row = self.db.execute(
            "SELECT jobs.* FROM attempts JOIN jobs ON jobs.id = attempts.job_id WHERE attempts.run_id = ?", (run_id,)
        ).fetchone()
        return self._job(row) if row else None

    def start_attempt(self, job: Job) -> str:
        """A new attempt of ``job`` with a fresh run id; the job becomes ``sent``."""
        run_id = uuid.uuid4().hex
        now = time.time()
        self.db.execute(
            "INSERT INTO attempts(run_id, job_id, attempt, state, started_at) VALUES (?, ?, ?, 'sent', ?)",
            (run_id, job.id, job.attempts + 1, now),
        )
        self.db.execute(
            "UPDATE jobs SET state = 'sent', attempts = attempts + 1, run_id = ?, sent_at = ?, accepted_at = NULL, "
            "resends = 0, error = NULL WHERE id = ?",
            (run_id, now, job.id),
        )
        return run_id

    def mark_resent(self, job: Job) -> None:
        self.db.execute("UPDATE jobs SET resends = resends + 1, sent_at = ? WHERE id = ?", (time.time(), job.id))

    def mark_running(self, run_id: str) -> None:
        self.db.execute("UPDATE attempts SET state = 'running' WHERE run_id = ? AND state = 'sent'", (run_id,))
        self.db.execute(
            "UPDATE jobs SET state = 'running', accepted_at = ? WHERE run_id = ? AND state = 'sent'", (time.time(), run_id)
        )

    def end_attempt(self, run_id: str, state: str, reason: str | None, requeue: bool) -> Job | None:
        """Close an attempt; its job is re-queued (``pending``), or takes ``state`` as final."""
        job = self.job_for_run(run_id)
        self.db.execute(
            "UPDATE attempts SET state = ?, reason = ?, ended_at = ? WHERE run_id = ? AND ended_at IS NULL",
            (state, reason, time.time(), run_id),
        )
        if job is None or job.run_id != run_id or job.state in TERMINAL:
            return job
        job_state = "pending" if requeue else state
        self.db.execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ?",
            (job_state, reason, None if requeue else time.time(), job.id),
        )
        return job

    def busy_refusals(self, job_id: str) -> int:
        """Attempts a device refused because it was running another job: they cost the job no retry."""
        return self.db.execute("SELECT COUNT(*) FROM attempts WHERE job_id = ? AND state = 'busy'", (job_id,)).fetchone()[0]

    def fail_pending(self, job_id: str, reason: str, state: str = "failed") -> None:
        """A job that never got an attempt settles as it is: ``failed`` (its device never came online), or
        ``not_measured`` (its device cannot measure it)."""
        self.db.execute(
            "UPDATE jobs SET state = ?, error = ?, finished_at = ? WHERE id = ? AND state = 'pending'",
            (state, reason, time.time(), job_id),
        )

    def cancel_pending(self, campaign_id: str, reason: str) -> int:
        return self.db.execute(
            "UPDATE jobs SET state = 'cancelled', error = ?, finished_at = ? WHERE campaign_id = ? AND state = 'pending'",
            (reason, time.time(), campaign_id),
        ).rowcount

    def attempts(self, job_id: str) -> list[dict[str, Any]]:
        return [dict(r) for r in self.db.execute("SELECT * FROM attempts WHERE job_id = ? ORDER BY attempt", (job_id,))]

    # ---- results -----------------------------------------------------------------------------
    def add_result(self, doc: Result, raw: bytes, device_id: str) -> bool:
        """Store a result (``raw``: its JSON as sent, checked as ``doc``) once per run id; the job it answers is
        done. False if already stored."""
        run_id = doc.run_id
        job = self.job_for_run(run_id)
        inserted = (
            self.db.execute(
                "INSERT OR IGNORE INTO results(run_id, job_id, campaign_id, device_id, model, scenario, mode, valid, doc, "
                "received_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    job.id if job else None,
                    job.campaign_id if job else None,
                    device_id,
                    doc.model.name,
                    doc.scenario,
                    doc.mode,
                    int(doc.valid),
                    raw.decode(),
                    time.time(),
                ),
            ).rowcount
            == 1
        )
        if job is not None:
            self.db.execute(
                "UPDATE attempts SET state = 'finished', ended_at = ? WHERE run_id = ? AND ended_at IS NULL",
                (time.time(), run_id),
            )
            self.db.execute(
                "UPDATE jobs SET state = 'done', result_run_id = COALESCE(result_run_id, ?), error = NULL, "
                "finished_at = COALESCE(finished_at, ?) WHERE id = ? AND state != 'done'",
                (run_id, time.time(), job.id),
            )
        return inserted

    def _result_rows(self, campaign_id: str) -> list[sqlite3.Row]:
        """(run id, stored JSON) of each job's result (the first that arrived), in matrix order."""
        return self.db.execute(
            "SELECT results.run_id, results.doc FROM jobs JOIN results ON results.run_id = jobs.result_run_id "
            "WHERE jobs.campaign_id = ? ORDER BY jobs.position",
            (campaign_id,),
        ).fetchall()

    def results(self, campaign_id: str) -> list[Result]:
        """The result of each job of a campaign, typed, in matrix order: what analysis and reports read.

        A stored document that no longer decodes (written by an older edgeperf whose results this
        contract refuses) is a ``StoreError`` naming its run id, not a row silently left out: a
        scorecard, report, export or regression gate without it would look complete and be wrong.
        ``documents`` still gives every row as stored."""
        out = []
        for row in self._result_rows(campaign_id):
            try:
                out.append(decode_body("result", row["doc"].encode()))
            except ProtocolError as exc:
                raise StoreError(
                    f"result {row['run_id']} does not read as {RESULT_SCHEMA}: {str(exc).removeprefix('bad result: ')} "
                    "(stored by another edgeperf version; 'edgeperf results --format json' shows it as stored)"
                ) from None
        return out

    def documents(self, campaign_id: str) -> list[dict[str, Any]]:
        """The result of each job of a campaign as its JSON was stored (extra fields included), in matrix
        order: for output of the whole document (``results --format json``, the MLflow artifact)."""
        return [json.loads(row["doc"]) for row in self._result_rows(campaign_id)]

    @contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads that see one state of the file (a read transaction): ``results`` and ``documents`` of a
        campaign that is still running are the same rows, in the same order."""
        self.db.execute("BEGIN")
        try:
            yield
        finally:
            self.db.execute("COMMIT")

    def result_count(self, campaign_id: str | None = None) -> int:
        if campaign_id is None:
            return self.db.execute("SELECT COUNT(*) FROM results").fetchone()[0]
        return self.db.execute("SELECT COUNT(*) FROM results WHERE campaign_id = ?", (campaign_id,)).fetchone()[0]

    # ---- published reference rows ------------------------------------------------------------
    REFERENCE_KEY = ("suite", "version", "division", "submitter", "system", "benchmark", "scenario")

    def add_reference_rows(self, docs: Iterable[dict[str, Any]]) -> tuple[int, int, int]:
        """Store published rows (``ReferenceRow.to_dict()``), one per suite, version, division, submitter,
        system, benchmark and scenario: importing a tree again adds nothing, and a row the tree now says
        differently is replaced. (new, changed, unchanged), in one transaction."""
        counts = [0, 0, 0]
        now = time.time()
        with self.transaction() as db:
            for doc in docs:
                key = tuple(doc[k] for k in self.REFERENCE_KEY)
                text = json.dumps(doc, sort_keys=True)
                where = " AND ".join(f"{k} = ?" for k in self.REFERENCE_KEY)
                old = db.execute(f"SELECT doc FROM reference_rows WHERE {where}", key).fetchone()
                if old is not None and old[0] == text:
                    counts[2] += 1
                    continue
                counts[0 if old is None else 1] += 1
                db.execute(f"INSERT OR REPLACE INTO reference_rows({', '.join(self.REFERENCE_KEY)}, doc, imported_at) "
                           f"VALUES ({', '.join('?' * (len(key) + 2))})", (*key, text, now))
        return counts[0], counts[1], counts[2]

    def reference_rows(self, benchmark: str | None = None, scenario: str | None = None) -> list[dict[str, Any]]:
        """Stored published rows (as ``add_reference_rows`` took them), optionally of one benchmark and
        scenario, ordered by benchmark, scenario, suite, version, division, submitter and system."""
        query, args = "SELECT doc FROM reference_rows WHERE 1 = 1", []
        for column, value in (("benchmark", benchmark), ("scenario", scenario)):
            if value is not None:
                query += f" AND {column} = ?"
                args.append(value)
        query += " ORDER BY benchmark, scenario, suite, version, division, submitter, system"
        return [json.loads(row[0]) for row in self.db.execute(query, args)]
