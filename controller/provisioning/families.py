"""Device families: what each kind of board needs installed and which groups its agent joins.

One table drives both the bundle (which wheels to download) and the playbook (which extras to
install, which device groups the service user joins), so the two cannot disagree about a Pi.
Groups are joined only where they exist on the host: a Pi without I2C enabled has no ``i2c``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Family:
    """What a device family's agent needs: pip extras, supplementary groups, the jtop service."""

    extras: tuple[str, ...]
    groups: tuple[str, ...]
    jtop: bool = False
    description: str = ""


FAMILIES: dict[str, Family] = {
    "rpi": Family(("agent", "litert", "onnx", "rpi", "serial"), ("i2c", "dialout", "gpio", "video"),
                  description="Raspberry Pi: LiteRT and ONNX Runtime, INA219 on I2C, serial power monitor, vcgencmd"),
    "jetson": Family(("agent", "litert", "onnx", "jetson", "serial"), ("i2c", "dialout", "video", "jtop"), jtop=True,
                     description="NVIDIA Jetson: LiteRT and ONNX Runtime (CPU wheels from PyPI), jtop power rails"),
    "x86": Family(("agent", "litert", "onnx", "serial"), ("dialout",),
                  description="x86 mini PCs and NUCs: LiteRT and ONNX Runtime, serial power monitor"),
    "generic": Family(("agent", "onnx"), (), description="any Linux host: ONNX Runtime only"),
}


def extras_for(families: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The union of the families' extras, in a stable order."""
    out: list[str] = []
    for name in families:
        out += [e for e in FAMILIES[name].extras if e not in out]
    return tuple(out)
