"""Model artifacts over real loopback HTTP: the controller's server, the agent's verifying cache.

Tampered cache entries are re-fetched (not refused): the job's sha256 is the authority, so a
fresh download that verifies is as good as the original.
"""

from __future__ import annotations

import hashlib
import http.client
import io
import os
import shutil
import socket
import tarfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path

import pytest

from agent.artifacts import ArtifactCache, ArtifactError
from agent.errors import ModelError
from agent.model_file import sha256_of
from controller.fleet.artifact_server import ArtifactServer, pack_dir

ZOO = Path(__file__).resolve().parent.parent / "agent" / "zoo" / "fashion-mnist-cnn"
TFLITE = ZOO / "int8.tflite"
PACKAGE = ZOO / "int8.mlpackage"


@pytest.fixture
def server() -> Iterator[ArtifactServer]:
    with ArtifactServer() as srv:
        yield srv


@pytest.fixture
def cache_root(tmp_path: Path) -> Path:
    return tmp_path / "cache"


@pytest.fixture
def cache(cache_root: Path) -> ArtifactCache:
    return ArtifactCache(cache_root)


def granted(server: ArtifactServer, path: Path, ttl_s: float = 60.0) -> dict:
    """Register ``path`` and grant one job's token for it, as the fleet does per dispatched job."""
    return server.grant(server.add(path), ttl_s)


def files_under(root: Path) -> list[Path]:
    return sorted(root.rglob("*")) if root.exists() else []


class Canned:
    """A tiny real HTTP server that answers GETs with fixed bytes, or ``/artifact`` with a redirect.

    It records each request's path and Authorization header, so tests see where a token went.
    """

    def __init__(self, body: bytes = b"", content_length: bool = True, location: str | None = None) -> None:
        canned = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                canned.requests.append((self.path, self.headers.get("Authorization")))
                if canned.location and self.path == "/artifact":
                    self.send_response(302)
                    self.send_header("Location", canned.location)
                    self.end_headers()
                    return
                self.send_response(200)
                if canned.content_length:
                    self.send_header("Content-Length", str(len(canned.body)))
                self.end_headers()
                self.wfile.write(canned.body)

            def log_message(self, *args: object) -> None:
                pass

        self.body, self.content_length, self.location = body, content_length, location
        self.requests: list[tuple[str, str | None]] = []
        self.httpd = HTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    @property
    def url(self) -> str:
        return f"{self.base}/artifact"

    def __enter__(self) -> Canned:
        self.thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


# -- fetching real zoo artifacts -------------------------------------------------------------------


def test_a_model_file_arrives_intact_and_the_second_fetch_is_a_cache_hit(server, cache, cache_root):
    block = granted(server, TFLITE)
    assert block["sha256"] == sha256_of(TFLITE) == hashlib.sha256(TFLITE.read_bytes()).hexdigest()
    assert (block["size"], block["name"], block["archive"]) == (TFLITE.stat().st_size, "int8.tflite", None)
    assert block["url"] == f"{server.url}/artifacts/{block['sha256']}"

    path = cache.fetch(**block)
    assert path == cache_root / block["sha256"] / "int8.tflite"
    assert path.read_bytes() == TFLITE.read_bytes()
    assert server.request_count == 1

    assert cache.fetch(**block) == path
    assert server.request_count == 1
    assert ArtifactCache(cache_root).fetch(**block) == path  # a restarted agent reuses the cache
    assert server.request_count == 1


def test_a_package_directory_is_shipped_as_tar_and_extracted_to_the_same_tree(server, cache, cache_root):
    block = granted(server, PACKAGE)
    assert block["archive"] == "tar" and block["name"] == "int8.mlpackage"
    assert block["sha256"] == hashlib.sha256(pack_dir(PACKAGE)).hexdigest()

    path = cache.fetch(**block)
    assert path == cache_root / block["sha256"] / "int8.mlpackage" and path.is_dir()
    assert sha256_of(path) == sha256_of(PACKAGE)
    assert sorted(p.relative_to(path) for p in path.rglob("*")) == sorted(p.relative_to(PACKAGE) for p in PACKAGE.rglob("*"))
    assert server.request_count == 1
    assert cache.fetch(**block) == path
    assert server.request_count == 1


