"""The wire format: topics, the envelope, and every way a payload is refused."""

from __future__ import annotations

import json

import pytest

from agent.protocol import MAX_PAYLOAD_BYTES, TOPICS, TYPES, Envelope, ProtocolError, Topics, check_device_id, check_job, decode


def test_topic_table_matches_the_spec():
    assert {k: v[:2] for k, v in TOPICS.items()} == {
        "status": (1, True),
        "info": (1, True),
        "jobs": (1, False),
        "events": (1, False),
        "results": (1, False),
        "acks": (1, False),
        "telemetry": (0, False),
    }
    topics = Topics()
    assert topics.device("pi5-01", "status") == "edgeperf/v1/devices/pi5-01/status"
    assert topics.all_devices("results") == "edgeperf/v1/devices/+/results"
    assert topics.parse("edgeperf/v1/devices/pi5-01/jobs") == ("pi5-01", "jobs")
    assert Topics("lab-a/ep").device("x", "acks") == "lab-a/ep/devices/x/acks"


@pytest.mark.parametrize("topic", ["other/v1/devices/a/status", "edgeperf/v1/devices/a", "edgeperf/v1/devices/a/shell"])
def test_foreign_topics_are_refused(topic):
    with pytest.raises(ProtocolError):
        Topics().parse(topic)


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "lab#1", "x" * 65, "tab\there"])
def test_device_ids_cannot_break_topics(bad):
    with pytest.raises(ValueError, match="device id"):
        check_device_id(bad)


def test_envelope_round_trip_is_golden():
    env = Envelope("status", "pi5-01", {"state": "online"}, seq=7, ts=1700000000.5)
    body = env.encode()
    assert json.loads(body) == {
        "v": 1,
        "type": "status",
        "device": "pi5-01",
        "seq": 7,
        "ts": 1700000000.5,
        "data": {"state": "online"},
    }
    assert decode("status", body) == env


@pytest.mark.parametrize(
    ("kind", "payload", "problem"),
    [
        ("results", b"\xff\xfe", "not JSON"),
        ("results", b"[1, 2]", "not a JSON object"),
        ("results", b'{"v": 2, "type": "result", "device": "a", "data": {}}', "protocol version 2"),
        ("jobs", b'{"v": 1, "type": "result", "device": "a", "data": {}}', "does not belong on jobs"),
        ("events", b'{"v": 1, "type": "failed", "device": 5, "data": {}}', "device string"),
        ("results", b" " * (MAX_PAYLOAD_BYTES + 1), "exceeds"),
    ],
)
def test_decode_refuses(kind, payload, problem):
    with pytest.raises(ProtocolError, match=problem):
        decode(kind, payload)


def test_every_topic_kind_has_its_message_types():
    assert set(TYPES) == set(TOPICS)
    assert TYPES["jobs"] == {"job", "cancel"}


def test_oversized_messages_are_refused_before_sending():
    with pytest.raises(ProtocolError, match="exceeds"):
        Envelope("result", "a", {"blob": "x" * MAX_PAYLOAD_BYTES}).encode()


JOB = {
    "run_id": "r1",
    "scenario": "SingleStream",
    "mode": "performance",
    "profile": "smoke",
    "dataset": "synthetic",
    "artifact": {"url": "http://c/artifacts/x", "sha256": "a" * 64, "size": 10, "name": "m.tflite"},
}


def test_job_schema():
    job = dict(JOB)
    check_job(job)
    with pytest.raises(ProtocolError, match="sha256"):
        check_job(job | {"artifact": job["artifact"] | {"sha256": "abc"}})
    with pytest.raises(ProtocolError, match="'profile'"):
        check_job({k: v for k, v in job.items() if k != "profile"})
    for bad in ("../../etc/passwd", "..", "", "a" * 65, "run id"):
        with pytest.raises(ProtocolError, match="run_id"):
            check_job(job | {"run_id": bad})
    with pytest.raises(ProtocolError, match="options"):
        check_job(job | {"options": ["threads", 2]})


def test_job_artifact_token_is_optional_and_bounded():
    job = dict(JOB)
    check_job(job)
    for good in ("A" * 43, "abc.DEF_ghi-jkl~mno+p/q==", "x" * 256):
        check_job(job | {"artifact": job["artifact"] | {"token": good}})
    for bad in ("short", "x" * 257, "a" * 20 + "\r\nX-Evil: 1", "a" * 20 + " b", 12345678901234567890, ["t"] * 20, ""):
        with pytest.raises(ProtocolError, match="artifact token must be") as info:
            check_job(job | {"artifact": job["artifact"] | {"token": bad}})
        assert bad == "" or str(bad) not in str(info.value)  # a token is never echoed into a log line
