"""The durable outbox: results survive SIGKILL, resends wait, acks delete exactly what they name."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
from pathlib import Path

import pytest

from agent.errors import EdgeperfError
from agent.outbox import SCHEMA_VERSION, Outbox, OutboxError


class Clock:
    """A wall clock the test moves by hand."""

    def __init__(self, now: float = 1_700_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def box(tmp_path: Path, clock: Clock):
    with Outbox(tmp_path / "state" / "outbox.sqlite", clock=clock) as outbox:
        yield outbox


def test_entries_put_just_before_sigkill_are_there_after_restart(tmp_path):
    path = tmp_path / "deep" / "dir" / "outbox.sqlite"  # parent directories do not exist yet
    child = textwrap.dedent(
        f"""
        import os, signal, sys
        from agent.outbox import Outbox
        box = Outbox({str(path)!r})
        for i in range(25):
            box.put(f"run-{{i}}", "edgeperf/v1/devices/pi/results", b"result %d" % i, "ctl")
        box.set_job_state("run-25", "running", {{"run_id": "run-25"}})
        print("ok", flush=True)
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, timeout=60)
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert proc.stdout.strip() == "ok"

    with Outbox(path) as box:
        entries = box.pending()
        assert [e.run_id for e in entries] == [f"run-{i}" for i in range(25)]
        assert [e.payload for e in entries] == [b"result %d" % i for i in range(25)]
        assert all(e.attempts == 0 and e.last_sent_at is None for e in entries)
        assert box.interrupted() == ["run-25"]
        assert box.job("run-25") == {"run_id": "run-25"}


def test_put_is_idempotent_by_run_id_and_keeps_the_first(box, clock):
    box.put("r1", "t/results", b"first", "ctl")
    clock.now += 5
    box.put("r1", "t/other", b"second", "ctl")
    assert len(box) == 1
    (entry,) = box.pending()
    assert (entry.topic, entry.payload, entry.created_at) == ("t/results", b"first", clock.now - 5)


def test_payload_must_be_bytes(box):
    with pytest.raises(TypeError, match="bytes"):
        box.put("r1", "t", "a string", "ctl")  # type: ignore[arg-type]
    assert len(box) == 0


def test_pending_waits_older_than_s_before_resending(box, clock):
    for run_id in ("a", "b", "c"):
        box.put(run_id, "t", run_id.encode(), "ctl")
        clock.now += 1
    assert [e.run_id for e in box.pending(older_than_s=30)] == ["a", "b", "c"]  # never sent: always due
    assert [e.run_id for e in box.pending(limit=2)] == ["a", "b"]

    box.mark_sent(["a", "b"])
    assert [e.run_id for e in box.pending(older_than_s=30)] == ["c"]
    clock.now += 29
    assert [e.run_id for e in box.pending(older_than_s=30)] == ["c"]
    clock.now += 2
    due = box.pending(older_than_s=30)
    assert [e.run_id for e in due] == ["a", "b", "c"]
    assert [(e.attempts, e.last_sent_at) for e in due[:2]] == [(1, clock.now - 31)] * 2

    box.mark_sent(["a"])
    (a,) = [e for e in box.pending() if e.run_id == "a"]
    assert (a.attempts, a.last_sent_at) == (2, clock.now)


def test_a_clock_that_went_back_does_not_hold_results(box, clock):
    box.put("a", "t", b"x", "ctl")
    box.mark_sent(["a"])
    clock.now -= 3600  # NTP corrected a clock that was an hour fast
    assert [e.run_id for e in box.pending(older_than_s=30)] == ["a"]


def test_ack_deletes_exactly_the_named_entries_of_their_owner(box):
    for run_id in ("a", "b", "c", "d"):
        box.put(run_id, "t", b"x", "ctl")
    box.put("e", "t", b"x", None)  # an owner never learnt (an entry from an older agent): any controller's ack
    assert box.ack(["b", "d", "unknown", "b"], "ctl") == 2
    assert [e.run_id for e in box.pending()] == ["a", "c", "e"]
    assert box.ack(["a", "c"], "another-controller") == 0  # a colleague's controller on the same broker
    assert len(box) == 3
    assert box.ack([], "ctl") == 0
    assert box.ack(["b"], "ctl") == 0
    assert box.ack(iter(["a", "c"]), "ctl") == 2
    assert box.ack(["e"], "another-controller") == 1
    assert len(box) == 0


