"""``edgeperf``: the controller CLI. Thin typer commands over the controller library."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from agent import result, zoo
from agent.errors import EdgeperfError
from controller import demo as demo_lib
from controller import tables

app = typer.Typer(add_completion=False, no_args_is_help=True, help="Benchmark edge AI fleets under MLPerf LoadGen rules.")
console = Console()
err_console = Console(stderr=True)


@app.command()
def demo(
    json_out: Annotated[Path | None, typer.Option("--json", help="write every result document to this file")] = None,
    threads: Annotated[int, typer.Option(help="runtime threads")] = 1,
    engine: Annotated[str, typer.Option(help="auto | loadgen | native")] = "auto",
) -> None:
    """Run the zoo's reference models on this machine, offline, and print the scorecard."""
    try:
        with console.status("running") as status:
            def show(r: demo_lib.bench.BenchRequest) -> None:
                status.update(f"{r.model} {r.settings.scenario.value} {r.settings.mode.value}")

            results = demo_lib.run(threads, engine, show)
    except EdgeperfError as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(exc.exit_code) from None
    console.print(tables.scorecard(results, title="edgeperf demo: Fashion-MNIST CNN on this machine"))
    if json_out:
        json_out.write_text(json.dumps([json.loads(result.dumps(r)) for r in results], indent=2) + "\n")
        console.print(f"results: {json_out}")


@app.command("zoo")
def zoo_list() -> None:
    """List the reference models and their measured accuracy."""
    for entry in zoo.entries():
        acc = entry.facts["accuracy"].get("subset_top1")
        console.print(f"{zoo.PREFIX}{entry.name:<30} {entry.facts['precision']:<6} {entry.facts['size_bytes'] / 1024:7.1f} KiB  "
                      f"top-1 {acc if acc is not None else 'n/a (predicts on macOS only)'}")


def main() -> None:
    sys.exit(app())
