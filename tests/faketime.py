"""libfaketime for the clock-step tests: a process whose wall clock the test moves, monotonic untouched.

The libfaketime wheel bundles the C sources and one prebuilt x86_64 library (its vendored copy
honours FAKETIME_DONT_FAKE_MONOTONIC with Python's timed waits, which Debian's 0.9.10 does not:
its clock_nanosleep returns EINVAL). On another architecture the bundled sources are built once
with make and the C compiler .ci/run installs.
"""

from __future__ import annotations

import platform
import shutil
import subprocess
from pathlib import Path

import libfaketime

ELF_MACHINES = {62: "x86_64", 183: "aarch64"}


def _machine(library: Path) -> str:
    header = library.read_bytes()[:20]
    return ELF_MACHINES.get(int.from_bytes(header[18:20], "little"), "other")


def library(build_root: Path) -> Path:
    """The libfaketime library for this machine: the bundled one, or one built from its sources."""
    sources = Path(libfaketime.__file__).parent / "vendor" / "libfaketime" / "src"
    here = {"arm64": "aarch64"}.get(platform.machine(), platform.machine())
    if _machine(sources / "libfaketime.so.1") == here:
        return sources / "libfaketime.so.1"
    built = build_root / "libfaketime-src"
    if not (built / "libfaketime.so.1").exists() or _machine(built / "libfaketime.so.1") != here:
        shutil.rmtree(built, ignore_errors=True)
        shutil.copytree(sources, built)
        (built / "libfaketime.so.1").unlink()
        subprocess.run(["make", "-C", str(built), "libfaketime.so.1"], check=True, capture_output=True)
    return built / "libfaketime.so.1"


def stepped_clock(clock_file: Path, build_root: Path) -> dict[str, str]:
    """Environment for a process whose wall clock is offset by what ``clock_file`` says ("+2h", "-2h",
    "+0"), re-read once a second, so the test steps it by rewriting the file. Re-reading it on every
    clock call (FAKETIME_NO_CACHE) slows LoadGen's trace writer until it drops a sample even at a
    constant offset: an artifact of the tool, so it is not used."""
    return {"LD_PRELOAD": str(library(build_root)), "FAKETIME_TIMESTAMP_FILE": str(clock_file),
            "FAKETIME_CACHE_DURATION": "1", "FAKETIME_DONT_FAKE_MONOTONIC": "1", "DONT_FAKE_MONOTONIC": "1"}