def test_job_states_and_interrupted_jobs(box, clock):
    assert box.job_state("r1") is None
    box.set_job_state("r1", "accepted", {"run_id": "r1", "scenario": "offline"})
    box.set_job_state("r2", "accepted", {"run_id": "r2"})
    box.set_job_state("r2", "running", {"run_id": "r2", "changed": True})
    box.set_job_state("r3", "accepted")
    box.set_job_state("r3", "finished")
    box.set_job_state("r4", "failed")
    assert [box.job_state(r) for r in ("r1", "r2", "r3", "r4")] == ["accepted", "running", "finished", "failed"]
    assert box.interrupted() == ["r1", "r2"]
    assert box.job("r2") == {"run_id": "r2"}  # stored once: the first document given
    assert box.job("r3") is None
    with pytest.raises(ValueError, match="unknown job state"):
        box.set_job_state("r1", "done")

    box.set_job_state("r1", "cancelled")
    assert box.interrupted() == ["r2"]


def test_forget_jobs_older_than_keeps_recent_and_unfinished_jobs(box, clock):
    box.set_job_state("old-done", "finished")
    box.set_job_state("old-running", "running")
    clock.now += 100
    box.set_job_state("new-done", "failed")
    clock.now += 10
    assert box.forget_jobs_older_than(50) == 1
    assert box.job_state("old-done") is None
    assert box.job_state("old-running") == "running"
    assert box.job_state("new-done") == "failed"


def test_puts_from_eight_threads_are_all_stored(box):
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def worker(n: int) -> None:
        try:
            barrier.wait()
            for i in range(40):
                box.put(f"t{n}-{i}", "t", b"%d" % i, "ctl")
                if i % 10 == 0:
                    box.pending(limit=5)
        except BaseException as exc:  # surfaced below: a thread's exception would otherwise vanish
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(box) == 320
    assert {e.run_id for e in box.pending()} == {f"t{n}-{i}" for n in range(8) for i in range(40)}


def test_a_file_that_is_not_sqlite_raises_a_one_line_error_and_is_left_alone(tmp_path):
    path = tmp_path / "outbox.sqlite"
    garbage = b"this is not a database\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(OutboxError) as info:
        Outbox(path)
    message = str(info.value)
    assert isinstance(info.value, EdgeperfError)
    assert str(path) in message and "move it aside" in message and "\n" not in message
    assert path.read_bytes() == garbage


def test_a_foreign_sqlite_database_is_refused(tmp_path):
    path = tmp_path / "results.db"
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE results (id INTEGER)")
    conn.close()
    with pytest.raises(OutboxError, match="did not create"):
        Outbox(path)


def test_a_version_1_outbox_is_migrated_and_its_entries_can_still_be_acked(tmp_path):
    from agent.outbox import MIGRATIONS

    path = tmp_path / "old.sqlite"
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[1]:
        conn.execute(statement)
    conn.execute("INSERT INTO outbox (run_id, topic, payload, created_at) VALUES ('old', 't', x'00', 0)")
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    with Outbox(path) as box:
        assert [e.run_id for e in box.pending()] == ["old"]
        assert box.ack(["old"], "any-controller") == 1


def test_schema_version_is_recorded_and_a_newer_file_is_refused(tmp_path):
    path = tmp_path / "outbox.sqlite"
    Outbox(path).close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(OutboxError, match="newer than this agent"):
        Outbox(path)


def test_reopening_keeps_entries_and_a_closed_outbox_says_so(tmp_path):
    path = tmp_path / "outbox.sqlite"
    box = Outbox(path)
    box.put("a", "t", b"x", "ctl")
    box.mark_sent(["a"])
    box.close()
    box.close()
    with pytest.raises(OutboxError, match="closed"):
        box.put("b", "t", b"y", "ctl")
    with Outbox(path) as again:
        (entry,) = again.pending()
        assert (entry.run_id, entry.attempts) == ("a", 1)


def test_due_backs_off_per_entry(tmp_path):
    """Re-sends double their wait per attempt, so one overflow does not become a re-send storm."""
    now = [1000.0]
    with Outbox(tmp_path / "o.sqlite", clock=lambda: now[0]) as outbox:
        outbox.put("a", "t", b"1", "ctl")
        assert [e.run_id for e in outbox.due(10)] == ["a"]  # never sent
        outbox.mark_sent(["a"])  # attempt 1 at t=1000
        now[0] = 1009.0
        assert outbox.due(10) == []
        now[0] = 1010.0
        assert [e.run_id for e in outbox.due(10)] == ["a"]
        outbox.mark_sent(["a"])  # attempt 2 at t=1010: next after 20 s
        now[0] = 1029.0
        assert outbox.due(10) == []
        now[0] = 1030.0
        assert [e.run_id for e in outbox.due(10)] == ["a"]
        for _ in range(10):  # many attempts: the wait stops growing at 32 x
            outbox.mark_sent(["a"])
        now[0] += 319.0
        assert outbox.due(10) == []
        now[0] += 1.0
        assert [e.run_id for e in outbox.due(10)] == ["a"]
        now[0] -= 3600.0  # the clock went back: due at once rather than hours late
        assert [e.run_id for e in outbox.due(10)] == ["a"]
