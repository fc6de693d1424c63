"""LoadGen's own latencies, streamed out of its trace through a named pipe into a histogram.

LoadGen's Python API hands back no per-sample latencies; its trace (``mlperf_log_trace.json``)
is the only place they appear: one "Sample" event per sample whose ``complete_ns`` is the
latency LoadGen's summary is computed from (from the query's scheduled or issue time; a
MultiStream query's latency is its slowest sample's). At ~650 bytes a sample a long run's trace
would be tens of GB, so it is never written to disk: the trace path is a FIFO, read by a child
process (a thread would hold the GIL while parsing and stall the SUT callback) that bins the
latencies chunk by chunk and prints only the histogram at EOF. Its memory does not grow with
the run.

The pipe must not block LoadGen: the parent holds a write end from before LoadGen opens the
trace until the run is over, so the child's ``open`` returns even when LoadGen never opens it and
its EOF comes when the parent lets go; a child that dies is replaced by a drain that discards the
rest, and its death is reported once the run has ended; one that does not finish after EOF is
killed after a timeout. (A child that stays alive but stops reading stalls LoadGen's log thread:
nothing here can tell it from a slow one.)

    python -m agent.scenarios.loadgen_trace FIFO QUERY_SAMPLES   (the child; run by TraceReader)
"""

from __future__ import annotations

import errno
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

from agent.errors import EdgeperfError
from agent.stats import LatencyHistogram

TRACE_FILE = "mlperf_log_trace.json"
# LoadGen's "Sample" begin event (the only event with these fields, one per sample)
_SAMPLE = re.compile(rb'"query_seq":(\d+),"sample_idx":\d+,"issue_start_ns":\d+,"complete_ns":(\d+)')
_CHUNK = 1 << 20  # bytes per regex pass (~1.6 k samples): 4 MiB parses ~5 % faster but peaks 13 MB higher
_POWERS = 10 ** np.arange(19, dtype=np.int64)
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])  # the child imports this copy of agent, wherever it was found


class TraceError(EdgeperfError):
    """LoadGen's trace could not be read, so the run has no latencies of LoadGen's to report."""


@dataclass(frozen=True)
class Traced:
    """What the trace held: the metric's latencies binned, and how many samples it saw."""

    histogram: LatencyHistogram
    samples: int


def bucket_array_ns(latencies_ns: np.ndarray, digits: int = 3) -> np.ndarray:
    """``agent.stats.bucket_ns`` over a whole array at numpy speed, ties rounded half to even as it does."""
    values = np.maximum(np.asarray(latencies_ns, dtype=np.int64), 0)
    scale = _POWERS[np.maximum(np.searchsorted(_POWERS, values, side="right") - digits, 0)]
    kept, rest = np.divmod(values, scale)
    up = (2 * rest > scale) | ((2 * rest == scale) & (kept % 2 == 1))
    return (kept + up) * scale


def _close_queries(open_rows: np.ndarray, pairs: np.ndarray, query_samples: int, final: bool) -> tuple[np.ndarray, np.ndarray]:
    """Fold (query_seq, latency) pairs into per-query rows (seq, slowest, samples seen).

    Returns the latencies of the queries now complete (all at EOF, when a short last query of
    accuracy mode is complete too) and the rows still waiting for samples.
    """
    rows = np.concatenate([open_rows, np.column_stack([pairs, np.ones(len(pairs), dtype=np.int64)])])
    if not len(rows):
        return rows[:, 1], rows
    rows = rows[np.argsort(rows[:, 0], kind="stable")]
    starts = np.flatnonzero(np.r_[True, rows[1:, 0] != rows[:-1, 0]])
    merged = np.column_stack([rows[starts, 0], np.maximum.reduceat(rows[:, 1], starts), np.add.reduceat(rows[:, 2], starts)])
    done = np.ones(len(merged), dtype=bool) if final else merged[:, 2] >= query_samples
    return merged[done, 1], merged[~done]


def read_histogram(stream: BinaryIO, query_samples: int = 0) -> tuple[Counter, int]:
    """Bucket counts and sample count of every Sample event in a trace stream, read to EOF.

    ``query_samples`` > 0 bins per query (MultiStream's metric: the slowest of its samples);
    0 bins per sample. Events split across chunks are completed from the next one.
    """
    counts: Counter = Counter()
    samples, tail = 0, b""
    open_rows = np.empty((0, 3), dtype=np.int64)
    while True:
        block = stream.read(_CHUNK)
        data = tail + block
        cut = data.rfind(b"\n") + 1 if block else len(data)
        pairs = np.array(_SAMPLE.findall(data, 0, cut), dtype=np.int64).reshape(-1, 2)
        samples += len(pairs)
        latencies = pairs[:, 1]
        if query_samples:
            latencies, open_rows = _close_queries(open_rows, pairs, query_samples, final=not block)
        buckets, seen = np.unique(bucket_array_ns(latencies), return_counts=True)
        counts.update(dict(zip(buckets.tolist(), seen.tolist(), strict=True)))
        if not block:
            return counts, samples
        tail = data[cut:]


