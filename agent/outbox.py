"""The agent's durable outbox: results kept on disk until the controller acks them.

Why not trust the broker: mosquitto drops QoS 1 messages for a lagging subscriber once its queue
is full, and a broker restart or an agent crash loses whatever was in flight (docs/protocol.md, "Delivery"). So every
result is written here first, published from here, and deleted only when the controller's ack
names its run id. The same file remembers which jobs the agent has seen, so a job that the broker
delivers twice is not run twice, and a job the agent died in the middle of is noticed at start-up.

One SQLite file in WAL mode with ``synchronous=FULL``: once ``put`` returns, the entry survives a
SIGKILL and a power cut. paho runs its callbacks on its own thread, so the connection is shared
across threads (``check_same_thread=False``) and every use of it holds one lock.

Ordering is by insertion (a sequence column), never by wall-clock time: a Raspberry Pi without an
RTC boots with a stale clock that later jumps, and an entry must not be starved by that.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agent.errors import EdgeperfError

SCHEMA_VERSION = 2
# One entry per version: the statements that take a file at version N-1 to version N. Never edit
# a released entry; append a new one (PRAGMA user_version records how far a file has come).
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: (
        """CREATE TABLE outbox (
               seq INTEGER PRIMARY KEY,
               run_id TEXT NOT NULL UNIQUE,
               topic TEXT NOT NULL,
               payload BLOB NOT NULL,
               created_at REAL NOT NULL,
               last_sent_at REAL,
               attempts INTEGER NOT NULL DEFAULT 0
           )""",
        """CREATE TABLE jobs (
               seq INTEGER PRIMARY KEY,
               run_id TEXT NOT NULL UNIQUE,
               state TEXT NOT NULL,
               job TEXT,
               created_at REAL NOT NULL,
               updated_at REAL NOT NULL
           )""",
        "CREATE INDEX jobs_by_state ON jobs (state)",
    ),
    # the controller that owns each entry's job: only its ack deletes the entry (NULL, as for entries
    # made before: any controller's)
    2: ("ALTER TABLE outbox ADD COLUMN controller TEXT",),
}

JOB_STATES = ("accepted", "running", "finished", "failed", "cancelled")
UNFINISHED_STATES = ("accepted", "running")  # a job left in one of these means the agent died mid-job


class OutboxError(EdgeperfError):
    """The outbox file cannot be opened or is not an edgeperf outbox; the message says what to do."""


@dataclass(frozen=True)
class OutboxEntry:
    """A result waiting for the controller's ack."""

    run_id: str
    topic: str
    payload: bytes
    created_at: float  # wall clock, seconds since the epoch, when it was first put
    last_sent_at: float | None  # None: never published yet
    attempts: int  # how many times it was published


