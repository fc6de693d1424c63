"""What every ``edgeperf`` command module shares: the consoles, one-line errors, common options.

Sub-apps (``certs``, ``fleet``) live in their own modules and import this one, never ``cli.py``,
which imports them to mount them.
"""

from __future__ import annotations

import functools
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