class TraceReader:
    """A FIFO at ``log_dir/mlperf_log_trace.json`` and the child process binning what LoadGen writes to it.

    Use as a context manager around the LoadGen run and call ``finish`` after it; leaving the
    block always ends the child and removes the FIFO.
    """

    def __init__(self, log_dir: Path, query_samples: int = 0, start_timeout_s: float = 60.0) -> None:
        self.path = log_dir / TRACE_FILE
        self.query_samples = query_samples
        self.start_timeout_s = start_timeout_s  # the child's interpreter and numpy import (slow on a Pi Zero)
        self._writer: int | None = None
        self._finishing = threading.Event()
        self._child: subprocess.Popen[bytes] | None = None
        self._watcher: threading.Thread | None = None
        self._out, self._err = b"", b""

    def __enter__(self) -> TraceReader:
        self.path.unlink(missing_ok=True)
        try:
            os.mkfifo(self.path)
        except OSError as exc:
            raise TraceError(f"cannot make LoadGen's trace a named pipe at {self.path} ({exc}); "
                             "use a --log-dir on a local file system, or --engine native") from None
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        env = os.environ | {"PYTHONPATH": os.pathsep.join(filter(None, [_PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
        self._child = subprocess.Popen(
            [sys.executable, "-m", __name__, str(self.path), str(self.query_samples)],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env,
        )
        deadline = time.monotonic() + self.start_timeout_s
        while self._writer is None:  # succeeds once the child waits in open(): then LoadGen's open cannot block
            try:
                self._writer = os.open(self.path, os.O_WRONLY | os.O_NONBLOCK)
            except OSError as exc:
                if exc.errno != errno.ENXIO:
                    raise
                if self._child.poll() is not None:
                    raise TraceError(f"LoadGen's trace reader exited before the run: {self._last_words()}") from None
                if time.monotonic() > deadline:
                    raise TraceError(f"LoadGen's trace reader did not start within {self.start_timeout_s:g} s") from None
                time.sleep(0.005)
        self._watcher = threading.Thread(target=self._watch, name="loadgen-trace-watch", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        """Collect the child's output; if it dies while LoadGen may still write, drain the FIFO in its place."""
        assert self._child is not None
        self._out, self._err = self._child.communicate()
        if self._finishing.is_set():
            return
        try:  # non-blocking open: with no writer left, the first read is EOF instead of a wait
            fd = os.open(self.path, os.O_RDONLY | os.O_NONBLOCK)
        except OSError:
            return
        os.set_blocking(fd, True)
        try:
            while os.read(fd, 1 << 16):
                pass
        finally:
            os.close(fd)

    def _last_words(self) -> str:
        assert self._child is not None
        if self._watcher is None:
            self._out, self._err = self._child.communicate()
        lines = self._err.decode(errors="replace").strip().splitlines()
        return f"exit status {self._child.returncode}" + (f", {lines[-1]}" if lines else "")

    def _close_writer(self) -> None:
        if self._writer is not None:
            os.close(self._writer)
            self._writer = None

    def finish(self, timeout_s: float = 60.0) -> Traced:
        """Signal EOF (LoadGen has closed its end by now) and return what the child binned."""
        self._finishing.set()
        self._close_writer()
        assert self._watcher is not None and self._child is not None
        self._watcher.join(timeout_s)
        if self._watcher.is_alive():
            raise TraceError(f"LoadGen's trace reader did not finish within {timeout_s:g} s of the run's end; "
                             "rerun, or use --engine native")
        if self._child.returncode != 0 or not self._out:
            raise TraceError(f"LoadGen's trace reader failed ({self._last_words()}); rerun, or use --engine native")
        doc = json.loads(self._out)
        return Traced(LatencyHistogram(Counter({int(k): v for k, v in doc["counts"].items()})), doc["samples"])

    def __exit__(self, *exc_info: object) -> None:
        self._finishing.set()
        self._close_writer()
        if self._child is not None and self._child.poll() is None:
            self._child.kill()
        if self._watcher is not None:
            self._watcher.join()
        elif self._child is not None:
            self._child.communicate()
        self.path.unlink(missing_ok=True)


def main(argv: list[str]) -> None:
    """The child: bin the trace arriving at the FIFO ``argv[0]`` and print the histogram as JSON at EOF."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it ends this process
    path, query_samples = argv
    with open(path, "rb") as pipe:
        counts, samples = read_histogram(pipe, int(query_samples))
    json.dump({"samples": samples, "counts": {str(k): v for k, v in counts.items()}}, sys.stdout)


if __name__ == "__main__":
    main(sys.argv[1:])
