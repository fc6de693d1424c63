"""``edgeperf`` run the way a user runs it: a child process, a wide terminal, stdout and stderr apart."""

from __future__ import annotations

import os
import subprocess
import sys


def edgeperf(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """The controller CLI in a child process; 250 columns so rich does not wrap table rows or errors."""
    return subprocess.run([sys.executable, "-c", "from controller.cli import main; main()", *args],
                          capture_output=True, text=True, timeout=timeout, env=os.environ | {"COLUMNS": "250"})


def one_error_line(proc: subprocess.CompletedProcess[str], code: int, *fragments: str) -> None:
    """The command failed with ``code`` and said why in exactly one ``error:`` line holding ``fragments``."""
    assert proc.returncode == code, proc.stderr + proc.stdout
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def edgeperf_in_process(*args: str) -> subprocess.CompletedProcess[str]:
    """The same typer app in this process: for commands whose imports (ONNX Runtime, torch) would cost a
    child process each time; the worker imports them once. Exit code, stdout and stderr as a child's."""
    from typer.testing import CliRunner

    from controller.cli import app

    done = CliRunner().invoke(app, list(args))
    return subprocess.CompletedProcess(list(args), done.exit_code, done.stdout, done.stderr)


def edgeperf_here(*args: str) -> subprocess.CompletedProcess[str]:
    """``controller.cli.main()`` itself in this process, as :func:`edgeperf` runs it in a child (its one-line
    usage errors, exit code, stdout and stderr apart, 250 columns), minus the child's interpreter start and
    imports. For commands that read or refuse (status, results, scorecards, bad flags); a command whose
    process is the subject (signals, crashes, a broker it serves) still gets :func:`edgeperf`."""
    import contextlib
    import io

    from controller.cli import main

    out, err = io.StringIO(), io.StringIO()
    saved_argv, saved_columns = sys.argv, os.environ.get("COLUMNS")
    sys.argv, os.environ["COLUMNS"] = ["edgeperf", *args], "250"
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            main()
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        sys.argv = saved_argv
        if saved_columns is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved_columns
    return subprocess.CompletedProcess(list(args), code, out.getvalue(), err.getvalue())
