"""The agent daemon's configuration: command-line flags over environment over a TOML file.

A fleet is provisioned with ``/etc/edgeperf/agent.toml``; a lab bench overrides one value with a
flag; containers and CI set ``EDGEPERF_*`` variables. Secrets (the broker password) are read
from the environment or the file, never required on a command line, and never logged.

``artifact_origins`` limits where jobs may send the agent for model downloads (``agent.origins``;
empty: the broker's host, any port) and ``max_artifact_bytes`` caps one download.
"""

from __future__ import annotations

import os
import re
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from agent import origins
from agent.artifacts import DEFAULT_MAX_ARTIFACT_BYTES
from agent.contract import DEFAULT_PREFIX, check_device_id, check_tags
from agent.errors import SettingsError
from agent.threads import check_threads

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib


def default_device_id() -> str:
    """The host name, made safe as an MQTT topic level."""
    return re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64] or "device"


def default_data_root() -> Path:
    return Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share") / "edgeperf" / "agent"


@dataclass(frozen=True)
class AgentConfig:
    """Everything ``edgeperf-agent run`` needs; names are the TOML keys and the flag names."""

    device_id: str = field(default_factory=default_device_id)
    broker: str = "mqtt://localhost:1883"
    tags: tuple[str, ...] = ()
    data_dir: Path | None = None  # outbox and artifact cache; default <data root>/<device id>
    prefix: str = DEFAULT_PREFIX
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a repr must never show it
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    mqtt_version: str = "3.1.1"
    keepalive_s: int = 30
    threads: int | None = None  # runtime threads for jobs that do not set them
    resend_after_s: float = 30.0  # re-publish results not acked after this long, doubling per attempt
    telemetry_interval_s: float = 1.0
    heartbeat_s: float = 10.0  # status re-published this often; the controller calls a device stale after 3 missed
    fleet_key_file: Path | None = None  # the fleet key signing every message; default: agent.fleet_key.default_path()
    reconnect_max_s: int = 30
    artifact_origins: tuple[str, ...] = ()  # scheme://host[:port] jobs may download from; () = the broker's host
    max_artifact_bytes: int = DEFAULT_MAX_ARTIFACT_BYTES  # refuse a job whose model is larger
    max_packet_bytes: int | None = None  # the broker's packet limit (MQTT 3.1.1; MQTT 5 brokers announce theirs)

    @property
    def storage(self) -> Path:
        return self.data_dir or default_data_root() / self.device_id


_PATHS = {"data_dir", "ca_file", "cert_file", "key_file", "fleet_key_file"}
_INTS = {"keepalive_s", "threads", "reconnect_max_s", "max_artifact_bytes", "max_packet_bytes"}
_LISTS = {"tags", "artifact_origins"}
_FLOATS = {"resend_after_s", "telemetry_interval_s", "heartbeat_s"}
FIELDS = {f.name for f in fields(AgentConfig)}


def _coerce(name: str, value: Any, where: str) -> Any:
    try:
        if name in _PATHS:
            return Path(value).expanduser()
        if name in _INTS:
            return int(value)
        if name in _FLOATS:
            return float(value)
        if name in _LISTS:
            items = value.split(",") if isinstance(value, str) else list(value)
            return tuple(t.strip() for t in items if str(t).strip())
    except (TypeError, ValueError):
        raise SettingsError(f"{where}: {name} = {value!r} is not a valid {name}") from None
    return str(value)


def from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """``EDGEPERF_BROKER``, ``EDGEPERF_DEVICE_ID``, ``EDGEPERF_TAGS`` and ``EDGEPERF_ARTIFACT_ORIGINS`` (comma-separated), ..."""
    out = {}
    for name in FIELDS:
        key = f"EDGEPERF_{name.upper()}"
        if env.get(key):
            out[name] = _coerce(name, env[key], key)
    return out


def from_toml(path: Path) -> dict[str, Any]:
    """Keys of ``[agent]`` (or the top level) of a TOML file; unknown keys are errors."""
    try:
        data = tomllib.loads(path.read_text())
    except OSError as exc:
        raise SettingsError(f"cannot read config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise SettingsError(f"{path}: not valid TOML ({exc})") from None
    table = data.get("agent", data)
    unknown = sorted(set(table) - FIELDS)
    if unknown:
        raise SettingsError(f"{path}: unknown key {unknown[0]!r}; known keys: {', '.join(sorted(FIELDS))}")
    return {name: _coerce(name, value, str(path)) for name, value in table.items()}


def load(flags: Mapping[str, Any], env: Mapping[str, str] = os.environ, toml: Path | None = None) -> AgentConfig:
    """Merge the three sources (flags win, then environment, then file) and check the result."""
    merged: dict[str, Any] = {}
    if toml is not None:
        merged |= from_toml(toml)
    merged |= from_env(env)
    merged |= {k: _coerce(k, v, f"--{k.replace('_', '-')}") for k, v in flags.items() if v not in (None, (), [])}
    config = AgentConfig(**merged)
    try:
        check_device_id(config.device_id)
        check_tags(config.tags)  # the contract's: a status with any other tag is dropped by every controller
    except ValueError as exc:
        raise SettingsError(str(exc)) from None
    if config.mqtt_version not in ("3.1.1", "5"):
        raise SettingsError(f"mqtt_version {config.mqtt_version!r}: use 3.1.1 or 5")
    if config.max_artifact_bytes <= 0:
        raise SettingsError(f"max_artifact_bytes {config.max_artifact_bytes} must be a positive byte count, e.g. 2147483648")
    if config.max_packet_bytes is not None and config.max_packet_bytes < 1024:
        raise SettingsError(f"max_packet_bytes {config.max_packet_bytes} is too small for the protocol; give at least 1024")
    if config.threads is not None and config.threads < 1:
        raise SettingsError(f"threads {config.threads}: give 1 or more, or leave it unset for the runtime's default")
    check_threads(config.threads)
    if not 0.1 <= config.heartbeat_s <= 3600:
        raise SettingsError(f"heartbeat_s {config.heartbeat_s:g} must be between 0.1 and 3600 seconds")
    for origin in config.artifact_origins:
        origins.parse_origin(origin)  # a typo is reported at start-up, not as every job failing
    for name in ("ca_file", "cert_file", "key_file"):
        path = getattr(config, name)
        if path is not None and not path.is_file():
            raise SettingsError(f"{name} {path} does not exist")
    return config
