"""What every ``edgeperf`` command module shares: the consoles, one-line errors, common options.

Sub-apps (``certs``, ``fleet``) live in their own modules and import this one, never ``cli.py``,
which imports them to mount them.
"""

from __future__ import annotations

import functools
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from agent.errors import EdgeperfError

console = Console(soft_wrap=True)  # a path or a command printed for copying is never broken across lines
err_console = Console(stderr=True, soft_wrap=True)
F = TypeVar("F", bound=Callable[..., Any])

Broker = Annotated[str, typer.Option("--broker", envvar="EDGEPERF_BROKER", help="mqtt[s]://[user@]host[:port]")]
Db = Annotated[
    Path | None,
    typer.Option("--db", envvar="EDGEPERF_DB", help="results database [default: ~/.local/share/edgeperf/controller.db]"),
]
AsJson = Annotated[bool, typer.Option("--json", help="machine-readable output")]
Kind = Annotated[str, typer.Option("--kind", help="what 'latest' names: the newest fleet campaign, or the newest baseline")]
KINDS = ("fleet", "baseline")
Username = Annotated[str | None, typer.Option(help="broker user (password: $EDGEPERF_PASSWORD)")]
CaFile = Annotated[Path | None, typer.Option(help="CA bundle for mqtts://")]
CertFile = Annotated[Path | None, typer.Option(help="client certificate for mutual TLS")]
KeyFile = Annotated[Path | None, typer.Option(help="client key for mutual TLS")]
MqttVersion = Annotated[str, typer.Option(help="3.1.1 or 5")]
FleetKey = Annotated[Path | None, typer.Option("--fleet-key", envvar="EDGEPERF_FLEET_KEY_FILE",
                                              help="the fleet key that signs every message (default "
                                                   "~/.local/share/edgeperf/fleet.key, created on first use)")]
Prefix = Annotated[str, typer.Option(help="topic prefix, as the agents' --prefix")]
ArtifactHost = Annotated[str, typer.Option(help="address the artifact server binds")]
ArtifactPort = Annotated[int, typer.Option(help="artifact server port (0: any free port)")]
ArtifactUrlHost = Annotated[str | None, typer.Option("--artifact-advertise", help="host name agents use to reach it")]
PkiDir = Annotated[Path, typer.Option("--pki", help="the PKI folder made by 'edgeperf certs init'")]


def check_seconds(value: float, flag: str, high: float = 3600.0) -> None:
    """A wait in seconds is finite and in [0, high]: NaN slips through every comparison (and then
    ``time.sleep`` raises), infinity waits forever."""
    if not (math.isfinite(value) and 0 <= value <= high):
        raise EdgeperfError(f"{flag} {value:g} is out of range; give 0 to {high:g} seconds")


def check_output(path: Path | None, flag: str = "-o", example: str = "report.html") -> None:
    """Refuse an output file that cannot be written before any work is done: a report built for
    minutes must not end in a traceback because its folder does not exist. ``example`` is the file
    name suggested when ``path`` is a folder."""
    if path is None:
        return
    folder = path.parent
    if path.is_dir():
        raise EdgeperfError(f"{flag} {path} is a folder; give a file name in it, e.g. {path / example}")
    if folder.exists() and not folder.is_dir():
        raise EdgeperfError(f"{flag} {path}: {folder} is a file, not a folder; write elsewhere")
    if not folder.is_dir():
        raise EdgeperfError(f"{flag} {path}: folder {folder} does not exist; create it (mkdir -p {folder}) or write elsewhere")
    if not os.access(folder, os.W_OK):
        raise EdgeperfError(f"{flag} {path}: folder {folder} is not writable; write elsewhere")


def write_output(path: Path, text: str, flag: str = "-o") -> None:
    """Write ``text`` to ``path``, checked up front; a failure while writing (disk full) is one line too."""
    try:
        path.write_text(text)
    except OSError as exc:
        raise EdgeperfError(f"cannot write {flag} {path}: {exc.strerror}") from None


def cli_errors(fn: F) -> F:
    """User errors become one red line and their exit code; Ctrl-C exits 130."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EdgeperfError as exc:
            err_console.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            err_console.print("interrupted")
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]
