"""The phone's fuel-gauge readings as the sampling loop writes them, and the energy block made of them."""

from __future__ import annotations

import http.server
import json
import threading

import pytest

from agent import contract
from agent.android import gauge, tools
from agent.errors import SettingsError
from agent.model_file import sha256_of


def _loop_output(t0: float, seconds: float, period_s: float, gauge_hz: float, amps, volts: float = 3.85) -> str:
    """What the loop writes: a time line and the two gauge lines per pass; the gauge itself changes only
    ``gauge_hz`` times a second (``amps(t)`` is the load at its last update), as a real gauge holds its value."""
    lines = []
    for k in range(round(seconds / period_s)):
        t = t0 + k * period_s
        update = int(k * period_s * gauge_hz)  # the gauge's last update, with the few µA of noise a real one shows
        lines += [f"{t:.6f}", str(-round(amps(t0 + update / gauge_hz) * 1e6) - update % 3), str(round(volts * 1e6))]
    return "\n".join(lines) + "\n"


def test_records_cut_short_or_broken_are_skipped():
    text = _loop_output(1000.0, 0.2, 0.02, 10, lambda t: 0.5)
    broken = text.replace("\n-500000\n", "\ncat: /sys/class/power_supply/battery/current_now: No such device\n", 1)
    assert len(gauge.parse(text)) == 10 == text.count("\n") // 3
    assert len(gauge.parse(broken)) == 9  # the broken record alone is lost; the next ones are read again
    assert len(gauge.parse(text[: text.rindex("\n", 0, -1)])) == 9  # the last record cut mid-way
    assert all(r.voltage_uv == 3_850_000 for r in gauge.parse(text))


def test_the_gauges_update_rate_and_step_are_measured_not_assumed():
    readings = gauge.parse(_loop_output(0.0, 4.0, 0.02, 4, lambda t: 0.5))
    rate, step = gauge.update_rate(readings)
    assert rate == pytest.approx(4, rel=0.1) and step == 1  # the noise is the smallest step here


def test_energy_over_the_measured_window_with_its_idle_baseline():
    """1 s idle at 0.2 A, then 3 s busy at 0.9 A, 3.85 V: the block's figures are the arithmetic of those."""
    readings = gauge.parse(_loop_output(500.0, 4.5, 0.02, 50, lambda t: 0.2 if t < 501.0 else 0.9))
    block = gauge.energy_block(readings, (501.2, 504.2), (500.0, 500.9), 300, "charging suspended (input_suspend=1)", 475.0)
    busy_w, idle_w = 0.9 * 3.85, 0.2 * 3.85
    assert block["measured"] and block["source"] == gauge.SOURCE
    assert block["avg_power_w"] == pytest.approx(busy_w, rel=1e-3)
    assert block["energy_j"] == pytest.approx(busy_w * 3.0, rel=1e-3)
    assert block["energy_per_inference_mj"] == pytest.approx(busy_w * 3.0 / 300 * 1e3, rel=1e-3)
    assert block["idle_power_w"] == pytest.approx(idle_w, rel=0.03)
    assert block["energy_per_inference_above_idle_mj"] == pytest.approx((busy_w - idle_w) * 3.0 / 300 * 1e3, rel=0.02)
    assert block["source_detail"]["charging"].startswith("charging suspended")
    assert block["source_detail"]["gauge_update_hz"] == pytest.approx(50, rel=0.1)
    assert block["mlperf"]["metric"] == "mJ/query"
    contract.build(contract.Energy, block)


def test_a_slow_gauge_is_said_to_be_slow():
    readings = gauge.parse(_loop_output(0.0, 3.0, 0.02, 1, lambda t: 0.5 + 0.1 * int(t)))
    block = gauge.energy_block(readings, (0.5, 2.5), None, 10, "on battery", 475.0)
    assert any("the gauge updated about 2 times" in w for w in block["warnings"]), block["warnings"]
    empty = gauge.energy_block([], (0.5, 2.5), None, 10, "on battery", 475.0)
    assert empty["energy_j"] is None and "no usable gauge readings" in empty["warnings"][0]


def test_the_clock_stamps_are_read_from_the_tool_commands_output():
    out = "noise\n__EDGEPERF_T0=1765143123.456789\nINFO: ...\n__EDGEPERF_T1=1765143125.000001\n"
    assert gauge.stamp(out, gauge.T0) == 1765143123.456789 and gauge.stamp(out, gauge.T1) == 1765143125.000001
    assert gauge.stamp("__EDGEPERF_T0=\n", gauge.T0) is None


class _Files(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def test_a_phone_tool_is_fetched_only_with_its_pinned_sha256(tmp_path):
    served = tmp_path / "www"
    served.mkdir()
    (served / "benchmark_model").write_bytes(b"\x7fELF not really, but bytes with a hash")
    want = sha256_of(served / "benchmark_model")
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), lambda *a: _Files(*a, directory=str(served)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/benchmark_model"
    try:
        with pytest.raises(SettingsError, match="not kept"):
            tools.fetch("benchmark_model", url, "0" * 64, tmp_path / "tools", "2.18.0")
        assert not (tmp_path / "tools" / "benchmark_model").exists() and list((tmp_path / "tools").iterdir()) == []
        path = tools.fetch("benchmark_model", url, want, tmp_path / "tools", "2.18.0")
    finally:
        server.shutdown()
    assert sha256_of(path) == want and path.stat().st_mode & 0o111
    assert json.loads((tmp_path / "tools" / tools.LOCK).read_text())["benchmark_model"] == {
        "sha256": want, "version": "2.18.0", "url": url}
    found = tools.Toolbox(tmp_path / "tools").find("benchmark_model")
    assert (found.sha256, found.version) == (want, "2.18.0") and found.phone_path.endswith(want[:16])
    path.write_bytes(b"replaced")
    with pytest.raises(SettingsError, match="changed since it was fetched"):
        tools.Toolbox(tmp_path / "tools").find("benchmark_model")
    with pytest.raises(SettingsError, match="no onnxruntime_perf_test in"):
        tools.Toolbox(tmp_path / "tools").find("onnxruntime_perf_test")
    with pytest.raises(SettingsError, match="not a sha256"):
        tools.fetch("benchmark_model", url, "abc", tmp_path / "tools", "x")
