"""One phone job in a child process: ``python -m agent.android.worker --job J --model M --out R --serial S …``.

The same contract as ``agent.worker`` (progress as JSON lines on stdout, the result document in
``--out``, a user's mistake as one ``error: …`` line and its exit code), plus one more kind of
line: a fault of the moment — the phone unplugged or unreachable mid-run — is ``retryable: …``,
so the bridge fails the job with that reason and the controller may run it again once the phone
is back, rather than counting it as a job that can never run.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from agent import contract, result
from agent.android.adb import Adb, PhoneError
from agent.android.phone_job import Phone, run
from agent.android.tool_output import CutOff
from agent.android.tools import Toolbox
from agent.errors import EXIT_UNREACHABLE, EdgeperfError
from agent.worker import progress


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="agent.android.worker")
    parser.add_argument("--job", type=Path, required=True)
    parser.add_argument("--model", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--serial", required=True)
    parser.add_argument("--adb", default="adb")
    parser.add_argument("--storage", type=Path, required=True)
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--tools", type=Path)
    parser.add_argument("--phone-tools")
    args = parser.parse_args(argv)
    job = contract.decode_body("job", args.job.read_bytes())  # written by the bridge from a checked job
    phone = Phone(Adb(args.serial, args.adb), args.storage, Toolbox(args.tools, args.phone_tools), args.device_id)
    try:
        doc = run(phone, job, args.model, progress)
    except (CutOff, PhoneError) as exc:
        print(f"retryable: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    except EdgeperfError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    result.write(doc, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
