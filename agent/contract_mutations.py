"""Wrong values for every field of the contract's types, generated from the schema itself.

For the fuzz tests (tests/test_contract_fuzz.py) and the fuzz benchmark (benchmarks/fuzz.py):
given a valid message and its type, every value of a JSON type the field does not take, and every
value of the right type that breaks a bound (length, range, pattern, choice, item count), for the
message and everything nested in it. Generated from ``msgspec.inspect``, so a field added to the
contract is fuzzed without an edit here. Nothing in the agent or the controller imports it.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import msgspec

MI = msgspec.inspect
# one value of each JSON type; a field gets every one its type does not accept
JSON_VALUES: dict[str, Any] = {"null": None, "bool": True, "int": 7, "float": 1.5, "str": "abc", "array": [], "object": {}}
BAD_TEXT = "not valid/#+ \u0000"  # breaks every pattern the contract has (ids, tags, hashes, tokens)
TOO_MANY = object()


def accepted_kinds(t: MI.Type) -> set[str]:
    """The JSON types a schema type takes: a field gets every one of the others."""
    if isinstance(t, MI.Metadata):
        return accepted_kinds(t.type)
    if isinstance(t, MI.UnionType):
        return set().union(*(accepted_kinds(m) for m in t.types))
    if isinstance(t, (MI.AnyType, MI.RawType)):
        return set(JSON_VALUES)
    if isinstance(t, MI.LiteralType):
        return {"str" if isinstance(v, str) else "int" for v in t.values}
    return {MI.NoneType: {"null"}, MI.BoolType: {"bool"}, MI.IntType: {"int"}, MI.FloatType: {"int", "float"},
            MI.StrType: {"str"}, MI.ListType: {"array"}, MI.VarTupleType: {"array"}, MI.TupleType: {"array"},
            MI.DictType: {"object"}, MI.StructType: {"object"}}[type(t)]


def unwrap(t: MI.Type) -> MI.Type:
    """The type under its annotation and an optional ``| None``."""
    if isinstance(t, MI.Metadata):
        return unwrap(t.type)
    if isinstance(t, MI.UnionType):
        members = [m for m in t.types if not isinstance(m, MI.NoneType)]
        return unwrap(members[0]) if len(members) == 1 else t
    return t


def out_of_bounds(t: MI.Type) -> list[Any]:
    """Values of the right JSON type that break the bounds: length, range, pattern, choice, item count."""
    t, out = unwrap(t), []
    if isinstance(t, MI.StrType):
        out += (["x" * (t.max_length + 1)] if t.max_length is not None else []) + ([""] if t.min_length else [])
        out += [BAD_TEXT] if t.pattern else []
    elif isinstance(t, (MI.IntType, MI.FloatType)):
        step = 1 if isinstance(t, MI.IntType) else 0.5
        out += [t.ge - step if t.ge > -1e300 else t.ge * 2] if t.ge is not None else []
        out += [t.le + step if t.le < 1e300 else t.le * 2] if t.le is not None else []
        out += [v for v in (t.gt, t.lt) if v is not None]
    elif isinstance(t, MI.LiteralType):
        out.append("none-of-these" if isinstance(t.values[0], str) else 987654)
    elif isinstance(t, (MI.VarTupleType, MI.ListType, MI.DictType)) and t.max_length is not None and t.max_length <= 4096:
        out.append(TOO_MANY)
    return out


def too_many(t: MI.Type, base: Any) -> Any:
    """One item more than the field allows (copies of the base's first item), or None for an empty base."""
    limit = unwrap(t).max_length
    if isinstance(base, list) and base:
        return [base[0]] * (limit + 1)
    if isinstance(base, dict) and base:
        first = next(iter(base.values()))
        return {f"k{i}": first for i in range(limit + 1)}
    return None


def mutations(t: MI.Type, base: Any, path: str) -> Iterator[tuple[str, Any]]:
    """(path, value): every wrong-typed and out-of-bounds value for ``base`` and for everything inside it."""
    yield from ((path, v) for k, v in JSON_VALUES.items() if k not in accepted_kinds(t))
    for v in out_of_bounds(t):
        if v is not TOO_MANY:
            yield path, v
        elif too_many(t, base) is not None:
            yield path, too_many(t, base)
    inner = unwrap(t)
    if isinstance(inner, MI.StructType) and isinstance(base, dict):
        for f in inner.fields:
            if f.encode_name in base:
                yield from mutations(f.type, base[f.encode_name], f"{path}.{f.encode_name}")
        return
    items = inner.item_type if isinstance(inner, (MI.ListType, MI.VarTupleType)) else getattr(inner, "value_type", None)
    if items is not None and not isinstance(items, MI.AnyType) and base:
        key = 0 if isinstance(base, list) else next(iter(base))
        yield from mutations(items, base[key], f"{path}.{key}")


def mutated(message: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``message`` with ``value`` at ``path`` (dotted; list indexes as numbers)."""
    out = copy.deepcopy(message)
    *parents, last = path.split(".")
    node: Any = out
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node[part]
    node[int(last) if isinstance(node, list) else last] = value
    return out
