"""Agent bundles: edgeperf and every wheel its agents need, for labs without a package index.

A bundle is a ``.tar.gz`` of wheels plus ``bundle.json`` (what it was built for and each wheel's
sha256). ``pip download`` does the work with an explicit target (platform, Python, ABI), so a
bundle for a Pi can be built on an x86 laptop. pip does not widen ``manylinux_2_X`` tags to older
glibc levels by itself, so every level up to the target's glibc is passed: a wheel built for
manylinux2014 (glibc 2.17) runs on a Pi OS with glibc 2.36, and pip must be told so.

The playbook unpacks the bundle into the device's wheelhouse and installs with ``--no-index``;
without a bundle, ``edgeperf fleet flash`` ships a wheelhouse holding only edgeperf's own wheel
and the devices fetch the rest from their package index.
"""

from __future__ import annotations

import json
import platform
import re
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

from agent import __version__
from agent.errors import EdgeperfError
from agent.model_file import sha256_of
from controller.provisioning.families import FAMILIES, extras_for

SCHEMA = "edgeperf.bundle/1"
MANIFEST = "bundle.json"
ARCHES = {"linux_aarch64": "aarch64", "linux_x86_64": "x86_64"}
DEFAULT_GLIBC = "2.31"  # Debian 11, Ubuntu 20.04 (JetPack 5); newer systems run these wheels too
SOURCE_ROOT = Path(__file__).resolve().parents[2]


class BundleError(EdgeperfError):
    """A bundle that cannot be built or used."""


@dataclass(frozen=True)
class Bundle:
    """A built bundle and what its manifest says."""

    path: Path
    version: str
    platform: str
    python: str
    extras: tuple[str, ...]
    offline: bool  # True: every dependency is inside; False: only edgeperf's own wheel
    wheel: str  # edgeperf's own wheel: a rebuilt checkout keeps its version but not its hash
    wheel_sha256: str


def host_platform() -> str:
    """This machine's bundle platform name, e.g. ``linux_x86_64``."""
    return f"{sys.platform}_{platform.machine().lower()}"


def platform_tags(name: str, glibc: str = DEFAULT_GLIBC) -> list[str]:
    """The pip ``--platform`` tags a device of bundle platform ``name`` accepts."""
    if name not in ARCHES:
        raise BundleError(f"unknown platform {name!r}; use one of: {', '.join(ARCHES)} "
                          "(32-bit Pi OS has no wheels on PyPI: use a 64-bit image)")
    match = re.fullmatch(r"2\.(\d+)", glibc)
    if not match or int(match[1]) < 17:
        raise BundleError(f"glibc {glibc!r} is not a version like 2.31 (2.17 or newer)")
    arch = ARCHES[name]
    legacy = [f"manylinux{year}_{arch}" for year in ("2014", "2010", "1")]
    return [f"manylinux_2_{minor}_{arch}" for minor in range(int(match[1]), 4, -1)] + legacy + [name]


def own_wheel(out_dir: Path) -> Path:
    """Build edgeperf's own wheel from the source tree this controller runs from."""
    if not (SOURCE_ROOT / "pyproject.toml").is_file():
        raise BundleError(f"edgeperf's source tree is not at {SOURCE_ROOT}; "
                          "run the controller from a checkout (pip install -e .)")
    _pip("wheel", "--no-deps", "--quiet", "--wheel-dir", str(out_dir), str(SOURCE_ROOT), what="build edgeperf's wheel")
    wheels = sorted(out_dir.glob(f"edgeperf-{__version__}-*.whl"))
    if not wheels:
        raise BundleError(f"pip built no edgeperf {__version__} wheel in {out_dir}")
    return wheels[0]


