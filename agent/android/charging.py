"""USB charging suspended on the phone for a measured window, and restored — even after a failure.

A phone on a USB cable is charging: its battery current is the charger's minus the phone's
draw, and says nothing about the inference. For the gauge to measure the phone, the battery must
power it alone. Android has no public switch for that; the kernels' power_supply drivers expose
a node (``CONTROLS``: Qualcomm's ``input_suspend``, older ``charging_enabled``/
``battery_charging_enabled``, Samsung's ``store_mode``), writable by the shell user only on some
builds (engineering builds, or a lab's udev-style rule); a production phone answers "Permission
denied". A phone already on battery (adb over Wi-Fi, no cable) needs nothing.

What was changed is written to the bridge's storage before it is changed (``PENDING``), so a run
cut off mid-window (the phone unplugged, the worker killed) is restored by the bridge the next
time it sees the phone (``restore_pending``).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

from agent.android.adb import Adb, PhoneError
from agent.android.gauge import BATTERY
from agent.errors import EdgeperfError

# node under the battery's power_supply folder -> (value that suspends charging, value that resumes it)
CONTROLS = {"input_suspend": ("1", "0"), "charging_enabled": ("0", "1"), "battery_charging_enabled": ("0", "1"),
            "store_mode": ("1", "0")}
PENDING = "charging-suspended.json"
ON_BATTERY = ("Discharging", "Not charging")
SETTLE_S = 3.0


class ChargingRefused(EdgeperfError):
    """The phone is charging and will not stop for the measured window: its energy cannot be measured."""


@dataclass(frozen=True)
class Suspension:
    """How the battery came to power the phone alone: ``node`` written (None: it already did), and how."""

    node: str | None
    resume: str | None
    how: str


def _status(adb: Adb, battery: str) -> str:
    out, code = adb.shell(f"cat {battery}/status", "read the battery status")
    return out.strip() if code == 0 else ""


def suspend(adb: Adb, storage: Path, battery: str = BATTERY) -> Suspension:
    """Make the battery power the phone alone, or ``ChargingRefused`` saying why it cannot and what to do."""
    status = _status(adb, battery)
    if status == "Discharging":
        return Suspension(None, None, "on battery (the phone was not charging)")
    tried = []
    for name, (off, on) in CONTROLS.items():
        node = f"{battery}/{name}"
        current, code = adb.shell(f"cat {node}", f"read {name}")
        if code != 0:
            continue  # this kernel has no such node
        (storage / PENDING).write_text(json.dumps({"node": node, "resume": current.strip() or on}))
        said, code = adb.shell(f"echo {off} > {node}", f"suspend charging ({name})")
        if code != 0:
            (storage / PENDING).unlink(missing_ok=True)
            tried.append(f"{name}: {said.strip().splitlines()[-1][:160] if said.strip() else f'exit {code}'}")
            continue
        deadline = time.monotonic() + SETTLE_S
        while (status := _status(adb, battery)) not in ON_BATTERY and time.monotonic() < deadline:
            time.sleep(0.2)
        if status in ON_BATTERY:
            return Suspension(node, current.strip() or on, f"charging suspended ({name}={off})")
        restore(adb, Suspension(node, current.strip() or on, ""), storage)
        tried.append(f"{name}: written, but the battery stayed {status or 'unreadable'}")
    found = "; ".join(tried) if tried else f"no charging-control node under {battery} ({', '.join(CONTROLS)})"
    raise ChargingRefused(f"phone {adb.serial} refuses to suspend charging ({found}), so the gauge would measure the "
                          "charger, not the phone: run it on battery (adb over Wi-Fi, cable out), give the shell write "
                          "access to the node (an engineering or rooted build), or drop power: for phone jobs")


def restore(adb: Adb, suspension: Suspension, storage: Path) -> None:
    """Put the node back as it was; the pending record is kept when the phone cannot be reached."""
    if suspension.node is None:
        return
    said, code = adb.shell(f"echo {suspension.resume} > {suspension.node}", "resume charging")
    if code != 0:
        raise PhoneError(f"phone {adb.serial}: could not resume charging ({said.strip()[:160]}); write "
                         f"{suspension.resume} to {suspension.node} by hand")
    (storage / PENDING).unlink(missing_ok=True)


def restore_pending(adb: Adb, storage: Path) -> str | None:
    """Resume charging a cut-off run left suspended; what was done, or None when nothing was pending."""
    path = storage / PENDING
    try:
        pending = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    restore(adb, Suspension(str(pending["node"]), str(pending["resume"]), ""), storage)
    return f"resumed charging on {adb.serial} ({pending['node']} = {pending['resume']}), left suspended by a cut-off run"