def test_a_tampered_cached_file_is_fetched_again(server, cache):
    block = granted(server, TFLITE)
    path = cache.fetch(**block)
    data = path.read_bytes()
    path.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    assert cache.fetch(**block) == path
    assert server.request_count == 2
    assert path.read_bytes() == TFLITE.read_bytes()


@pytest.mark.parametrize("tamper", ["edit a file", "add a file", "remove a file", "lose the record"])
def test_a_tampered_cached_package_is_fetched_again(server, cache, tamper):
    block = granted(server, PACKAGE)
    path = cache.fetch(**block)
    weights = path / "Data" / "com.apple.CoreML" / "weights" / "weight.bin"
    if tamper == "edit a file":
        data = weights.read_bytes()
        weights.write_bytes(bytes([data[0] ^ 0xFF]) + data[1:])
    elif tamper == "add a file":
        (path / "extra.json").write_text("{}")
    elif tamper == "remove a file":
        weights.unlink()
    else:
        (path.parent / ".int8.mlpackage.verified").unlink()
    assert cache.fetch(**block) == path
    assert server.request_count == 2
    assert sha256_of(path) == sha256_of(PACKAGE)


# -- refusals: nothing unverified is ever left in the cache -----------------------------------------


@pytest.mark.parametrize("model", [TFLITE, PACKAGE], ids=["file", "package"])
def test_a_wrong_hash_is_refused_and_leaves_nothing(server, cache, cache_root, model):
    block = granted(server, model)
    wrong = hashlib.sha256(b"some other model").hexdigest()
    with pytest.raises(ArtifactError) as info:
        cache.fetch(**{**block, "sha256": wrong})
    assert str(info.value) == (
        f"artifact hash mismatch for {model.name}: expected {wrong[:12]}…, got {block['sha256'][:12]}…; "
        f"the controller's copy changed or the transfer was corrupted"
    )
    assert files_under(cache_root) == []


def test_a_model_edited_on_the_controller_after_the_job_was_made_is_refused(server, cache, cache_root, tmp_path):
    model = tmp_path / "int8.tflite"
    shutil.copyfile(TFLITE, model)
    block = granted(server, model)
    data = model.read_bytes()
    model.write_bytes(data[:100] + bytes([data[100] ^ 0xFF]) + data[101:])  # same size, other bytes
    with pytest.raises(ArtifactError, match=r"artifact hash mismatch for int8\.tflite"):
        cache.fetch(**block)
    assert files_under(cache_root) == []


@pytest.mark.parametrize("delta", [1, -1])
def test_a_size_that_differs_from_the_job_is_refused(server, cache, cache_root, delta):
    block = granted(server, TFLITE)
    declared = block["size"] + delta
    with pytest.raises(ArtifactError, match=f"sends {block['size']} bytes but the job declares {declared}"):
        cache.fetch(**{**block, "size": declared})
    assert files_under(cache_root) == []


@pytest.mark.parametrize("delta", [1, -1])
def test_a_body_without_content_length_is_still_held_to_the_declared_size(cache, cache_root, delta):
    body = b"x" * 5000
    with Canned(body, content_length=False) as canned, pytest.raises(ArtifactError, match="the job declares"):
        cache.fetch(canned.url, hashlib.sha256(body).hexdigest(), len(body) + delta, "m.onnx")
    assert files_under(cache_root) == []


def test_an_artifact_over_the_limit_is_refused_before_any_request(server, cache_root):
    block = granted(server, TFLITE)
    small = ArtifactCache(cache_root, max_artifact_bytes=block["size"] - 1)
    with pytest.raises(ArtifactError, match="over this agent's limit"):
        small.fetch(**block)
    assert server.request_count == 0
    assert files_under(cache_root) == []


