"""Agent bundles: the wheel we ship holds every data file the agent needs, and bad bundles are one clear line.

A full offline bundle (wheels downloaded from the package index for a device platform) is built
and installed on a second host in tests/test_fleet_flash.py; here the pieces that need no index.
"""

from __future__ import annotations

import hashlib
import io
import json
import subprocess
import tarfile
import zipfile
from pathlib import Path

import pytest

from agent import __version__
from controller.provisioning import bundle
from controller.provisioning.bundle import SOURCE_ROOT, BundleError


@pytest.fixture(scope="module")
def local_bundle(tmp_path_factory) -> bundle.Bundle:
    return bundle.local(tmp_path_factory.mktemp("bundle") / "edgeperf-wheel.tar.gz")


def test_the_wheel_carries_every_data_file_of_the_packages(local_bundle):
    """A wheel without devices/profiles/*.toml installed fine and then crashed the agent: never again."""
    tracked = subprocess.run(["git", "ls-files", "agent", "controller", "devices"], cwd=SOURCE_ROOT,
                             capture_output=True, text=True, check=True).stdout.split()
    data_files = {f for f in tracked if not f.endswith(".py")}
    assert "devices/profiles/rpi5.toml" in data_files and "controller/fleet/demo.yaml" in data_files
    with tarfile.open(local_bundle.path) as tar:
        member = tar.extractfile(local_bundle.wheel)
        assert member is not None
        wheel_bytes = member.read()
    assert hashlib.sha256(wheel_bytes).hexdigest() == local_bundle.wheel_sha256
    names = set(zipfile.ZipFile(io.BytesIO(wheel_bytes)).namelist())
    assert data_files - names == set()


def test_a_local_bundle_says_what_it_is(local_bundle):
    again = bundle.read(local_bundle.path)
    assert again == local_bundle
    assert (again.version, again.offline, again.platform, again.extras) == (__version__, False, "any", ())
    assert again.wheel.startswith(f"edgeperf-{__version__}-") and again.wheel.endswith(".whl")


def test_platform_tags_cover_every_older_glibc_and_the_legacy_names():
    tags = bundle.platform_tags("linux_aarch64", "2.31")
    assert tags[0] == "manylinux_2_31_aarch64" and "manylinux_2_17_aarch64" in tags and "manylinux_2_5_aarch64" in tags
    assert "manylinux_2_32_aarch64" not in tags
    assert {"manylinux2014_aarch64", "linux_aarch64"} <= set(tags)
    assert not any("x86_64" in t for t in tags)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("linux_armv7l", "3.11"), "unknown platform 'linux_armv7l'; use one of: linux_aarch64, linux_x86_64 (32-bit Pi OS"),
        (("linux_aarch64", "3.11", (), "2.5"), "glibc '2.5' is not a version like 2.31"),
        (("linux_aarch64", "3"), "python '3' is not a version like 3.10"),
        (("linux_aarch64", "3.11", ("raspberry",)), "unknown family 'raspberry'; use one of: rpi, jetson, x86, generic"),
    ],
)
def test_bad_targets_are_refused_before_any_download(tmp_path, args, message):
    with pytest.raises(BundleError, match="^" + message.replace("(", r"\(").replace(".", r"\.")):
        bundle.build(tmp_path / "b.tar.gz", *args)
    assert not (tmp_path / "b.tar.gz").exists()


def _tar(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p, "not found; build one with 'edgeperf fleet bundle'"),
        (lambda p: p.write_bytes(b"PK\x03\x04 a zip") and p, "is not an edgeperf bundle"),
        (lambda p: _tar(p, {"wheel.whl": b"x"}), "is not an edgeperf bundle"),
        (lambda p: _tar(p, {"bundle.json": json.dumps({"schema": "other/1"}).encode()}), "is not an edgeperf.bundle/1 bundle"),
    ],
)
def test_a_file_that_is_not_a_bundle_is_one_line(tmp_path, make, message):
    path = make(tmp_path / "agent-bundle.tar.gz")
    with pytest.raises(BundleError) as err:
        bundle.read(path)
    assert message in str(err.value) and "\n" not in str(err.value)
