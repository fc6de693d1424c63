"""The fleet protocol (docs/protocol.md): topics, the versioned JSON envelope, and message checks.

The single source of the wire format for both sides — the agent daemon and the controller build
and parse every message here. It never imports an MQTT client: topics and payloads are protocol,
the client library is transport (``agent/transport.py``). Correlation ids live in the JSON, not
in MQTT 5 properties, so MQTT 3.1.1 brokers carry the same conversation.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from typing import Any

PROTOCOL_VERSION = 1
DEFAULT_PREFIX = "edgeperf/v1"
MAX_PAYLOAD_BYTES = 1 << 20  # 1 MiB: a result with histogram and confusion matrix is ~20-80 KiB

# topic kind -> (QoS, retained, direction)
TOPICS = {
    "status": (1, True, "agent"),
    "info": (1, True, "agent"),
    "jobs": (1, False, "controller"),
    "events": (1, False, "agent"),
    "results": (1, False, "agent"),
    "acks": (1, False, "controller"),
    "telemetry": (0, False, "agent"),
}
# envelope types allowed on each topic kind
TYPES = {
    "status": {"status"},
    "info": {"info"},
    "jobs": {"job", "cancel"},
    "events": {"accepted", "progress", "finished", "failed", "rejected"},
    "results": {"result"},
    "acks": {"ack"},
    "telemetry": {"telemetry"},
}
STATES = ("online", "busy", "offline")
RUN_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")
# A per-job artifact token (RFC 6750 b64token): it goes into an HTTP header, so no spaces or line breaks.
ARTIFACT_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]{16,256}={0,2}")
EVENT_KINDS = TYPES["events"]


class ProtocolError(ValueError):
    """A message that breaks the protocol; it is logged and dropped, never raised past a loop."""


@dataclass(frozen=True)
class Topics:
    """Topic names under one prefix (configurable; default ``edgeperf/v1``)."""

    prefix: str = DEFAULT_PREFIX

    def device(self, device_id: str, kind: str) -> str:
        if kind not in TOPICS:
            raise ValueError(f"unknown topic kind {kind!r}")
        check_device_id(device_id)
        return f"{self.prefix}/devices/{device_id}/{kind}"

    def all_devices(self, kind: str) -> str:
        """Subscription filter for one kind from every device."""
        return f"{self.prefix}/devices/+/{kind}"

    def parse(self, topic: str) -> tuple[str, str]:
        """``(device_id, kind)`` of a device topic under this prefix."""
        head = f"{self.prefix}/devices/"
        if not topic.startswith(head):
            raise ProtocolError(f"topic {topic!r} is not under {head}")
        device_id, sep, kind = topic[len(head) :].partition("/")
        if not sep or kind not in TOPICS or not device_id:
            raise ProtocolError(f"topic {topic!r} is not a device topic")
        return device_id, kind


def check_device_id(device_id: str) -> str:
    """Device ids become topic levels: no wildcards, separators or control characters."""
    if not device_id or len(device_id) > 64 or any(c in device_id for c in "/+#\0") or not device_id.isprintable():
        raise ValueError(f"device id {device_id!r} must be 1-64 printable characters without / + #")
    return device_id


@dataclass(frozen=True)
class Envelope:
    """Every payload: protocol version, type, sender device, per-sender sequence, time, data."""

    type: str
    device: str
    data: dict[str, Any] = field(default_factory=dict)
    seq: int = 0
    ts: float = field(default_factory=time.time)
    v: int = PROTOCOL_VERSION

    def encode(self) -> bytes:
        body = json.dumps(
            {"v": self.v, "type": self.type, "device": self.device, "seq": self.seq, "ts": self.ts, "data": self.data},
            separators=(",", ":"),
            allow_nan=False,
        ).encode()
        if len(body) > MAX_PAYLOAD_BYTES:
            raise ProtocolError(f"{self.type} message of {len(body)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
        return body


def decode(topic_kind: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> Envelope:
    """Parse and check one payload received on a topic of ``topic_kind``."""
    if len(payload) > max_bytes:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit")
    try:
        raw = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"payload is not JSON ({exc})") from None
    if not isinstance(raw, dict):
        raise ProtocolError("payload is not a JSON object")
    if raw.get("v") != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {raw.get('v')!r}, this side speaks {PROTOCOL_VERSION}")
    kind = raw.get("type")
    if kind not in TYPES[topic_kind]:
        raise ProtocolError(f"message type {kind!r} does not belong on {topic_kind}")
    if not isinstance(raw.get("device"), str) or not isinstance(raw.get("data"), dict):
        raise ProtocolError("envelope lacks a device string or a data object")
    return Envelope(kind, raw["device"], raw["data"], int(raw.get("seq") or 0), float(raw.get("ts") or 0.0))


def require(data: dict[str, Any], **fields: type | tuple[type, ...]) -> None:
    """Check that ``data`` has ``fields`` of the given types (the per-type payload schema)."""
    for name, kind in fields.items():
        if not isinstance(data.get(name), kind):
            raise ProtocolError(f"field {name!r} missing or not {getattr(kind, '__name__', kind)}")


def check_job(data: dict[str, Any]) -> None:
    """A job: run id, artifact {url, sha256, size, name[, token]}, runtime options, scenario, mode, profile, dataset."""
    require(data, run_id=str, artifact=dict, scenario=str, mode=str, profile=str, dataset=str)
    if not RUN_ID.fullmatch(data["run_id"]) or set(data["run_id"]) == {"."}:
        raise ProtocolError(f"run_id {data['run_id'][:80]!r} must be 1-64 of [A-Za-z0-9._-]")  # it names files
    require(data["artifact"], url=str, sha256=str, size=int, name=str)
    if len(data["artifact"]["sha256"]) != 64:
        raise ProtocolError("artifact sha256 is not 64 hex digits")
    token = data["artifact"].get("token")
    if token is not None and not (isinstance(token, str) and ARTIFACT_TOKEN.fullmatch(token)):
        raise ProtocolError("artifact token must be 16-256 characters of [A-Za-z0-9._~+/-]")  # never echo a token
    if not isinstance(data.get("options", {}), dict) or not isinstance(data.get("overrides", {}), dict):
        raise ProtocolError("job options/overrides must be objects")
