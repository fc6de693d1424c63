"""Every KPI a result can carry is in the KPI dictionary (agent.kpi.KPIS, hence docs/kpis.md), with its unit,
direction and definition: the contract's ``Kpis`` struct is walked field by field, so a field added to the
contract without a definition fails here."""

from __future__ import annotations

import types
import typing

import msgspec

from agent import contract, kpi

WHOLE = {"latency_histogram"}  # defined as one KPI: its buckets are data, not KPIs


def _struct(hint: object) -> type[msgspec.Struct] | None:
    """The Struct a field holds (through ``X | None`` and ``Annotated``), or None for a plain value."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return next((s for arg in typing.get_args(hint) if (s := _struct(arg)) is not None), None)
    if origin is typing.Annotated:
        return _struct(typing.get_args(hint)[0])
    return hint if isinstance(hint, type) and issubclass(hint, msgspec.Struct) else None


def _leaves(cls: type[msgspec.Struct], prefix: str = "") -> list[str]:
    hints = typing.get_type_hints(cls, include_extras=True)
    out = []
    for field in msgspec.structs.fields(cls):
        key = prefix + field.encode_name
        inner = _struct(hints[field.name])
        out += _leaves(inner, key + ".") if inner is not None and key not in WHOLE else [key]
    return out


def test_every_kpi_the_contract_carries_is_defined():
    defined = {k.key for k in kpi.KPIS}
    leaves = _leaves(contract.Kpis)
    assert len(leaves) > 60  # the walk reached the nested blocks (energy, accuracy, thermals, …)
    missing = [key for key in leaves if key not in defined and not any(key.startswith(d + ".") for d in defined)]
    assert not missing, f"add these to agent.kpi.KPIS (then python -m agent.kpi > docs/kpis.md): {missing}"


def test_every_definition_names_a_unit_a_direction_and_says_something():
    for k in kpi.KPIS:
        assert k.unit and k.better in ("lower", "higher", "") and len(k.definition) > 10, k.key
    assert len({k.key for k in kpi.KPIS}) == len(kpi.KPIS)  # no key defined twice
