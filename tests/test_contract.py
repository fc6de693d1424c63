"""The contract's wire format: topics, the envelope, typed bodies, and ways a payload is refused.

Every field of every message kind given a wrong type is in ``test_contract_fuzz.py``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from pathlib import Path

import pytest

from agent import contract
from agent.contract import MAX_PAYLOAD_BYTES, TOPICS, TYPES, Envelope, ProtocolError, Topics, check_device_id, decode


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


@pytest.mark.parametrize("bad", ["", "a/b", "a+b", "lab#1", "x" * 65, "tab\there", "café", "a b", "a@b"])
def test_device_ids_cannot_break_topics(bad):
    with pytest.raises(ValueError, match="device id"):
        check_device_id(bad)


KEY = bytes(range(32))


def test_envelope_round_trip_is_golden():
    status = contract.Status("online", "0123456789abcdef", 10.0, "0.1.0", None, ("rpi5",))
    env = Envelope("status", "pi5-01", status, seq=7, ts=1700000000.5)
    body = env.encode(KEY)
    data = {"state": "online", "session": "0123456789abcdef", "heartbeat_s": 10.0, "agent_version": "0.1.0", "job": None,
            "tags": ["rpi5"], "uptime_s": 0.0}
    raw = json.dumps(data, separators=(",", ":")).encode()
    expected_sig = hmac.new(KEY, b"1\nstatus\npi5-01\n" + raw, hashlib.sha256).hexdigest()  # the documented recipe
    assert json.loads(body) == {"v": 1, "type": "status", "device": "pi5-01", "seq": 7, "ts": 1700000000.5, "data": data,
                                "sig": expected_sig}
    got = decode("status", body, KEY)
    assert (got.type, got.device, got.seq, got.ts, got.data) == (env.type, env.device, 7, 1700000000.5, env.data)
    assert got.data.tags == ("rpi5",) and got.data.state == "online"  # attributes, typed


def test_only_messages_signed_with_the_fleet_key_are_read():
    ack = Envelope("ack", "pi", contract.Ack(("r1",), "controller-a"))
    with pytest.raises(ProtocolError, match="not signed"):
        decode("acks", ack.encode(None), KEY)
    with pytest.raises(ProtocolError, match="another fleet key"):
        decode("acks", ack.encode(bytes(32)), KEY)
    signed = ack.encode(KEY)
    for tampered in (signed.replace(b'"r1"', b'"r2"'), signed.replace(b'"device":"pi"', b'"device":"px"'),
                     signed.replace(b'"type":"ack"', b'"type":"job"')):
        with pytest.raises(ProtocolError, match=r"another fleet key|does not belong"):
            decode("acks", tampered, KEY)
    assert decode("acks", signed, KEY).data.run_ids == ("r1",)


@pytest.mark.parametrize(
    ("kind", "payload", "problem"),
    [
        ("results", b"\xff\xfe", "bad envelope: JSON is malformed"),
        ("results", b"[1, 2]", "bad envelope: Expected object, got array"),
        ("results", b'{"v": 2, "type": "result", "device": "a", "data": {}}', "protocol version 2"),
        ("jobs", b'{"v": 1, "type": "result", "device": "a", "data": {}}', "does not belong on jobs"),
        ("events", b'{"v": 1, "type": "failed", "device": 5, "data": {}}', "Expected str, got int - at \\$.device"),
        ("events", b'{"v": 1, "type": "failed", "device": "' + b"x" * 65 + b'", "data": {}}', "at \\$.device"),
        ("status", b'{"v": 1, "type": "status", "device": "a", "seq": "abc", "data": {"state": "online"}}', "at \\$.seq"),
        ("status", b'{"v": 1, "type": "status", "device": "a", "data": {"state": "online", "tags": null}}', "at \\$.tags"),
        ("status", b'{"v": 1, "type": "status", "device": "a", "data": {"state": "online", "job": {}}}', "at \\$.job"),
        ("status", b'{"v": 1, "type": "status", "device": "a", "data": {"state": "asleep"}}', "at \\$.state"),
        ("telemetry", b'{"v": 1, "type": "telemetry", "device": "a", "data": {"cpu_pct": 1e400}}', "out of range"),
        ("info", b'{"v": 1, "type": "info", "device": "a", "data": {"facts": ' + b'{"a": ' * 40 + b"1" + b"}" * 41 + b"}",
         "nested deeper than 16"),
        ("results", b" " * (MAX_PAYLOAD_BYTES + 1), "exceeds"),
    ],
)
def test_decode_refuses(kind, payload, problem):
    with pytest.raises(ProtocolError, match=problem):
        decode(kind, payload, None)


def test_every_topic_kind_has_its_message_types():
    assert set(TYPES) == set(TOPICS) | {"announce"}  # announce: the one fleet-wide topic
    assert TYPES["jobs"] == ("job", "cancel")
    assert {t for types in TYPES.values() for t in types} == set(contract.BODIES)


def test_oversized_messages_are_refused_before_sending():
    with pytest.raises(ProtocolError, match="exceeds"):
        Envelope("result", "a", {"blob": "x" * MAX_PAYLOAD_BYTES}).encode(KEY)


def test_a_body_that_breaks_the_contract_is_refused_before_it_is_sent():
    with pytest.raises(ProtocolError, match=r"at \$\.temperatures_c"):
        contract.convert("telemetry", {"cpu_pct": 10.0, "temperatures_c": {"cpu": "hot"}})


JOB = {
    "run_id": "r1",
    "scenario": "SingleStream",
    "mode": "performance",
    "profile": "smoke",
    "dataset": "synthetic",
    "controller": "controller-test",
    "artifact": {"url": "http://c/artifacts/x", "sha256": "a" * 64, "size": 10, "name": "m.tflite"},
}


def test_job_schema():
    job = contract.convert("job", JOB)
    assert (job.run_id, job.artifact.size) == ("r1", 10)
    assert (job.options, job.overrides) == (contract.RuntimeOptions(), contract.RunLength())
    with pytest.raises(ProtocolError, match="sha256"):
        contract.convert("job", JOB | {"artifact": JOB["artifact"] | {"sha256": "abc"}})
    with pytest.raises(ProtocolError, match="profile"):
        contract.convert("job", {k: v for k, v in JOB.items() if k != "profile"})
    for bad in ("../../etc/passwd", "..", ".", "", "a" * 65, "run id"):
        with pytest.raises(ProtocolError, match="run_id"):
            contract.convert("job", JOB | {"run_id": bad})
    with pytest.raises(ProtocolError, match="options"):
        contract.convert("job", JOB | {"options": ["threads", 2]})
    with pytest.raises(ProtocolError, match="unknown field"):  # an option this agent does not know is refused, not ignored
        contract.convert("job", JOB | {"options": {"thread": 2}})
    with pytest.raises(ProtocolError, match="below min_queries"):
        contract.convert("job", JOB | {"overrides": {"min_queries": 100, "max_queries": 10}})


def test_a_directory_model_travels_as_the_artifact_server_packs_it(tmp_path):
    """The artifact server's own block for a Core ML package (a tar) is a valid job artifact, as is a file's."""
    from agent import zoo
    from controller.fleet.artifact_server import ArtifactServer

    server = ArtifactServer("127.0.0.1")
    for name in ("zoo:fashion-mnist-cnn/int8.mlpackage", "zoo:fashion-mnist-cnn/int8.tflite"):
        block = server.add(zoo.resolve(name).path)
        job = contract.convert("job", JOB | {"artifact": block})
        assert job.artifact.archive == block["archive"] and job.artifact.sha256 == block["sha256"]
    with pytest.raises(ProtocolError, match=r"at \$\.artifact\.archive"):
        contract.convert("job", JOB | {"artifact": JOB["artifact"] | {"archive": "zip"}})


def test_job_artifact_token_is_optional_and_bounded():
    contract.convert("job", JOB)
    for good in ("A" * 43, "abc.DEF_ghi-jkl~mno+p/q==", "x" * 256):
        contract.convert("job", JOB | {"artifact": JOB["artifact"] | {"token": good}})
    bad_tokens = ("short", "x" * 257, "a" * 20 + "\r\nX-Evil: 1", "a" * 20 + " b", 12345678901234567890, ["t"] * 20, "")
    for bad in bad_tokens:
        with pytest.raises(ProtocolError, match=r"at \$\.artifact\.token") as info:
            contract.convert("job", JOB | {"artifact": JOB["artifact"] | {"token": bad}})
        assert bad == "" or str(bad) not in str(info.value)  # a token is never echoed into a log line
    with_token = contract.convert("job", JOB | {"artifact": JOB["artifact"] | {"token": "A" * 43}})
    assert with_token.artifact.token and with_token.without_token().artifact.token is None


def test_every_job_option_is_documented_and_read_from_a_campaign_file():
    """Adding a job option is one field in the contract plus its docs line: both are checked here."""
    import msgspec

    from controller.fleet import campaign

    table = (Path(__file__).resolve().parent.parent / "docs" / "campaigns.md").read_text()
    for kind in (contract.RuntimeOptions, contract.RunLength):
        for f in msgspec.inspect.type_info(kind).fields:
            assert f"`{f.encode_name}`" in table or f"`overrides.{f.encode_name}`" in table, f.encode_name
    yaml_keys = set(campaign.YAML_OPTIONS.values())
    assert yaml_keys == {f.encode_name for f in msgspec.inspect.type_info(contract.RuntimeOptions).fields}
    assert set(campaign.OVERRIDES) == {f.encode_name for f in msgspec.inspect.type_info(contract.RunLength).fields}


ACCURACY = {"top1": 0.6, "ci95": [0.3, 0.8], "n": 10, "correct": 6}


@pytest.mark.parametrize(("extra", "problem"), [
    ({"correct_bits": "2UA="}, "come together"),
    ({"samples_sha256": "a" * 64}, "come together"),
    ({"correct_bits": "2Q==", "samples_sha256": "a" * 64}, "holds 1 bytes; 10 samples take 2"),
    ({"correct_bits": "2UE=", "samples_sha256": "a" * 64}, "sets bits past sample 10"),
    ({"correct_bits": "2cA=", "samples_sha256": "a" * 64}, "marks 7 samples right, correct says 6"),
    ({"correct_bits": "2UA", "samples_sha256": "a" * 64}, "not base64"),
])
def test_per_sample_correctness_must_match_its_counts(extra, problem):
    """``correct_bits`` is read sample by sample by the controller: its length, padding and count are checked on arrival."""
    with pytest.raises(ProtocolError, match=problem):
        contract.build(contract.Accuracy, ACCURACY | extra)


def test_accuracy_of_an_older_agent_still_decodes():
    old = contract.build(contract.Accuracy, ACCURACY)
    assert old.correct_bits is None and old.samples_sha256 is None
    new = contract.build(contract.Accuracy, ACCURACY | {"correct_bits": "2UA=", "samples_sha256": "a" * 64})
    assert new.correct_bits == "2UA="  # 11011001 01: six of ten right
