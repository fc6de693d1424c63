"""The live view of a running campaign: one row per device, then what just happened."""

from __future__ import annotations

import time
from collections import Counter

from rich.console import Group
from rich.progress_bar import ProgressBar
from rich.table import Table
from rich.text import Text

from controller.fleet.scheduler import Fleet


def view(fleet: Fleet, campaign_id: str) -> Group:
    """Per-device progress of ``campaign_id`` as the fleet sees it now."""
    jobs = fleet.store.jobs(campaign_id)
    per_device: dict[str, Counter] = {}
    for job in jobs:
        per_device.setdefault(job.device_id, Counter())[job.state] += 1
    table = Table(title=f"campaign {campaign_id}", expand=False)
    for name in ("device", "state", "progress", "done", "failed", "now"):
        table.add_column(name)
    now = time.time()
    for device_id, counts in per_device.items():
        total = sum(counts.values())
        finished = counts["done"] + counts["failed"] + counts["cancelled"]
        device = fleet.devices.get(device_id)
        state = device.state if device else "unknown"
        doing = ""
        if device and device.phase:
            doing = f"{device.phase} {now - device.phase_since:4.1f}s {device.phase_details.get('key', '')}".strip()
        table.add_row(
            device_id,
            state,
            ProgressBar(total=total, completed=finished, width=24),
            f"{counts['done']}/{total}",
            str(counts["failed"]),
            doing,
        )
    notices = [Text(n, style="yellow") for n in fleet.notices[-4:]]
    c = fleet.counters
    footer = Text(f"results stored {c.results_stored}, duplicates {c.results_duplicate}, dropped {c.dropped}", style="dim")
    return Group(table, *notices, footer)
