"""Fleet inventory files: merging defaults, groups and hosts, and one ``file:line: key: problem`` per mistake."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from controller.provisioning import inventory
from controller.provisioning.inventory import InventoryError

GOOD = """\
defaults:
  user: pi
  key: lab_key
  family: rpi
  tags: [lab]
groups:
  bench-a: {tags: [bench-a], port: 2222}
  orins: {family: jetson, user: nvidia, python: /usr/bin/python3.10}
hosts:
  pi5-01: {address: 10.0.0.21, tags: [rpi5], groups: [bench-a]}
  orin-01:
    address: orin-01.lab
    device_id: orin-nano-01
    groups: [bench-a, orins]
    port: 22
    tags: [orin, lab]
"""


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "lab_key").write_text("not a real key\n")
    path = tmp_path / "inventory.yaml"
    path.write_text(textwrap.dedent(text))
    return path


def test_hosts_take_their_own_keys_over_their_groups_over_the_defaults(tmp_path):
    inv = inventory.load(write(tmp_path, GOOD))
    pi, orin = inv.hosts
    assert inv.groups == ("bench-a", "orins")
    assert (pi.name, pi.device_id, pi.address, pi.user, pi.family, pi.port) == (
        "pi5-01", "pi5-01", "10.0.0.21", "pi", "rpi", 2222)
    assert pi.python == "/usr/bin/python3" and pi.line == 10
    assert pi.key == tmp_path / "lab_key"  # relative to the inventory file, not to the working directory
    assert pi.tags == ("lab", "bench-a", "rpi5") and pi.groups == ("bench-a",)
    assert (orin.device_id, orin.user, orin.family, orin.python, orin.port) == (
        "orin-nano-01", "nvidia", "jetson", "/usr/bin/python3.10", 22)
    assert orin.tags == ("lab", "bench-a", "orin")  # tags add up, once each
    assert orin.known_hosts is None and orin.line == 11


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("hosts:\n  pi: {address: a, user: pi, famly: rpi}\n", 2, "hosts.pi.famly: unknown key; did you mean 'family'?"),
        ("hosts:\n  pi: {user: pi, family: rpi}\n", 2, "hosts.pi.address: missing required key"),
        ("hosts:\n  pi: {address: a, user: pi, family: pie}\n", 2, "hosts.pi.family: unknown family 'pie'"),
        ("hosts:\n  pi: {address: a, family: rpi}\n", 2, "hosts.pi.user: no user: set it for the host, one of its groups"),
        ("hosts:\n  pi: {address: a, user: pi, family: rpi, groups: [lab]}\n", 2, "hosts.pi.groups: unknown group 'lab'"),
        ("hosts:\n  pi: {address: a, user: pi, family: rpi, port: 70000}\n", 2, "hosts.pi.port: port 70000 is above 65535"),
        ("hosts:\n  pi: {address: a, user: pi, family: rpi, port: ssh}\n", 2, "hosts.pi.port:"),
        ("hosts:\n  pi: {address: a, user: pi, family: rpi, key: nowhere}\n", 2, "hosts.pi.key:"),
        ("hosts:\n  'pi 1': {address: a, user: pi, family: rpi}\n", 2, "hosts.pi 1:"),
        ("hosts:\n  pi: {address: a, user: pi, family: rpi, device_id: 'pi/1'}\n", 2, "hosts.pi.device_id:"),
        ("defaults: {user: pi, family: rpi}\nhosts:\n  a: {address: a, device_id: x}\n\n  b: {address: b, device_id: x}\n", 5,
         "hosts.b.device_id: device id 'x' is already used by the host at line 3"),
        ("hosts: {}\n", 1, "hosts: lists no hosts"),
        ("groups: {}\n", 1, "hosts: missing required key"),
        ("hosts:\n  - pi\n", 2, "hosts:"),
        ("hosts:\n  pi: {address: a\n", 3, "YAML syntax error"),
        ("\n", 1, "the file is empty"),
    ],
)
def test_every_mistake_names_the_file_line_and_key(tmp_path, text, line, message):
    path = write(tmp_path, text)
    with pytest.raises(InventoryError) as err:
        inventory.load(path)
    assert str(err.value).startswith(f"{path}:{line}: "), str(err.value)
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(InventoryError, match=r"nope\.yaml: inventory file not found$"):
        inventory.load(tmp_path / "nope.yaml")


def test_the_cli_reports_a_bad_inventory_in_one_line_and_exit_2(tmp_path):
    from typer.testing import CliRunner

    from controller.cli import app

    path = write(tmp_path, "hosts:\n  pi: {address: a, user: pi, family: pie}\n")
    (tmp_path / "pki").mkdir()
    args = ["fleet", "status", str(path), "--broker", "mqtts://lab:8883", "--pki", str(tmp_path / "pki")]
    result = CliRunner(env={"COLUMNS": "300"}).invoke(app, args)
    assert result.exit_code == 2, result.output
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "hosts.pi.family: unknown family 'pie'" in lines[0]
