"""One job in a child process: ``python -m agent.worker --job J --model M --out R --log-dir D``.

pyperf's lesson: a delegate that segfaults or a model that exhausts memory must cost one failed
run, not the agent. The child also makes peak RSS a per-job number. Progress goes to stdout as
JSON lines; a user-fixable error is one ``error: ...`` line on stderr and exit 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from agent import bench, contract, result
from agent.errors import EdgeperfError
from agent.jobs import request_from_job


def progress(phase: str, details: dict[str, Any]) -> None:
    """A phase of the job, as the JSON line the daemon reads from a worker's stdout."""
    print(json.dumps({"phase": phase} | details), flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent.worker")
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--log-dir", type=Path, required=True)
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--threads", type=int)
    args = parser.parse_args(argv)
    job = contract.decode_body("job", args.job.read_bytes())  # written by the daemon from a checked job
    try:
        doc = bench.run(request_from_job(job, args.model, args.log_dir, args.device_id, args.threads), progress)
    except EdgeperfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    doc["job"] = {"campaign": job.campaign, "key": job.key, "attempt": job.attempt}
    result.write(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
