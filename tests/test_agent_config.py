"""Agent configuration: flags over environment over TOML, checked, with secrets kept out of logs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent import config, contract
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


def test_artifact_origins_and_size_limit_from_file_env_and_flags(tmp_path):
    from agent.artifacts import DEFAULT_MAX_ARTIFACT_BYTES
    from agent.cli import build_parser

    toml = tmp_path / "agent.toml"
    toml.write_text('[agent]\nartifact_origins = ["http://lab:8765", "https://[fd00::1]"]\nmax_artifact_bytes = 1000\n')
    cfg = config.load({}, {}, toml)
    assert cfg.artifact_origins == ("http://lab:8765", "https://[fd00::1]") and cfg.max_artifact_bytes == 1000
    env = {"EDGEPERF_ARTIFACT_ORIGINS": "http://a, http://b:1", "EDGEPERF_MAX_ARTIFACT_BYTES": "2000"}
    cfg = config.load({}, env, toml)
    assert cfg.artifact_origins == ("http://a", "http://b:1") and cfg.max_artifact_bytes == 2000
    args = build_parser().parse_args(["run", "--artifact-origin", "http://c", "--artifact-origin", "http://d:2",
                                      "--max-artifact-bytes", "3000"])
    cfg = config.load({"artifact_origins": args.artifact_origins, "max_artifact_bytes": args.max_artifact_bytes}, env, toml)
    assert cfg.artifact_origins == ("http://c", "http://d:2") and cfg.max_artifact_bytes == 3000
    default = config.load({}, {})
    assert default.artifact_origins == () and default.max_artifact_bytes == DEFAULT_MAX_ARTIFACT_BYTES


def test_bad_artifact_settings_are_one_line_naming_the_key(tmp_path):
    with pytest.raises(SettingsError, match=r"artifact origin 'lab:8765' is not scheme://host\[:port\]; write e.g."):
        config.load({}, {"EDGEPERF_ARTIFACT_ORIGINS": "lab:8765"})
    with pytest.raises(SettingsError, match="EDGEPERF_MAX_ARTIFACT_BYTES: max_artifact_bytes = '2G' is not a valid"):
        config.load({}, {"EDGEPERF_MAX_ARTIFACT_BYTES": "2G"})
    with pytest.raises(SettingsError, match="max_artifact_bytes 0 must be a positive byte count"):
        config.load({"max_artifact_bytes": 0}, {})


def test_the_password_is_not_in_a_repr():
    cfg = config.load({"broker": "mqtt://bob:hunter2@lab"}, {"EDGEPERF_PASSWORD": "s3cret"})
    assert cfg.password == "s3cret" and "s3cret" not in repr(cfg)
    assert "hunter2" not in repr(BrokerUrl.parse(cfg.broker)) and "hunter2" not in str(BrokerUrl.parse(cfg.broker))


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
        "controller": "controller-test",
        "artifact": {"url": "http://c/a", "sha256": "a" * 64, "size": 1, "name": "m.onnx"},
        "options": {"threads": 2, "providers": ["CPUExecutionProvider"], "shapes": {"x": [1, 3]}},
        "overrides": {"min_duration_s": 0.5, "batch_size": 8},
    }
    req = request_from_job(contract.convert("job", job), Path("/cache/m.onnx"), tmp_path, "pi-a")
    assert req.settings.min_duration_ms == 500 and req.settings.batch_size == 8
    assert req.options.threads == 2 and req.options.shapes == {"x": (1, 3)} and req.device_id == "pi-a"
    assert req.options.providers == ("CPUExecutionProvider",) and req.run_id == "r1"
    # the contract refuses what no runtime option or override is, as the agent receives the job
    with pytest.raises(contract.ProtocolError, match=re.escape("unknown field rm -rf - at $.overrides")):
        contract.convert("job", job | {"overrides": {"rm -rf": 1}})
    with pytest.raises(contract.ProtocolError, match=re.escape("at $.options.threads")):
        contract.convert("job", job | {"options": {"threads": "2; reboot"}})
    # what only the agent knows (scenario names and their aliases) is checked when the request is made
    with pytest.raises(SettingsError, match="unknown scenario"):
        request_from_job(contract.convert("job", job | {"scenario": "Batch"}), Path("m.onnx"), tmp_path, "pi-a")
    # the agent's default thread count fills in only where the job leaves threads to the runtime
    given, unset = contract.convert("job", job), contract.convert("job", job | {"options": {}})
    assert request_from_job(given, Path("m.onnx"), tmp_path, "pi-a", default_threads=4).options.threads == 2
    assert request_from_job(unset, Path("m.onnx"), tmp_path, "pi-a", default_threads=4).options.threads == 4


def test_no_agent_module_runs_a_shell():
    """Job fields reach the worker only as JSON in a file and as argv items; nothing goes through a shell."""
    import re

    root = Path(__file__).resolve().parent.parent / "agent"
    shell = re.compile(r"shell\s*=\s*True|os\.system\(|os\.popen\(|subprocess\.getoutput")
    offenders = [str(p.relative_to(root)) for p in root.rglob("*.py") if shell.search(p.read_text())]
    assert offenders == []


def test_tags_outside_the_contract_are_refused_at_start_not_dropped_by_every_controller():
    assert config.load({"device_id": "pi", "tags": ("rpi5", "lab:a", "zone=2")}, {}).tags == ("rpi5", "lab:a", "zone=2")
    for bad in (("lab a",), ("x" * 65,), tuple(f"t{i}" for i in range(65))):
        with pytest.raises(SettingsError, match="at most 64 tags of 1-64 characters"):
            config.load({"device_id": "pi", "tags": bad}, {})
    # what the agent then announces is what the contract accepts
    status = contract.Status("online", "0123456789abcdef", 10.0, tags=("rpi5", "lab:a", "zone=2"))
    assert contract.decode("status", contract.Envelope("status", "pi", status).encode(None), None).data.tags == status.tags