class Outbox:
    """Results not yet acked and jobs already seen, in one SQLite file shared by the agent's threads."""

    def __init__(self, path: Path | str, *, clock: Callable[[], float] = time.time) -> None:
        """Open (or create) the outbox at ``path``; ``clock`` exists so tests can move time."""
        self.path = Path(path).expanduser()
        self._clock = clock
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutboxError(f"cannot create the outbox directory {self.path.parent}: {exc.strerror or exc}") from None
        self._conn: sqlite3.Connection | None = None
        try:
            conn = sqlite3.connect(self.path, timeout=10.0, check_same_thread=False, isolation_level=None)
        except sqlite3.Error as exc:
            raise self._unusable(exc) from None
        try:
            self._conn = conn
            self._open_checked()
        except sqlite3.Error as exc:
            conn.close()
            self._conn = None
            raise self._unusable(exc) from None
        except OutboxError:
            conn.close()
            self._conn = None
            raise

    def _unusable(self, exc: Exception) -> OutboxError:
        """One line naming the file and the fix; the file itself is left exactly as it was."""
        return OutboxError(
            f"outbox {self.path} is not a usable SQLite database ({exc}); move it aside "
            f"(mv {self.path} {self.path}.bad) and restart the agent: a new outbox will be created, and "
            f"unsent results stay in the moved file"
        )

    def _open_checked(self) -> None:
        conn = self._db()
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # first read: fails on a non-SQLite file
        check = conn.execute("PRAGMA quick_check").fetchone()[0]
        if check != "ok":
            raise sqlite3.DatabaseError(f"integrity check failed: {check}")
        if version > SCHEMA_VERSION:
            raise OutboxError(
                f"outbox {self.path} has schema version {version}, newer than this agent's {SCHEMA_VERSION}; "
                f"upgrade the agent, or move the file aside to start a new outbox"
            )
        if version == 0 and self._has_foreign_tables(conn):
            raise OutboxError(
                f"outbox {self.path} is an SQLite database that edgeperf did not create; "
                f"point the agent at another outbox path or move the file aside"
            )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        for target in range(version + 1, SCHEMA_VERSION + 1):
            with self._tx() as tx:
                for statement in MIGRATIONS[target]:
                    tx.execute(statement)
                tx.execute(f"PRAGMA user_version = {target}")

    @staticmethod
    def _has_foreign_tables(conn: sqlite3.Connection) -> bool:
        return conn.execute("SELECT count(*) FROM sqlite_master WHERE name NOT LIKE 'sqlite_%'").fetchone()[0] > 0

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise OutboxError(f"outbox {self.path} is closed")
        return self._conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        """One write transaction; the caller holds ``self._lock`` (or is the constructor)."""
        conn = self._db()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    # -- results ---------------------------------------------------------------------------------

    def put(self, run_id: str, topic: str, payload: bytes, controller: str | None) -> None:
        """Store a result durably for ``controller``, the owner of its job (None: an owner this agent
        never learnt, as for entries made before owners were kept, which any fleet controller's ack
        deletes); a second put of the same run id keeps the first (a re-run must not replace it)."""
        if not isinstance(payload, bytes | bytearray | memoryview):
            raise TypeError(f"outbox payload must be bytes, not {type(payload).__name__}")
        with self._lock, self._tx() as tx:
            tx.execute(
                "INSERT OR IGNORE INTO outbox (run_id, topic, payload, created_at, controller) VALUES (?, ?, ?, ?, ?)",
                (run_id, topic, bytes(payload), self._clock(), controller),
            )

    def pending(self, older_than_s: float = 0.0, limit: int | None = None) -> list[OutboxEntry]:
        """Entries to publish: never sent, or last sent more than ``older_than_s`` ago; oldest first.

        An entry whose ``last_sent_at`` lies in the future is also due: the wall clock went back
        (NTP correcting a Pi that booted with a stale time), and waiting for it to catch up could
        hold a result back for hours.
        """
        now = self._clock()
        where, params = "last_sent_at IS NULL OR last_sent_at <= ? OR last_sent_at > ?", (now - older_than_s, now)
        return self._select(where, params, limit)

    def due(self, resend_after_s: float, max_backoff: int = 32) -> list[OutboxEntry]:
        """Entries to re-publish now, each backing off on its own: never sent, or last sent more than
        ``resend_after_s × 2^(attempts-1)`` ago (capped at ``max_backoff`` × ``resend_after_s``).

        A fixed re-send period turns one overflow into a storm: every agent re-sends everything at
        once, the controller's broker queue overflows again, and so on. Doubling the wait per entry
        spreads the retries out until the controller catches up. A clock that went back makes an
        entry due at once, as in ``pending``.
        """
        cap = max(int(max_backoff).bit_length() - 1, 0)
        now = self._clock()
        where = "last_sent_at IS NULL OR last_sent_at > ? OR last_sent_at <= ? - ? * (1 << min(max(attempts - 1, 0), ?))"
        return self._select(where, (now, now, resend_after_s, cap))

    def _select(self, where: str, params: tuple[Any, ...], limit: int | None = None) -> list[OutboxEntry]:
        """The entries matching ``where``, oldest first."""
        sql = f"SELECT run_id, topic, payload, created_at, last_sent_at, attempts FROM outbox WHERE {where} ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params += (limit,)
        with self._lock:
            rows = self._db().execute(sql, params).fetchall()
        return [OutboxEntry(r[0], r[1], bytes(r[2]), r[3], r[4], r[5]) for r in rows]

    def mark_sent(self, run_ids: Iterable[str]) -> None:
        """Record a publish attempt (now, attempts + 1) so ``due`` waits before resending."""
        now = self._clock()
        with self._lock, self._tx() as tx:
            tx.executemany(
                "UPDATE outbox SET last_sent_at = ?, attempts = attempts + 1 WHERE run_id = ?",
                ((now, run_id) for run_id in run_ids),
            )

    def ack(self, run_ids: Iterable[str], controller: str) -> int:
        """Delete the entries ``controller`` owns (or whose owner was never learnt) and has stored; returns
        how many went (unknown, repeated or another controller's ids count 0: a colleague's controller on
        the same broker cannot take them)."""
        with self._lock, self._tx() as tx:
            cursor = tx.executemany("DELETE FROM outbox WHERE run_id = ? AND (controller = ? OR controller IS NULL)",
                                    ((run_id, controller) for run_id in run_ids))
            return max(cursor.rowcount, 0)

    def __len__(self) -> int:
        """Results still waiting for an ack."""
        with self._lock:
            return self._db().execute("SELECT count(*) FROM outbox").fetchone()[0]

    # -- jobs seen -------------------------------------------------------------------------------

    def job_state(self, run_id: str) -> str | None:
        """The last recorded state of a job, or None if this agent has never seen it."""
        with self._lock:
            row = self._db().execute("SELECT state FROM jobs WHERE run_id = ?", (run_id,)).fetchone()
        return row[0] if row else None

    def job(self, run_id: str) -> dict | None:
        """The job document stored with the first ``set_job_state`` that gave one (to report or re-queue it)."""
        with self._lock:
            row = self._db().execute("SELECT job FROM jobs WHERE run_id = ?", (run_id,)).fetchone()
        return json.loads(row[0]) if row and row[0] is not None else None

    def set_job_state(self, run_id: str, state: str, job: dict | None = None) -> None:
        """Record a job's state; the job document is stored the first time one is given and never replaced."""
        if state not in JOB_STATES:
            raise ValueError(f"unknown job state {state!r}; expected one of {', '.join(JOB_STATES)}")
        doc = json.dumps(job, sort_keys=True) if job is not None else None
        now = self._clock()
        with self._lock, self._tx() as tx:
            tx.execute(
                "INSERT INTO jobs (run_id, state, job, created_at, updated_at) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (run_id) DO UPDATE SET state = excluded.state, updated_at = excluded.updated_at, "
                "job = COALESCE(jobs.job, excluded.job)",
                (run_id, state, doc, now, now),
            )

    def interrupted(self) -> list[str]:
        """Run ids left accepted or running: the agent died mid-job. Call once at start-up, before taking jobs."""
        marks = ", ".join("?" * len(UNFINISHED_STATES))
        with self._lock:
            rows = self._db().execute(f"SELECT run_id FROM jobs WHERE state IN ({marks}) ORDER BY seq", UNFINISHED_STATES)
            return [r[0] for r in rows.fetchall()]

    def forget_jobs_older_than(self, seconds: float) -> int:
        """Drop finished, failed and cancelled jobs not updated for ``seconds``; returns how many.

        Unfinished jobs are kept whatever their age: forgetting them would hide an interrupted job
        from ``interrupted()``.
        """
        marks = ", ".join("?" * len(UNFINISHED_STATES))
        cutoff = self._clock() - seconds
        with self._lock, self._tx() as tx:
            cursor = tx.execute(f"DELETE FROM jobs WHERE updated_at < ? AND state NOT IN ({marks})", (cutoff, *UNFINISHED_STATES))
            return cursor.rowcount

    # -- lifetime --------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the file (idempotent); later calls raise OutboxError."""
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