def test_an_unknown_artifact_is_refused_naming_the_url(server, cache):
    token = granted(server, TFLITE)["token"]  # a valid token, but for another hash: unknown hashes are not probed
    url = f"{server.url}/artifacts/{'0' * 64}"
    with pytest.raises(ArtifactError) as info:
        cache.fetch(url, "0" * 64, 10, "m.tflite", token=token)
    assert url in str(info.value) and "HTTP 403" in str(info.value)


def test_a_closed_port_is_connection_refused(cache, cache_root):
    gone = ArtifactServer()
    block = gone.add(TFLITE)
    gone.start()
    gone.stop()
    with pytest.raises(ArtifactError) as info:
        cache.fetch(**block)
    assert block["url"] in str(info.value) and "connection refused" in str(info.value).lower()
    assert files_under(cache_root) == []


def test_a_server_that_never_answers_times_out(cache, cache_root):
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(1)  # the kernel completes the handshake; nobody ever answers
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/artifacts/x"
        with pytest.raises(ArtifactError, match="timed out"):
            cache.fetch(url, "0" * 64, 10, "m.tflite", timeout_s=0.3)
    assert files_under(cache_root) == []


@pytest.mark.parametrize("url", ["file:///etc/passwd", "ftp://127.0.0.1/m.tflite", "127.0.0.1:8000/m.tflite", ""])
def test_only_http_and_https_urls_are_fetched(cache, cache_root, url):
    with pytest.raises(ArtifactError, match="not http or https"):
        cache.fetch(url, "0" * 64, 10, "m.tflite")
    assert files_under(cache_root) == []


@pytest.mark.parametrize("target", ["ftp://127.0.0.1/m.tflite", "file:///etc/passwd"])
def test_a_redirect_away_from_http_is_refused(cache, cache_root, target):
    with Canned(location=target) as canned, pytest.raises(ArtifactError, match="HTTP 302") as info:
        cache.fetch(canned.url, "0" * 64, 10, "m.tflite")
    assert target in str(info.value)
    assert files_under(cache_root) == []


@pytest.mark.parametrize(
    ("field", "value"),
    [("name", "../m.tflite"), ("name", ".hidden"), ("name", "a/b.tflite"), ("name", ""), ("sha256", "abc"), ("archive", "zip")],
)
def test_job_fields_that_could_escape_the_cache_are_refused(server, cache, cache_root, field, value):
    block = granted(server, TFLITE)
    with pytest.raises(ArtifactError):
        cache.fetch(**{**block, field: value})
    assert server.request_count == 0
    assert files_under(cache_root) == []


# -- hostile archives -------------------------------------------------------------------------------


