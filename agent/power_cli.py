"""``edgeperf-agent power list|sample``: what can measure this device, and what it reads now."""

from __future__ import annotations

import json
import statistics
import sys
import time

from agent.energy_meter import auto_order
from agent.result_text import table
from devices import power, probe, profiles


def list_sources(as_json: bool) -> int:
    """Every source, whether it works here and why, and the one ``auto`` would take."""
    facts = probe.collect()
    order = auto_order(facts)
    rows = power.survey()
    usable = {r.name for r in rows if r.available}
    chosen = next((name for name in order if name in usable), None)
    profile = profiles.match(facts)
    if as_json:
        print(json.dumps({"profile": profile.name if profile else None, "auto": chosen, "auto_order": list(order),
                          "sources": [r.__dict__ for r in rows]}, indent=2))
        return 0
    lines = [(r.name + (" (auto)" if r.name == chosen else ""), ("yes  " if r.available else "no   ") + r.reason) for r in rows]
    lines.append(("profile", f"{profile.name}: {profile.title}" if profile else "none matches this board"))
    lines.append(("auto order", " > ".join(order)))
    print(table(lines), end="")
    return 0


def sample(spec: str, seconds: float) -> int:
    """Print readings twice a second for ``seconds``, then the achieved rate and statistics."""
    monitor = power.open_source(spec, auto_order(probe.collect()))
    info = monitor.info
    print(f"{info.source}: {info.rail} ({'measured' if info.measured else 'ESTIMATED'}, nominal {info.nominal_hz:g} Hz)")
    monitor.start()
    start, shown = time.monotonic(), 0
    try:
        while time.monotonic() - start < seconds:
            time.sleep(0.5)
            samples = monitor.samples()
            fresh = [s for s in samples[shown:] if s.watts is not None]
            shown = len(samples)
            if fresh:
                last = fresh[-1]
                volts = f"  {last.volts:.3f} V" if last.volts is not None else ""
                amps = f"  {last.amps:.4f} A" if last.amps is not None else ""
                print(f"{time.monotonic() - start:6.1f} s  {last.watts:8.3f} W{volts}{amps}  ({len(fresh)} new)")
    finally:
        samples = monitor.stop()
        monitor.close()
    watts = [s.watts for s in samples if s.watts is not None and s.valid]
    elapsed = time.monotonic() - start
    print(f"{len(samples)} samples in {elapsed:.1f} s = {len(samples) / elapsed:.1f} Hz achieved "
          f"(nominal {info.nominal_hz:g} Hz); {len(samples) - len(watts)} flagged or power-less")
    if watts:
        print(f"power W: mean {statistics.fmean(watts):.3f}  min {min(watts):.3f}  max {max(watts):.3f}"
              + (f"  stdev {statistics.stdev(watts):.3f}" if len(watts) > 1 else ""))
    if monitor.error:
        print(f"warning: {monitor.error}", file=sys.stderr)
    return 0
