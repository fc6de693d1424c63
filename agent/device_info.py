"""The facts an agent announces in its ``info`` message, gathered in a child process.

Probing the device loads what the idle daemon otherwise never needs — NVML through ctypes,
pyserial's port scan, package metadata — and a broken GPU driver can take down the process that
asks. So the daemon asks a child (``python -m agent.device_info``; pyperf's habit of collecting
metadata in a process of its own) and keeps only the checked answer: the idle agent stays small
(``benchmarks/contract.py`` measures it), and a crashing probe costs an empty facts block, not
the agent.
"""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import msgspec

from agent import contract

log = logging.getLogger("edgeperf.agent")
TIMEOUT_S = 60.0


def gather() -> dict[str, Any]:
    """Device facts, installed runtimes and power sources of this machine (in the child)."""
    from agent import capabilities
    from devices import power, probe

    return {"facts": probe.collect(), "installed": capabilities.installed(),
            "power_sources": [a.__dict__ for a in power.survey()]}


def collect(agent_version: str, tags: tuple[str, ...], max_payload_bytes: int) -> contract.Info:
    """The ``info`` body: what the child found, checked by the contract; without facts if it failed."""
    base = {"agent_version": agent_version, "tags": list(tags), "max_payload_bytes": max_payload_bytes}
    try:
        proc = subprocess.run([sys.executable, "-m", "agent.device_info"], capture_output=True, timeout=TIMEOUT_S)
        if proc.returncode != 0:
            raise RuntimeError(f"exit {proc.returncode}: {proc.stderr.decode(errors='replace').strip()[-500:]}")
        return contract.convert("info", msgspec.json.decode(proc.stdout) | base)
    except (OSError, subprocess.TimeoutExpired, RuntimeError, msgspec.DecodeError, TypeError, contract.ProtocolError) as exc:
        log.warning("could not gather this device's facts (announcing none): %s", exc)
        return contract.convert("info", base)


if __name__ == "__main__":
    sys.stdout.buffer.write(msgspec.json.encode(gather()))
