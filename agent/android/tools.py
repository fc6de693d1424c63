"""The phone's benchmark binaries: where they are, which build each is, and how they reach the phone.

The user provides them — an Android build of LiteRT's ``benchmark_model`` and of ONNX Runtime's
``onnxruntime_perf_test`` — in a host folder (``--tools DIR``) that the bridge pushes to the phone
(once per build: a pushed copy is named by its sha256), or already on the phone (``--phone-tools
DIR``). Neither tool prints its own version, so the version is what the folder's ``tools.json``
says (``fetch`` writes it, pinned by sha256) and every result records the binary's sha256, which
names the build exactly. Nothing is downloaded at run time: ``fetch`` is a command the user runs.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from agent.android.adb import Adb
from agent.android.tool_argv import BENCHMARK_MODEL, PERF_TEST
from agent.errors import SettingsError
from agent.model_file import sha256_of

NAMES = (BENCHMARK_MODEL, PERF_TEST)
LOCK = "tools.json"
PHONE_DIR = "/data/local/tmp/edgeperf"


@dataclass(frozen=True)
class ToolBinary:
    """One tool as a job uses it: its path on the phone, its sha256 (None when only the phone has it) and version."""

    name: str
    phone_path: str
    sha256: str | None
    version: str
    host_path: Path | None = None


def _lock(folder: Path) -> dict[str, dict[str, str]]:
    try:
        data = json.loads((folder / LOCK).read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise SettingsError(f"{folder / LOCK}: {exc}; fix or delete it (edgeperf-agent android fetch writes it)") from None
    return data if isinstance(data, dict) else {}


@dataclass(frozen=True)
class Toolbox:
    """Where the tools come from: a host folder (pushed) or a folder on the phone."""

    host_dir: Path | None = None
    phone_dir: str | None = None

    def describe(self) -> dict[str, str | None]:
        """What ``edgeperf devices`` shows for the phone's runtimes: each tool's version (or sha256), or None."""
        out: dict[str, str | None] = {}
        for name in NAMES:
            try:
                tool = self.find(name)
            except SettingsError:
                out[name] = None
                continue
            out[name] = f"{name} {tool.version}" + (f" (sha256 {tool.sha256[:12]})" if tool.sha256 else "")
        return out

    def find(self, name: str) -> ToolBinary:
        """``name``'s binary, or the one line that says where to put it."""
        if self.phone_dir is not None:
            return ToolBinary(name, f"{self.phone_dir.rstrip('/')}/{name}", None, "unknown (a binary already on the phone)")
        if self.host_dir is None:
            raise SettingsError(f"no {name} for the phone: give the bridge --tools DIR with the Android build of {name} "
                                "in it (docs/phones.md), or --phone-tools DIR where it is on the phone")
        path = self.host_dir / name
        if not path.is_file():
            raise SettingsError(f"no {name} in {self.host_dir}: put the Android (arm64) build of {name} there, or fetch "
                                f"one with 'edgeperf-agent android fetch {name} URL --sha256 HEX --to {self.host_dir}'")
        sha = sha256_of(path)
        pinned = _lock(self.host_dir).get(name, {})
        if pinned.get("sha256") and pinned["sha256"] != sha:
            raise SettingsError(f"{path} has sha256 {sha[:12]}…, not the {pinned['sha256'][:12]}… {LOCK} pins: the file "
                                "changed since it was fetched; fetch it again or remove its entry from the lock")
        return ToolBinary(name, f"{PHONE_DIR}/bin/{name}-{sha[:16]}", sha, str(pinned.get("version") or "unknown"), path)


def install(adb: Adb, tool: ToolBinary) -> None:
    """Push a host-provided binary to the phone unless that very build is already there, and make it executable."""
    if tool.host_path is None:
        return
    _, present = adb.shell(f"ls {tool.phone_path}", f"look for {tool.name} on the phone")
    if present == 0:
        return
    adb.shell(f"mkdir -p {PHONE_DIR}/bin", "make the tools folder")
    adb.push(tool.host_path, tool.phone_path)
    out, code = adb.shell(f"chmod 755 {tool.phone_path}", f"make {tool.name} executable")
    if code != 0:
        raise SettingsError(f"phone {adb.serial}: chmod {tool.phone_path} failed ({out.strip()[:160]})")


def fetch(name: str, url: str, sha256: str, folder: Path, version: str) -> Path:
    """Download ``name`` from ``url`` into ``folder``, keeping it only if its sha256 is ``sha256``, and pin it in
    ``tools.json`` with ``version``: the one place the phone's tools are downloaded, by the user's command."""
    if name not in NAMES:
        raise SettingsError(f"unknown tool {name!r}; the phone runs {' and '.join(NAMES)}")
    if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256.lower()):
        raise SettingsError(f"--sha256 {sha256!r} is not a sha256 (64 hex digits); copy it from the release's checksums")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=folder, delete=False) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:
                shutil.copyfileobj(response, tmp)
        except (OSError, ValueError) as exc:
            Path(tmp.name).unlink(missing_ok=True)
            raise SettingsError(f"could not download {url}: {exc}; check the address (or copy the file into {folder})") from None
    got = sha256_of(Path(tmp.name))
    if got != sha256.lower():
        Path(tmp.name).unlink(missing_ok=True)
        raise SettingsError(f"{url} has sha256 {got}, not {sha256.lower()}: not kept; check the URL and the pinned hash")
    target = folder / name
    Path(tmp.name).replace(target)
    target.chmod(0o755)
    lock = _lock(folder) | {name: {"sha256": got, "version": version, "url": url}}
    (folder / LOCK).write_text(json.dumps(lock, indent=2, sort_keys=True) + "\n")
    return target
