"""``edgeperf-agent zoo fetch`` against a real local HTTP server: verify, cache, resume, and every failure in one line.

The manifest under test is written per test and named by ``$EDGEPERF_ZOO_MANIFEST``; it never depends on the
packaged manifest's remote entries, and nothing here reaches the internet.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import io
import json
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from agent import cli, zoo
from agent.errors import EXIT_UNREACHABLE, EXIT_USAGE, ModelError, SettingsError
from agent.zoo import cache, fetch, listing
from tests.cli_harness import edgeperf_in_process

MODEL = "tiny-net"
BIG, SMALL = "fp32.onnx", "int8.tflite"
SIZES = {BIG: 1_300_000, SMALL: 300_000}  # BIG spans several of fetch's 256 KiB chunks
CUT = 700_000


@dataclass
class Served:
    """What the test server holds, the faults it injects (one per request, in order) and what it was asked."""

    files: dict[str, bytes]
    faults: dict[str, list[str]] = field(default_factory=dict)
    requests: list[tuple[str, str | None]] = field(default_factory=list)
    release: threading.Event = field(default_factory=threading.Event)


class _Handler(BaseHTTPRequestHandler):
    """GET with ``Range: bytes=N-``; faults: ``404``, ``500``, ``cut`` (close the body after CUT bytes),
    ``wrong`` (other bytes of the same length), ``ignore-range`` (200 with the whole file), ``stall`` (no answer)."""

    served: Served

    def do_GET(self) -> None:
        served = self.served
        served.requests.append((self.path, self.headers.get("Range")))
        queue = served.faults.get(self.path, [])
        fault = queue.pop(0) if queue else None
        data = served.files.get(self.path)
        if fault == "stall":
            served.release.wait(10)
            return
        if fault in ("404", "500") or data is None:
            self.send_error(int(fault or 404))
            return
        if fault == "wrong":
            data = bytes(b ^ 0xFF for b in data[:64]) + data[64:]
        start, status = 0, 200
        wanted = self.headers.get("Range")
        if wanted and fault != "ignore-range":
            start, status = int(wanted.removeprefix("bytes=").rstrip("-")), 206
            if start >= len(data):
                self.send_error(416)
                return
        body = data[start:]
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client that refused the answer by its headers
            self.wfile.write(body[:CUT] if fault == "cut" else body)

    def log_message(self, format: str, *args: object) -> None:
        pass


def _serve(handler) -> tuple[ThreadingHTTPServer, threading.Thread]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return httpd, thread


@dataclass
class Zoo:
    """A test zoo: its manifest, cache, server and the bytes each remote file must have."""

    manifest: Path
    cache: Path
    url: str
    served: Served
    payload: dict[str, bytes]

    def fault(self, file: str, *faults: str) -> None:
        self.served.faults[f"/files/{file}"] = list(faults)


def _entry(name: str) -> zoo.ZooEntry:
    return next(e for e in zoo.entries() if e.name == name)


def write_manifest(path: Path, url: str, payload: dict[str, bytes], sizes: dict[str, int] | None = None) -> None:
    files = {
        name: {"url": f"{url}/files/{name}", "sha256": hashlib.sha256(data).hexdigest(),
               "size_bytes": (sizes or {}).get(name, len(data)), "precision": name.split(".")[0], "runtime": "onnxruntime"}
        for name, data in payload.items()
    }
    committed = path.parent / "local-net" / "model.onnx"
    committed.parent.mkdir(parents=True, exist_ok=True)
    committed.write_bytes(b"committed model bytes")
    doc = {"schema": "edgeperf.zoo/2", "models": {
        MODEL: {"task": "image classification, ImageNet-1k", "suite": "MLPerf Inference edge", "benchmark": "resnet50",
                "source": "https://example.invalid/tiny-net", "licence": "Apache-2.0", "dataset": "imagenet",
                "preprocess": "imagenet-vgg", "postprocess": {"kind": "classes", "class_offset": -1},
                "accuracy_target": {"metric": "top1", "reference": 0.76456, "fraction": 0.99, "where": "MLPerf rules"},
                "files": files},
        "local-net": {"task": "a committed model", "files": {"model.onnx": {
            "sha256": hashlib.sha256(committed.read_bytes()).hexdigest(), "size_bytes": committed.stat().st_size,
            "precision": "fp32", "runtime": "onnxruntime"}}},
    }}
    path.write_text(json.dumps(doc))


@pytest.fixture
def served_zoo(tmp_path, monkeypatch) -> Iterator[Zoo]:
    rng = random.Random(15)
    payload = {name: rng.randbytes(size) for name, size in SIZES.items()}
    served = Served({f"/files/{name}": data for name, data in payload.items()})
    handler = type("Handler", (_Handler,), {"served": served})
    httpd, thread = _serve(handler)
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    manifest = tmp_path / "zoo" / "manifest.json"
    manifest.parent.mkdir()
    write_manifest(manifest, url, payload)
    monkeypatch.setenv(zoo.MANIFEST_ENV, str(manifest))
    monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "cache"))
    yield Zoo(manifest, tmp_path / "cache", url, served, payload)
    served.release.set()
    httpd.shutdown()
    httpd.server_close()
    thread.join()


def cached_bytes(z: Zoo, file: str) -> bytes:
    return (z.cache / hashlib.sha256(z.payload[file]).hexdigest() / file).read_bytes()


def test_fetch_verifies_caches_and_then_hits_the_cache(served_zoo):
    seen: list[tuple[str, int, int]] = []
    done = fetch.fetch(MODEL, progress=lambda e, n, total: seen.append((e.file, n, total)))
    assert [(d.entry.file, d.action, d.received) for d in done] == [(n, "downloaded", SIZES[n]) for n in (BIG, SMALL)]
    for file in (BIG, SMALL):
        assert cached_bytes(served_zoo, file) == served_zoo.payload[file]
        sha = hashlib.sha256(served_zoo.payload[file]).hexdigest()
        assert zoo.resolve(f"zoo:{MODEL}/{file}").path == served_zoo.cache / sha / file
    big = [n for f, n, _ in seen if f == BIG]
    assert big == sorted(big) and big[-1] == SIZES[BIG] and {t for f, _, t in seen if f == BIG} == {SIZES[BIG]}
    assert not list(served_zoo.cache.rglob("*.part"))
    asked = len(served_zoo.served.requests)
    assert [d.action for d in fetch.fetch(MODEL)] == ["cached", "cached"]
    assert len(served_zoo.served.requests) == asked  # a hit asks the server nothing


def test_a_cached_file_changed_in_place_is_hashed_again_and_refetched(served_zoo):
    """Size and mtime against the record made at download; a change means hashing again, and a corrupt copy is fetched anew."""
    fetch.fetch(f"{MODEL}/{SMALL}")
    path = _entry(f"{MODEL}/{SMALL}").path
    path.write_bytes(bytes(SIZES[SMALL]))  # same size, other bytes
    assert _entry(f"{MODEL}/{SMALL}").state() == "corrupt"
    with pytest.raises(ModelError, match=f"does not match the manifest's sha256; run `edgeperf-agent zoo fetch {MODEL}`"):
        zoo.resolve(f"zoo:{MODEL}/{SMALL}")
    assert [d.action for d in fetch.fetch(f"zoo:{MODEL}/{SMALL}")] == ["downloaded"]
    assert path.read_bytes() == served_zoo.payload[SMALL]


def test_an_interrupted_transfer_resumes_from_the_part(served_zoo):
    served_zoo.fault(BIG, "cut")
    stopped = r"stopped after 700000 of 1300000 bytes \(the server closed the connection\); run the same command to resume"
    with pytest.raises(fetch.FetchUnreachable, match=stopped):
        fetch.fetch(f"{MODEL}/{BIG}")
    entry = _entry(f"{MODEL}/{BIG}")
    part = cache.part_path(entry.path)
    assert part.stat().st_size == CUT and not entry.path.exists()
    assert entry.state() == "not fetched"
    done = fetch.fetch(f"{MODEL}/{BIG}")
    assert (done[0].action, done[0].received) == ("resumed", SIZES[BIG] - CUT)
    assert served_zoo.served.requests[-1] == (f"/files/{BIG}", f"bytes={CUT}-")
    assert entry.path.read_bytes() == served_zoo.payload[BIG] and not part.exists()


def test_a_bad_part_fails_once_then_downloads_whole(served_zoo):
    """A part whose bytes are not the file's start (left by another version of the file) cannot verify: it is
    deleted with a line saying to run again, and the next fetch downloads the file whole."""
    entry = _entry(f"{MODEL}/{BIG}")
    entry.path.parent.mkdir(parents=True)
    cache.part_path(entry.path).write_bytes(bytes(CUT))
    with pytest.raises(fetch.FetchError, match="it resumed an earlier part, so run the same command once more"):
        fetch.fetch(f"{MODEL}/{BIG}")
    assert served_zoo.served.requests[-1][1] == f"bytes={CUT}-" and not cache.part_path(entry.path).exists()
    assert fetch.fetch(f"{MODEL}/{BIG}")[0].action == "downloaded"
    assert entry.path.read_bytes() == served_zoo.payload[BIG]


def test_a_server_that_ignores_range_restarts_the_part(served_zoo):
    served_zoo.fault(BIG, "cut", "ignore-range")
    with pytest.raises(fetch.FetchUnreachable):
        fetch.fetch(f"{MODEL}/{BIG}")
    done = fetch.fetch(f"{MODEL}/{BIG}")
    assert served_zoo.served.requests[-1][1] == f"bytes={CUT}-"  # asked for the rest, was sent everything
    assert (done[0].action, done[0].received) == ("downloaded", SIZES[BIG])
    assert cached_bytes(served_zoo, BIG) == served_zoo.payload[BIG]


def test_wrong_bytes_are_deleted_and_nothing_cached_is_lost(served_zoo):
    fetch.fetch(f"{MODEL}/{SMALL}")
    served_zoo.fault(BIG, "wrong")
    entry = _entry(f"{MODEL}/{BIG}")
    wrong = bytes(b ^ 0xFF for b in served_zoo.payload[BIG][:64]) + served_zoo.payload[BIG][64:]
    with pytest.raises(fetch.FetchError) as info:
        fetch.fetch(f"{MODEL}/{BIG}")
    message = str(info.value)
    assert f"expected {entry.sha256}, got {hashlib.sha256(wrong).hexdigest()}" in message and "nothing was cached" in message
    assert "\n" not in message and info.value.exit_code == 1
    assert not entry.path.exists() and not cache.part_path(entry.path).exists()
    assert _entry(f"{MODEL}/{SMALL}").state() == "fetched"


def test_a_length_other_than_the_pin_is_refused_before_anything_is_written(served_zoo):
    write_manifest(served_zoo.manifest, served_zoo.url, served_zoo.payload, sizes={BIG: SIZES[BIG] + 1})
    with pytest.raises(fetch.FetchError, match=f"sends {SIZES[BIG]} bytes .* pins {SIZES[BIG] + 1}"):
        fetch.fetch(f"{MODEL}/{BIG}")
    assert _entry(f"{MODEL}/{BIG}").state() == "not fetched"


@pytest.mark.parametrize("status", ["404", "500"])
def test_an_http_error_is_one_line_naming_url_and_status(served_zoo, status):
    served_zoo.fault(SMALL, status)
    with pytest.raises(fetch.FetchError) as info:
        fetch.fetch(f"{MODEL}/{SMALL}")
    assert f"{served_zoo.url}/files/{SMALL} answered HTTP {status}" in str(info.value) and "\n" not in str(info.value)
    assert info.value.exit_code == 1


def closed_port() -> int:
    """A port nothing listens on: bound, never listened on, closed."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_refused_connection_and_a_silent_server(served_zoo):
    closed = closed_port()
    write_manifest(served_zoo.manifest, f"http://127.0.0.1:{closed}", served_zoo.payload)
    with pytest.raises(fetch.FetchUnreachable, match=f"cannot reach http://127.0.0.1:{closed}/files/{SMALL} "
                                                     r"\(connection refused\); fetching needs internet") as info:
        fetch.fetch(f"{MODEL}/{SMALL}")
    assert info.value.exit_code == EXIT_UNREACHABLE
    write_manifest(served_zoo.manifest, served_zoo.url, served_zoo.payload)
    served_zoo.fault(SMALL, "stall")
    with pytest.raises(fetch.FetchUnreachable, match=r"\(timed out after 0.3 s\)"):
        fetch.fetch(f"{MODEL}/{SMALL}", timeout_s=0.3)


