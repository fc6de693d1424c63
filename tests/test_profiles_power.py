"""Device profiles and the estimate: matched from device facts, and never passed off as measured."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from devices import probe, profiles
from devices.power import estimate, parse_spec
from devices.power.base import PowerSourceError

FIXTURES = Path(__file__).parent / "fixtures" / "probe"


def test_every_profile_the_spec_names_exists_with_a_sane_envelope():
    assert {"rpi4", "rpi5", "jetson-orin-nano", "jetson-agx-orin", "generic-x86", "h100", "h200"} <= set(profiles.profiles())
    for profile in profiles.profiles().values():
        assert 0 < profile.idle_w < profile.max_w
        assert profile.power_sources[-1] == "estimate"


def test_profiles_match_captured_boards_and_gpus():
    assert profiles.match(probe.collect(FIXTURES / "rpi5")).name == "rpi5"
    assert profiles.match(probe.collect(FIXTURES / "jetson-orin-nano")).name == "jetson-orin-nano"
    assert profiles.match({"gpus": [{"name": "NVIDIA H200"}], "arch": "x86_64"}).name == "h200"
    assert profiles.match({"board": "Dell Inc. PowerEdge", "arch": "x86_64"}).name == "generic-x86"
    assert profiles.match({"board": "Some ARM board", "arch": "aarch64"}) is None


def test_estimate_model_is_idle_plus_share_of_the_range():
    rpi5 = profiles.get("rpi5")
    assert rpi5.estimate_w(0.0) == rpi5.idle_w and rpi5.estimate_w(1.0) == rpi5.max_w
    assert rpi5.estimate_w(0.5) == pytest.approx((rpi5.idle_w + rpi5.max_w) / 2)
    assert rpi5.estimate_w(3.0) == rpi5.max_w  # never beyond the envelope


def test_the_estimate_is_labelled_and_follows_cpu_load():
    monitor = estimate.open({"idle_w": "1", "max_w": "11"})
    assert not monitor.info.measured and "estimated" in monitor.info.rail
    monitor.start()
    end = time.monotonic() + 0.6
    while time.monotonic() < end:  # keep one core busy so utilisation is visibly above zero
        sum(range(10_000))
    samples = monitor.stop()
    assert len(samples) >= 3
    assert all(1.0 <= s.watts <= 11.0 for s in samples)
    assert max(s.watts for s in samples) > 2.0


def test_estimate_refuses_nonsense_figures():
    with pytest.raises(PowerSourceError, match="idle_w"):
        estimate.open({"idle_w": "10", "max_w": "5"})
    with pytest.raises(PowerSourceError, match="numbers"):
        estimate.open({"idle_w": "lots", "max_w": "5"})


def test_spec_strings():
    assert parse_spec("ina219:bus=1,addr=0x41,shunt=0.05") == ("ina219", {"bus": "1", "addr": "0x41", "shunt": "0.05"})
    assert parse_spec("serial:/dev/ttyACM0,baud=115200") == ("serial", {"port": "/dev/ttyACM0", "baud": "115200"})
    assert parse_spec("AUTO") == ("auto", {})
    with pytest.raises(PowerSourceError, match="unknown power source 'fluke'"):
        parse_spec("fluke")
