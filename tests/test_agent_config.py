"""Agent configuration: flags over environment over TOML, checked, with secrets kept out of logs."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent import config
from agent.errors import SettingsError
from agent.jobs import request_from_job
from agent.transport import BrokerUrl


def test_precedence_flags_then_env_then_file(tmp_path):
    toml = tmp_path / "agent.toml"
    toml.write_text('[agent]\ndevice_id = "from-file"\nbroker = "mqtt://file:1883"\ntags = ["rpi5", "lab-a"]\nthreads = 2\n')
    env = {"EDGEPERF_BROKER": "mqtt://env:1883", "EDGEPERF_TAGS": "jetson,lab-b"}
    cfg = config.load({"device_id": "from-flag"}, env, toml)
    assert cfg.device_id == "from-flag"
    assert cfg.broker == "mqtt://env:1883"
    assert cfg.tags == ("jetson", "lab-b")
    assert cfg.threads == 2
    assert cfg.storage == config.default_data_root() / "from-flag"


def test_unknown_toml_key_names_file_and_key(tmp_path):
    toml = tmp_path / "agent.toml"
    toml.write_text('brokr = "mqtt://x"\n')
    with pytest.raises(SettingsError, match=r"agent.toml: unknown key 'brokr'"):
        config.load({}, {}, toml)


def test_bad_values_are_refused(tmp_path):
    with pytest.raises(SettingsError, match="threads"):
        config.load({}, {"EDGEPERF_THREADS": "many"})
    with pytest.raises(SettingsError, match="device id"):
        config.load({"device_id": "lab/pi"}, {})
    with pytest.raises(SettingsError, match=r"ca_file .* does not exist"):
        config.load({"ca_file": tmp_path / "missing.pem"}, {})
    bad = tmp_path / "bad.toml"
    bad.write_text("broker = \n")
    with pytest.raises(SettingsError, match="not valid TOML"):
        config.load({}, {}, bad)


def test_broker_urls_and_redaction():
    url = BrokerUrl.parse("mqtts://bob:s%40cret@lab.example:8884")
    assert (url.scheme, url.host, url.port, url.username, url.password) == ("mqtts", "lab.example", 8884, "bob", "s@cret")
    assert "s@cret" not in str(url) and "***" in str(url)
    assert BrokerUrl.parse("lab").port == 1883 and BrokerUrl.parse("mqtts://lab").port == 8883
    with pytest.raises(SettingsError, match=r"mqtt\[s\]://") as err:
        BrokerUrl.parse("http://user:hunter2@lab")
    assert "hunter2" not in str(err.value)


def test_jobs_are_checked_before_anything_runs(tmp_path):
    job = {
        "run_id": "r1",
        "scenario": "Offline",
        "mode": "performance",
        "profile": "smoke",
        "dataset": "synthetic",
        "artifact": {"url": "http://c/a", "sha256": "a" * 64, "size": 1, "name": "m.onnx"},
        "options": {"threads": 2, "providers": ["CPUExecutionProvider"], "shapes": {"x": [1, 3]}},
        "overrides": {"min_duration_s": 0.5, "batch_size": 8},
    }
    req = request_from_job(job, Path("/cache/m.onnx"), tmp_path, "pi-a")
    assert req.settings.min_duration_ms == 500 and req.settings.batch_size == 8
    assert req.options.threads == 2 and req.options.shapes == {"x": (1, 3)} and req.device_id == "pi-a"
    with pytest.raises(SettingsError, match="unknown job override 'rm -rf'"):
        request_from_job(job | {"overrides": {"rm -rf": 1}}, Path("m.onnx"), tmp_path, "pi-a")
    with pytest.raises(SettingsError, match="threads"):
        request_from_job(job | {"options": {"threads": "2; reboot"}}, Path("m.onnx"), tmp_path, "pi-a")
    with pytest.raises(SettingsError, match="unknown scenario"):
        request_from_job(job | {"scenario": "Batch"}, Path("m.onnx"), tmp_path, "pi-a")