def test_a_full_disk_keeps_the_part_and_says_how_much_is_needed(served_zoo):
    """A real ENOSPC: the part is a link to /dev/full, which refuses every write with "No space left on device"."""
    if not Path("/dev/full").exists():
        pytest.skip("platform: no /dev/full to fill")
    fetch.fetch(f"{MODEL}/{SMALL}")
    entry = _entry(f"{MODEL}/{BIG}")
    entry.path.parent.mkdir(parents=True)
    cache.part_path(entry.path).symlink_to("/dev/full")
    with pytest.raises(fetch.FetchError) as info:
        fetch.fetch(f"{MODEL}/{BIG}")
    message = str(info.value)
    assert message.startswith(f"disk full writing {cache.part_path(entry.path)}: zoo:{MODEL}/{BIG} needs 1.2 MiB more (")
    assert "free there" in message and cache.CACHE_ENV in message and "resume" in message and "\n" not in message
    assert cache.part_path(entry.path).is_symlink() and not entry.path.exists()
    assert _entry(f"{MODEL}/{SMALL}").state() == "fetched"
    assert cached_bytes(served_zoo, SMALL) == served_zoo.payload[SMALL]


def test_a_second_fetch_of_a_file_being_fetched_is_refused(served_zoo):
    fcntl = pytest.importorskip("fcntl", reason="platform: no advisory file locks (Windows)")
    entry = _entry(f"{MODEL}/{BIG}")
    entry.path.parent.mkdir(parents=True)
    with cache.part_path(entry.path).open("ab") as held:
        fcntl.flock(held.fileno(), fcntl.LOCK_EX)
        with pytest.raises(fetch.FetchError, match=r"another fetch is writing .*fp32\.onnx\.part; wait for it to finish"):
            fetch.fetch(f"{MODEL}/{BIG}")
    assert not served_zoo.served.requests
    assert fetch.fetch(f"{MODEL}/{BIG}")[0].action == "downloaded"