def crafted_tar(members: list[tuple[tarfile.TarInfo, bytes | None]]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buffer.getvalue()


def entry(name: str, kind: bytes = tarfile.REGTYPE, linkname: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname, info.mode = kind, linkname, 0o644
    return info


def hostile_archives(outside: Path) -> dict[str, bytes]:
    ok = (entry("Manifest.json"), b"{}")
    return {
        "dot-dot": crafted_tar([ok, (entry("../../../evil-dotdot"), b"pwned")]),
        "absolute": crafted_tar([ok, (entry(str(outside / "evil-absolute")), b"pwned")]),
        "symlink": crafted_tar(
            [ok, (entry("link", tarfile.SYMTYPE, str(outside)), None), (entry("link/evil-symlink"), b"pwned")]
        ),
        "hardlink": crafted_tar([ok, (entry("hard", tarfile.LNKTYPE, str(outside / "victim")), None)]),
        "device": crafted_tar([ok, (entry("null", tarfile.CHRTYPE), None)]),
        "fifo": crafted_tar([ok, (entry("pipe", tarfile.FIFOTYPE), None)]),
        "not a tar": b"\x89PNG not a tar at all" * 40,
    }


@pytest.mark.parametrize("case", ["dot-dot", "absolute", "symlink", "hardlink", "device", "fifo", "not a tar"])
def test_a_hostile_archive_is_refused_and_writes_nothing(tmp_path, cache, cache_root, case):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "victim").write_bytes(b"keep me")
    body = hostile_archives(outside)[case]
    with Canned(body) as canned, pytest.raises(ArtifactError, match=r"int8\.mlpackage"):
        cache.fetch(canned.url, hashlib.sha256(body).hexdigest(), len(body), "int8.mlpackage", archive="tar")
    assert files_under(cache_root) == []
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["cache", "outside", "victim"]
    assert (outside / "victim").read_bytes() == b"keep me"


# -- the controller side ----------------------------------------------------------------------------


def test_pack_dir_depends_only_on_relative_paths_and_bytes(tmp_path):
    first = pack_dir(PACKAGE)
    assert pack_dir(PACKAGE) == first

    copy = tmp_path / "int8.mlpackage"
    shutil.copytree(PACKAGE, copy, copy_function=shutil.copyfile)  # new mtimes and default modes
    for i, path in enumerate(sorted(copy.rglob("*"), reverse=True)):
        os.utime(path, (1_000_000 + i, 1_000_000 + i))
        path.chmod(0o700 if path.is_dir() else 0o600)
    assert pack_dir(copy) == first

    with tarfile.open(fileobj=io.BytesIO(first)) as tar:
        members = tar.getmembers()
    assert [m.name for m in members] == sorted(p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*"))
    assert {(m.mtime, m.uid, m.gid, m.uname, m.gname) for m in members} == {(0, 0, 0, "", "")}
    assert {m.mode for m in members if m.isdir()} == {0o755} and {m.mode for m in members if m.isfile()} == {0o644}

    (copy / "Manifest.json").write_text((copy / "Manifest.json").read_text() + " ")
    assert pack_dir(copy) != first


def test_pack_dir_refuses_a_symlink_instead_of_following_it(tmp_path):
    package = tmp_path / "m.mlpackage"
    shutil.copytree(PACKAGE, package)
    (package / "escape").symlink_to("/etc")
    with pytest.raises(ModelError, match="escape"):
        pack_dir(package)


def request(server: ArtifactServer, method: str, path: str, token: str | None = None) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        conn.request(method, path, headers={"Authorization": f"Bearer {token}"} if token else {})
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_the_server_serves_only_registered_hashes_and_logs_nothing_to_stderr(server, capfd):
    block = granted(server, TFLITE)
    sha, token = block["sha256"], block["token"]
    status, headers, body = request(server, "HEAD", f"/artifacts/{sha}", token)
    assert (status, headers["Content-Length"], body) == (200, str(TFLITE.stat().st_size), b"")
    status, _, body = request(server, "GET", f"/artifacts/{sha}?x=1", token)
    assert (status, body) == (200, TFLITE.read_bytes())

    for path in ("/etc/passwd", f"/{sha}", "/"):
        assert request(server, "GET", path, token)[0] == 404, path
    for path in ("/artifacts/../../../../etc/passwd", f"/artifacts/{'0' * 64}", f"/artifacts/{sha.upper()}"):
        assert request(server, "GET", path, token)[0] == 403, path  # the token opens one hash, nothing else
    status, headers, _ = request(server, "POST", f"/artifacts/{sha}", token)
    assert (status, headers["Allow"]) == (405, "GET, HEAD")
    assert request(server, "DELETE", f"/artifacts/{sha}")[0] == 405
    assert server.request_count == 10
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_the_server_wants_this_jobs_token_for_this_artifact(server, method, caplog):
    caplog.set_level("DEBUG")
    block = granted(server, TFLITE)
    other = granted(server, PACKAGE)
    revoked = granted(server, TFLITE)
    server.revoke(revoked["token"])
    path = f"/artifacts/{block['sha256']}"

    status, headers, _ = request(server, method, path)
    assert status == 401 and headers["WWW-Authenticate"].startswith("Bearer")
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    conn.request(method, path, headers={"Authorization": f"Basic {block['token']}"})
    assert conn.getresponse().status == 401
    conn.close()
    wrong = ("y" if block["token"][0] == "x" else "x") + block["token"][1:]  # one character off, never the token itself
    assert request(server, method, path, wrong)[0] == 403  # wrong
    assert request(server, method, path, other["token"])[0] == 403  # another artifact's
    assert request(server, method, path, revoked["token"])[0] == 403  # revoked when its job ended
    short = granted(server, TFLITE, ttl_s=2.0)  # granted just before use: a busy machine may take a while to ask
    assert request(server, method, path, short["token"])[0] == 200
    time.sleep(2.1)
    assert request(server, method, path, short["token"])[0] == 403  # expired

    status, headers, body = request(server, method, path, block["token"])
    assert (status, headers["Content-Length"]) == (200, str(TFLITE.stat().st_size))
    assert body == (TFLITE.read_bytes() if method == "GET" else b"")
    assert request(server, method, f"/artifacts/{other['sha256']}", other["token"])[0] == 200
    secrets_seen = [t for t in (block, other, short, revoked) if t["token"] in caplog.text]
    assert secrets_seen == [] and "artifacts/" in caplog.text  # the requests were logged, the tokens not


def test_a_token_is_granted_only_for_a_registered_artifact(server):
    with pytest.raises(KeyError, match="not registered"):
        server.grant({"sha256": "0" * 64, "url": "http://x/artifacts/0", "size": 1, "name": "m.tflite"}, 60)
    first, second = granted(server, TFLITE), granted(server, TFLITE)
    assert first["token"] != second["token"] and len(first["token"]) >= 32
    assert "token" not in server.add(TFLITE)


def test_the_cache_reports_a_missing_or_refused_token_in_one_line(server, cache, cache_root):
    block = granted(server, TFLITE)
    bare = {k: v for k, v in block.items() if k != "token"}
    with pytest.raises(ArtifactError, match=r"HTTP 401 Unauthorized; the job carried no artifact token") as info:
        cache.fetch(**bare)
    assert "\n" not in str(info.value)
    server.revoke(block["token"])
    with pytest.raises(ArtifactError, match=r"HTTP 403 Forbidden; the artifact server refused the job's token") as info:
        cache.fetch(**block)
    assert block["token"] not in str(info.value)
    assert files_under(cache_root) == []
    with pytest.raises(ArtifactError, match="not a bearer token"):
        cache.fetch(**{**block, "token": "line\r\nX-Injected: 1"})
    assert server.request_count == 2


def test_the_token_follows_a_redirect_only_within_the_same_origin(cache):
    body = b"model bytes" * 100
    sha, token = hashlib.sha256(body).hexdigest(), "t" * 43
    with Canned(body) as same:
        same.location = f"{same.base}/moved"
        cache.fetch(same.url, sha, len(body), "a.tflite", token=token)
        assert same.requests == [("/artifact", f"Bearer {token}"), ("/moved", f"Bearer {token}")]
    with Canned(body) as elsewhere, Canned(location=elsewhere.url) as first:
        cache.fetch(first.url, sha, len(body), "b.tflite", token=token)
        assert first.requests == [("/artifact", f"Bearer {token}")]
        assert elsewhere.requests == [("/artifact", None)]  # another port is another origin: no token


def test_urls_advertise_the_host_agents_should_use():
    wildcard = ArtifactServer(host="0.0.0.0")
    named = ArtifactServer(advertise_host="controller.local")
    try:
        assert wildcard.url == f"http://{socket.gethostname()}:{wildcard.port}"
        assert named.url == f"http://controller.local:{named.port}" and named.port > 0
        assert named.add(TFLITE)["url"].startswith(f"http://controller.local:{named.port}/artifacts/")
    finally:
        wildcard.stop()
        named.stop()
