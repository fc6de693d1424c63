"""The ``edgeperf`` console script: the controller CLI, or one line saying which extra it needs.

``controller.cli`` is built on typer and rich, which an agent-only install (``pip install
'edgeperf[agent,litert]'`` on a Pi) does not have; the script is installed anyway, so without this
shim ``edgeperf`` would greet that user with ``ModuleNotFoundError: No module named 'typer'``.
"""

from __future__ import annotations

import sys

# the modules the controller extra brings (pyproject.toml, [project.optional-dependencies] controller)
CONTROLLER_MODULES = {"typer", "rich", "yaml", "paho", "amqtt", "scipy"}


def main() -> None:
    try:
        from controller.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if (exc.name or "").split(".")[0] not in CONTROLLER_MODULES:
            raise
        print(f"edgeperf: error: the controller CLI needs {exc.name}, which this install lacks (an agent-only install?): "
              "pip install 'edgeperf[controller]'; on a device, edgeperf-agent is the command", file=sys.stderr)
        sys.exit(2)
    cli_main()


if __name__ == "__main__":
    main()
