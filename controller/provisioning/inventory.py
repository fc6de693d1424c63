"""Fleet inventory files: which hosts to flash, how to reach them, and what each one is.

Format (``hosts`` required; a host's own keys win over its groups', which win over ``defaults``;
tags add up)::

    defaults:
      user: pi                         # SSH user (sudo is used unless it is root)
      key: ~/.ssh/edgeperf_lab         # SSH private key; relative paths are relative to this file
      python: /usr/bin/python3         # [/usr/bin/python3] the device's Python (>= 3.10)
      port: 22                         # [22]
      family: rpi                      # rpi | jetson | x86 | generic
      known_hosts: lab_known_hosts     # [~/.ssh/known_hosts] where the hosts' SSH keys are pinned
    groups:
      lab-a: {tags: [lab-a]}
      orins: {family: jetson, user: nvidia}
    hosts:
      pi5-01: {address: 10.0.0.21, tags: [rpi5], groups: [lab-a]}
      orin-01: {address: 10.0.0.31, device_id: orin-nano-01, groups: [lab-a, orins]}

Every mistake is reported as ``file:line: key: problem`` (``controller.yaml_nodes``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from yaml.nodes import Node

from agent.contract import check_device_id
from agent.errors import EdgeperfError
from controller.fleet.yaml_nodes import NodeReader, compose, join_key, read_text
from controller.provisioning.families import FAMILIES

DEFAULT_PYTHON = "/usr/bin/python3"
_SHARED_KEYS = ("user", "key", "python", "port", "family", "tags", "known_hosts")
_HOST_KEYS = ("address", "device_id", "groups", *_SHARED_KEYS)


class InventoryError(EdgeperfError):
    """An inventory file that cannot be used as written."""


@dataclass(frozen=True)
class Host:
    """One device to provision, with everything merged from defaults and groups."""

    name: str
    address: str
    device_id: str
    user: str
    family: str
    python: str = DEFAULT_PYTHON
    port: int = 22
    key: Path | None = None
    known_hosts: Path | None = None
    tags: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    line: int = 0


@dataclass(frozen=True)
class Inventory:
    """The hosts of one inventory file, in file order."""

    source: Path
    hosts: tuple[Host, ...]
    groups: tuple[str, ...] = ()


def load(path: Path) -> Inventory:
    """Read and validate the inventory at ``path``."""
    path = Path(path)
    root = compose(read_text(path, "inventory file", InventoryError), str(path), InventoryError)
    if root is None:
        raise InventoryError(f"{path}:1: (top level): the file is empty; an inventory needs hosts")
    return _Reader(str(path), path.parent.resolve()).inventory(root, path)


class _Reader(NodeReader):
    error = InventoryError

    def inventory(self, root: Node, path: Path) -> Inventory:
        top = self.mapping(root, "", ("defaults", "groups", "hosts"), ("hosts",), "a mapping with hosts")
        defaults = self.shared(top["defaults"][1], "defaults") if "defaults" in top else {}
        groups: dict[str, dict[str, Any]] = {}
        if "groups" in top:
            for name, (key_node, value) in self.free_mapping(top["groups"][1], "groups", "a mapping of group names").items():
                self.name(key_node, join_key("groups", name))
                groups[name] = self.shared(value, join_key("groups", name))
        hosts_node = top["hosts"][1]
        entries = self.free_mapping(hosts_node, "hosts", "a mapping of host names")
        if not entries:
            raise self.fail(hosts_node, "hosts", "lists no hosts")
        hosts: list[Host] = []
        seen_ids: dict[str, int] = {}
        for name, (key_node, value) in entries.items():
            host = self.host(name, key_node, value, defaults, groups)
            if host.device_id in seen_ids:
                raise self.fail(value, join_key(join_key("hosts", name), "device_id"),
                                f"device id {host.device_id!r} is already used by the host at line {seen_ids[host.device_id]}")
            seen_ids[host.device_id] = host.line
            hosts.append(host)
        return Inventory(path, tuple(hosts), tuple(groups))

    def shared(self, node: Node, key: str, allowed: tuple[str, ...] = _SHARED_KEYS) -> dict[str, Any]:
        """The keys a host can inherit, converted; tags as a tuple."""
        out: dict[str, Any] = {}
        for name, (_, value) in self.mapping(node, key, allowed).items():
            path = join_key(key, name)
            if name == "port":
                out[name] = self.integer(value, path, 1)
                if out[name] > 65535:
                    raise self.fail(value, path, f"port {out[name]} is above 65535")
            elif name == "family":
                out[name] = self.choice(value, path, tuple(FAMILIES), "family")
            elif name in ("tags", "groups"):
                out[name] = self.string_list(value, path, "names", self.name)
            elif name in ("key", "known_hosts"):
                out[name] = self.existing_file(value, path)
            else:
                out[name] = self.string(value, path)
        return out

    def existing_file(self, node: Node, key: str) -> Path:
        path = Path(self.string(node, key)).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        if not path.is_file():
            raise self.fail(node, key, f"{path} not found")
        return path

    def host(self, name: str, key_node: Node, node: Node, defaults: dict[str, Any], groups: dict[str, dict[str, Any]]) -> Host:
        key = join_key("hosts", name)
        self.name(key_node, key)
        own = self.shared(node, key, _HOST_KEYS)
        if "address" not in own:
            raise self.fail(node, join_key(key, "address"), "missing required key")
        merged = dict(defaults)
        tags = list(defaults.get("tags", ()))
        for group in own.get("groups", ()):
            if group not in groups:
                raise self.fail(node, join_key(key, "groups"), f"unknown group {group!r}; define it under groups")
            merged |= groups[group]
            tags += groups[group].get("tags", ())
        merged |= own
        tags += own.get("tags", ())
        device_id = merged.get("device_id", name)
        try:
            check_device_id(device_id)
        except ValueError as exc:
            raise self.fail(node, join_key(key, "device_id"), str(exc)) from None
        for needed in ("user", "family"):
            if needed not in merged:
                raise self.fail(node, join_key(key, needed), f"no {needed}: set it for the host, one of its groups, or defaults")
        return Host(
            name=name, address=merged["address"], device_id=device_id, user=merged["user"], family=merged["family"],
            python=merged.get("python", DEFAULT_PYTHON), port=merged.get("port", 22), key=merged.get("key"),
            known_hosts=merged.get("known_hosts"), tags=tuple(dict.fromkeys(tags)), groups=tuple(own.get("groups", ())),
            line=key_node.start_mark.line + 1,
        )