def test_a_mirror_is_any_static_server_over_a_zoo_cache(served_zoo, tmp_path, monkeypatch):
    """``--url-base``: ``<base>/<sha256>/<file>``, the cache's layout, so ``python -m http.server`` in a cache is a mirror."""
    fetch.fetch(MODEL)
    quiet = type("Quiet", (SimpleHTTPRequestHandler,), {"log_message": lambda *_: None})
    httpd, thread = _serve(functools.partial(quiet, directory=str(served_zoo.cache)))
    try:
        monkeypatch.setenv(cache.CACHE_ENV, str(tmp_path / "second-cache"))
        asked = len(served_zoo.served.requests)
        done = fetch.fetch(MODEL, url_base=f"http://127.0.0.1:{httpd.server_address[1]}/")
        assert [d.action for d in done] == ["downloaded", "downloaded"]
        assert len(served_zoo.served.requests) == asked  # nothing from the published URLs
        assert all(d.path.read_bytes() == served_zoo.payload[d.entry.file] for d in done)
        assert all(d.path.is_relative_to(tmp_path / "second-cache") for d in done)
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()
    with pytest.raises(SettingsError, match="--url-base 'ftp://x' is not an http"):
        fetch.fetch(MODEL, url_base="ftp://x")


def test_a_failing_published_url_falls_back_to_the_manifests_mirrors(served_zoo):
    """The ONNX model zoo's LFS links stopped serving; the manifest lists mirrors of the same bytes. A 404 at
    the published URL, then wrong bytes at the first mirror: the second mirror's verified copy is cached.
    When every source fails, one line names each failure."""
    doc = json.loads(served_zoo.manifest.read_text())
    facts = doc["models"][MODEL]["files"][SMALL]
    facts["url"] = f"{served_zoo.url}/gone/{SMALL}"
    facts["mirrors"] = [f"{served_zoo.url}/bad/{SMALL}", f"{served_zoo.url}/files/{SMALL}"]
    served_zoo.manifest.write_text(json.dumps(doc))
    served_zoo.served.files[f"/bad/{SMALL}"] = served_zoo.payload[SMALL]
    served_zoo.served.faults[f"/bad/{SMALL}"] = ["wrong"]
    done = fetch.fetch(f"{MODEL}/{SMALL}")
    assert done[0].action == "downloaded" and done[0].path.read_bytes() == served_zoo.payload[SMALL]
    assert [path for path, _ in served_zoo.served.requests] == [f"/gone/{SMALL}", f"/bad/{SMALL}", f"/files/{SMALL}"]

    done[0].path.unlink()
    served_zoo.served.faults[f"/bad/{SMALL}"] = ["wrong"]
    served_zoo.fault(SMALL, "500")
    with pytest.raises(fetch.FetchError) as info:
        fetch.fetch(f"{MODEL}/{SMALL}")
    message = str(info.value)
    assert "\n" not in message and "its mirrors failed too" in message
    assert all(f"/{where}/{SMALL}" in message for where in ("gone", "bad", "files"))
    assert "HTTP 404" in message and "HTTP 500" in message