def build(out: Path, platform_name: str, python: str, families: tuple[str, ...] = (), glibc: str = DEFAULT_GLIBC) -> Bundle:
    """Download every wheel the families' agents need for ``platform_name`` / ``python`` into ``out``."""
    tags = platform_tags(platform_name, glibc)
    if not re.fullmatch(r"3\.\d{1,2}", python):
        raise BundleError(f"python {python!r} is not a version like 3.10")
    unknown = [f for f in families if f not in FAMILIES]
    if unknown:
        raise BundleError(f"unknown family {unknown[0]!r}; use one of: {', '.join(FAMILIES)}")
    extras = extras_for(families or tuple(FAMILIES))
    with tempfile.TemporaryDirectory(prefix="edgeperf-bundle-") as tmp:
        house = Path(tmp) / "wheelhouse"
        wheel = own_wheel(house)
        nodot = python.replace(".", "")
        target = ["--only-binary=:all:", "--python-version", python, "--implementation", "cp", "--abi", f"cp{nodot}",
                  "--abi", "abi3", "--abi", "none"]
        target += [arg for tag in tags for arg in ("--platform", tag)]
        requirement = f"edgeperf[{','.join(extras)}] @ {wheel.as_uri()}"
        _pip("download", "--quiet", "--dest", str(house), *target, requirement,
             what=f"download the wheels for {platform_name} / Python {python}")
        return _pack(house, out, platform_name, python, extras, offline=True)


def local(out: Path) -> Bundle:
    """A wheelhouse with only edgeperf's wheel: devices install its dependencies from their index."""
    with tempfile.TemporaryDirectory(prefix="edgeperf-bundle-") as tmp:
        house = Path(tmp) / "wheelhouse"
        own_wheel(house)
        return _pack(house, out, "any", "any", (), offline=False)


def read(path: Path) -> Bundle:
    """The manifest of a bundle file, checked."""
    try:
        with tarfile.open(path, "r:gz") as tar:
            member = tar.extractfile(MANIFEST)
            data = json.loads(member.read()) if member else None
    except FileNotFoundError:
        raise BundleError(f"bundle {path} not found; build one with 'edgeperf fleet bundle'") from None
    except (tarfile.TarError, KeyError, OSError, ValueError) as exc:
        raise BundleError(f"{path} is not an edgeperf bundle ({exc}); rebuild it with 'edgeperf fleet bundle'") from None
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise BundleError(f"{path} is not an {SCHEMA} bundle; rebuild it with 'edgeperf fleet bundle'")
    return _bundle(Path(path), data)


def _pack(house: Path, out: Path, platform_name: str, python: str, extras: tuple[str, ...], offline: bool) -> Bundle:
    wheels = sorted(house.glob("*.whl"))
    manifest = {
        "schema": SCHEMA, "edgeperf_version": __version__, "platform": platform_name, "python": python,
        "extras": list(extras), "offline": offline,
        "wheels": {w.name: sha256_of(w) for w in wheels},
    }
    (house / MANIFEST).write_text(json.dumps(manifest, indent=1))
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(out.name + ".partial")
    with tarfile.open(partial, "w:gz") as tar:
        for path in [house / MANIFEST, *wheels]:
            info = tar.gettarinfo(str(path), arcname=path.name)
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            info.mode = 0o644
            with path.open("rb") as f:
                tar.addfile(info, f)
    partial.replace(out)
    return _bundle(out, manifest)


def _bundle(path: Path, manifest: dict) -> Bundle:
    wheel = next((name for name in manifest["wheels"] if name.startswith(f"edgeperf-{manifest['edgeperf_version']}-")), "")
    return Bundle(path, manifest["edgeperf_version"], manifest["platform"], manifest["python"], tuple(manifest["extras"]),
                  bool(manifest["offline"]), wheel, manifest["wheels"].get(wheel, ""))


def _pip(*args: str, what: str) -> None:
    proc = subprocess.run([sys.executable, "-m", "pip", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr or proc.stdout).splitlines() if line.strip()]
        detail = next((line for line in reversed(lines) if "ERROR" in line), lines[-1] if lines else "no output")
        raise BundleError(f"pip could not {what}: {detail.strip()}")