def test_an_unfetched_remote_file_names_the_fetch_command(served_zoo):
    with pytest.raises(ModelError) as info:
        zoo.resolve(f"zoo:{MODEL}/{BIG}")
    assert str(info.value) == (f"zoo:{MODEL}/{BIG} is not fetched; run `edgeperf-agent zoo fetch {MODEL}` (needs internet, "
                               f"or a mirror with --url-base) to download it (1.2 MiB) into {served_zoo.cache}")
    committed = zoo.resolve("zoo:local-net/model.onnx")
    assert committed.path == served_zoo.manifest.parent / "local-net" / "model.onnx" and committed.state() == "committed"
    assert committed.model.task == "a committed model" and committed.model.suite is None
    remote = _entry(f"{MODEL}/{BIG}")
    assert (remote.model.benchmark, remote.model.preprocess, remote.model.postprocess["class_offset"]) == (
        "resnet50", "imagenet-vgg", -1)


def test_the_listing_shows_each_files_state(served_zoo, capsys):
    fetch.fetch(f"{MODEL}/{SMALL}")
    assert cli.main(["zoo"]) == 0
    out = capsys.readouterr().out
    rows = {line.split()[0]: line for line in out.splitlines() if line.strip().startswith("zoo:")}
    assert "not fetched" in rows[f"zoo:{MODEL}/{BIG}"] and "1.2 MiB" in rows[f"zoo:{MODEL}/{BIG}"]
    assert " fetched " in rows[f"zoo:{MODEL}/{SMALL}"] and "not fetched" not in rows[f"zoo:{MODEL}/{SMALL}"]
    assert "committed" in rows["zoo:local-net/model.onnx"]
    assert "suite MLPerf Inference edge" in out and "licence Apache-2.0" in out
    assert "accuracy target: top1 >= 0.7569 (99% of 0.76456)" in out
    assert cli.main(["zoo", "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    states = {f["name"]: (f["state"], f["path"]) for m in doc["models"] for f in m["files"]}
    assert states[f"zoo:{MODEL}/{BIG}"] == ("not fetched", None)
    assert states[f"zoo:{MODEL}/{SMALL}"] == ("fetched", str(_entry(f"{MODEL}/{SMALL}").path))
    assert doc["cache"] == str(served_zoo.cache) and listing.as_json() == doc


def error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "error:" in line]


def test_cli_fetch_exit_codes_and_one_line_errors(served_zoo, capsys):
    assert cli.main(["zoo", "fetch", "nope", f"{MODEL}/int4.onnx"]) == EXIT_USAGE
    captured = capsys.readouterr()
    assert error_lines(captured.err) == [
        "edgeperf-agent: error: no zoo model named 'nope', 'tiny-net/int4.onnx'; known: tiny-net, local-net "
        "(or MODEL/FILE; list them with `edgeperf-agent zoo`)"]
    assert not served_zoo.served.requests  # nothing downloaded when one name is unknown
    served_zoo.fault(BIG, "404")
    assert cli.main(["zoo", "fetch", MODEL, "local-net"]) == 1
    captured = capsys.readouterr()
    assert len(error_lines(captured.err)) == 1 and f"/files/{BIG} answered HTTP 404" in captured.err
    assert "Traceback" not in captured.err
    assert f"zoo:{MODEL}/{SMALL}  downloaded  " in captured.out and "zoo:local-net/model.onnx  committed  " in captured.out
    assert cli.main(["zoo", "fetch", MODEL, "--timeout", "5"]) == 0
    captured = capsys.readouterr()
    assert f"zoo:{MODEL}/{BIG}  downloaded" in captured.out and f"zoo:{MODEL}/{SMALL}  cached" in captured.out
    assert f"zoo:{MODEL}/{BIG}: 1.2 MiB of 1.2 MiB (100%)" in captured.err  # progress on stderr
    assert not error_lines(captured.err)


def test_cli_fetch_of_an_unreachable_server_exits_3(served_zoo, capsys):
    port = closed_port()
    assert cli.main(["zoo", "fetch", MODEL, "--url-base", f"http://127.0.0.1:{port}"]) == EXIT_UNREACHABLE
    err = capsys.readouterr().err
    assert len(error_lines(err)) == 2 and all(f"cannot reach http://127.0.0.1:{port}/" in line for line in error_lines(err))


def test_a_manifest_entry_that_could_escape_the_cache_is_refused(served_zoo):
    doc = json.loads(served_zoo.manifest.read_text())
    doc["models"][MODEL]["files"]["../evil.onnx"] = doc["models"][MODEL]["files"][BIG]
    served_zoo.manifest.write_text(json.dumps(doc))
    with pytest.raises(ModelError, match=r"tiny-net/\.\./evil\.onnx: '\.\./evil\.onnx' is not a plain file name"):
        zoo.entries()
    served_zoo.manifest.write_text(json.dumps({"schema": "edgeperf.zoo/9", "models": {}}))
    with pytest.raises(ModelError, match=r"schema 'edgeperf\.zoo/9' is not one of edgeperf\.zoo/1, edgeperf\.zoo/2"):
        zoo.entries()


# --- serving fetched models to an offline fleet ----------------------------------------------------


def campaign_text(artifact: str) -> str:
    return f"name: c\nmodels:\n  - name: m\n    variants:\n      - artifact: {artifact}\n"


def test_a_campaign_naming_an_unfetched_model_fails_at_load_with_the_fetch_line(served_zoo, tmp_path):
    from controller.fleet import campaign

    with pytest.raises(campaign.CampaignError) as info:
        campaign.loads(campaign_text(f"zoo:{MODEL}/{BIG}"), "camp.yaml", tmp_path)
    assert str(info.value).startswith("camp.yaml:5:")
    assert f"zoo:{MODEL}/{BIG} is not fetched; run `edgeperf-agent zoo fetch {MODEL}`" in str(info.value)
    fetch.fetch(f"{MODEL}/{BIG}")
    loaded = campaign.loads(campaign_text(f"zoo:{MODEL}/{BIG}"), "camp.yaml", tmp_path)
    assert loaded.models[0].variants[0].artifact == f"zoo:{MODEL}/{BIG}"


def test_the_artifact_server_serves_a_fetched_zoo_file_to_agents(served_zoo, tmp_path):
    """What the scheduler does for a zoo variant: resolve to the cached file, register it, grant a job's token;
    the agent's artifact cache downloads and verifies it."""
    from agent.artifacts import ArtifactCache
    from controller.fleet.artifact_server import ArtifactServer
    from controller.fleet.scheduler import artifact_path

    fetch.fetch(f"{MODEL}/{BIG}")
    path = artifact_path(f"zoo:{MODEL}/{BIG}")
    assert path == _entry(f"{MODEL}/{BIG}").path
    with ArtifactServer() as server:
        block = server.grant(server.add(path), ttl_s=60)
        assert (block["name"], block["sha256"], block["size"]) == (BIG, _entry(f"{MODEL}/{BIG}").sha256, SIZES[BIG])
        got = ArtifactCache(tmp_path / "agent-cache").fetch(**block)
    assert got.name == BIG and got.read_bytes() == served_zoo.payload[BIG]


@pytest.mark.parametrize(("argv", "fragment"), [
    (["zoo", "fetch"], "zoo fetch needs a model name"),
    (["zoo", "--url-base", "http://mirror"], "--url-base belongs to 'zoo fetch'"),
    (["zoo", "list", MODEL], "a model name belongs to 'zoo fetch'"),
    (["zoo", "fetch", MODEL, "--json"], "--json belongs to the listing"),
    (["zoo", "fetch", MODEL, "--url-base", "file:///srv/zoo"], "--url-base 'file:///srv/zoo' is not an http(s) URL"),
])
def test_cli_zoo_usage_mistakes_are_one_line(served_zoo, capsys, argv, fragment):
    assert cli.main(argv) == EXIT_USAGE
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1 and fragment in lines[0]
    assert not served_zoo.served.requests


def test_the_controller_lists_the_zoo_as_the_agent_does(served_zoo, capsys):
    fetch.fetch(f"{MODEL}/{SMALL}")
    assert cli.main(["zoo"]) == 0
    agent_text = capsys.readouterr().out
    done = edgeperf_in_process("zoo")
    assert done.returncode == 0 and done.stdout == agent_text
    done = edgeperf_in_process("zoo", "--json")
    assert done.returncode == 0 and json.loads(done.stdout) == listing.as_json()


@pytest.fixture
def fleet_and_device(tmp_path):
    """A real controller fleet (embedded broker, artifact server on 127.0.0.1) and device d1's connection."""
    from agent.contract import Topics
    from agent.transport import BrokerUrl, Connection
    from controller.fleet import session
    from controller.fleet.broker import EmbeddedBroker

    with EmbeddedBroker() as broker:
        options = session.FleetOptions(broker=broker.url, db=tmp_path / "c.db", artifact_host="127.0.0.1",
                                       artifact_advertise="127.0.0.1", offline_grace_s=0.5, device_wait_s=5)
        with session.fleet(options, artifacts=True, owner=True) as fleet:
            device = Connection("dev-zoo", BrokerUrl.parse(broker.url), subscriptions=[(Topics().device("d1", "jobs"), 1)])
            device.start(wait_s=10)
            yield fleet, device
            device.stop()


def say(fleet, device, kind: str, msg_type: str, data: dict) -> None:
    from agent.contract import Envelope, Topics

    device.publish(Topics().device("d1", kind), Envelope(msg_type, "d1", data).encode(fleet.key), retain=kind == "status")


def next_job(fleet, device, campaign_id: str):
    """Pump the controller until d1 is sent a job; that job."""
    import queue
    import time

    from agent.contract import Topics, decode

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        fleet.pump(0.02)
        with fleet.store.transaction():
            fleet.tick(campaign_id)
        try:
            message = device.inbox.get(timeout=0.02)
        except queue.Empty:
            continue
        env = decode(Topics().parse(message.topic)[1], message.payload, fleet.key)
        if env.type == "job":
            return env.data
    pytest.fail("d1 was sent no job within 10 s")


def test_a_campaign_ships_a_fetched_zoo_model_from_the_controller_and_fails_once_it_is_gone(served_zoo, tmp_path,
                                                                                                fleet_and_device):
    """Offline fleets: the controller resolves the zoo name to its cached copy, pins it and serves it by sha256 with a
    job token; the agent's artifact cache downloads and verifies it. A cached copy deleted mid-campaign fails the
    jobs still to run, with the fetch command, instead of stopping the controller."""
    import time

    from agent.artifacts import ArtifactCache
    from controller.fleet import campaign

    fleet, device = fleet_and_device
    fetch.fetch(f"{MODEL}/{BIG}")
    spec = campaign.loads(f"name: offline\nprofile: smoke\nscenarios: [SingleStream, Offline]\ndevices: {{ids: [d1]}}\n"
                          f"models:\n  - name: m\n    variants:\n      - artifact: zoo:{MODEL}/{BIG}\n", "c.yaml", tmp_path)
    say(fleet, device, "status", "status", {"state": "online", "session": "5e551075e551075e", "heartbeat_s": 10.0, "tags": [],
                                            "agent_version": "test"})
    deadline = time.monotonic() + 10
    while "d1" not in fleet.devices and time.monotonic() < deadline:
        fleet.pump(0.05)
    assert "d1" in fleet.devices
    campaign_id = fleet.create_campaign(spec)
    entry = _entry(f"{MODEL}/{BIG}")
    assert fleet.store.campaign(campaign_id)["spec"]["pins"] == {f"zoo:{MODEL}/{BIG}": entry.sha256}
    job = next_job(fleet, device, campaign_id)
    art = job.artifact
    assert (art.name, art.sha256, art.size) == (BIG, entry.sha256, SIZES[BIG]) and art.url.startswith("http://127.0.0.1:")
    got = ArtifactCache(tmp_path / "agent-cache").fetch(art.url, art.sha256, art.size, art.name, art.archive, token=art.token)
    assert got.read_bytes() == served_zoo.payload[BIG]

    entry.path.unlink()  # someone cleared the zoo cache on the controller
    say(fleet, device, "events", "accepted", {"run_id": job.run_id})
    say(fleet, device, "events", "failed", {"run_id": job.run_id, "reason": "test ends this attempt", "retryable": False})
    deadline, state = time.monotonic() + 10, "running"
    while state == "running" and time.monotonic() < deadline:
        fleet.pump(0.05)
        with fleet.store.transaction():
            state = fleet.tick(campaign_id)
    assert state == "finished_with_failures"
    errors = sorted(j.error for j in fleet.store.jobs(campaign_id))
    assert errors[0] == "d1: test ends this attempt"
    assert errors[1].startswith(f"zoo:{MODEL}/{BIG} is not fetched; run `edgeperf-agent zoo fetch {MODEL}`")


def test_progress_on_a_terminal_is_one_redrawn_line_ended_before_an_error(served_zoo):
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    out, entry = Terminal(), _entry(f"{MODEL}/{BIG}")
    progress = fetch.ProgressPrinter(out)
    progress(entry, 0, SIZES[BIG])
    assert out.getvalue().startswith("\r") and "\n" not in out.getvalue()
    progress.end_line()
    progress.end_line()  # only an open line is ended
    assert out.getvalue().count("\n") == 1
    progress(entry, SIZES[BIG], SIZES[BIG])
    assert out.getvalue().endswith(f"zoo:{MODEL}/{BIG}: 1.2 MiB of 1.2 MiB (100%)\033[K\n")
