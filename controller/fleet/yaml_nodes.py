"""YAML files whose every mistake names its file, line and key.

Campaign and inventory files are written by hand and can run to hundreds of lines, so an error
must point at the line. ``yaml.safe_load`` forgets where values came from; composing the file into
nodes (which keep their start mark) and converting node by node keeps it. ``compose`` turns YAML
syntax errors into the same one-line form; ``NodeReader`` holds the checks every schema needs.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import msgspec
import yaml
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from agent.errors import EdgeperfError, SettingsError

NAME_RE = re.compile(r"[A-Za-z0-9._-]+")


def read_text(path: Path, what: str, error: type[EdgeperfError]) -> str:
    """The UTF-8 text of ``path``, or one line saying why it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: {what} not found") from None
    except IsADirectoryError:
        raise error(f"{path}: is a directory, not a {what}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: cannot read {what}: not UTF-8 text ({exc.reason})") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None


def compose(text: str, source: str, error: type[EdgeperfError]) -> Node | None:
    """The node tree of ``text``; a syntax error becomes ``source:line: YAML syntax error: ...``."""
    try:
        return yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        problem = exc.problem or exc.context
        if exc.problem and exc.context and exc.context_mark and exc.context_mark.line + 1 != line:
            problem += f" ({exc.context} at line {exc.context_mark.line + 1})"
        raise error(f"{source}:{line}: YAML syntax error: {problem}") from None
    except yaml.reader.ReaderError as exc:  # a character YAML does not allow; only the offset is known
        line = text[: exc.position].count("\n") + 1
        char = f"#x{exc.character:04x}" if isinstance(exc.character, int) else repr(exc.character)
        raise error(f"{source}:{line}: YAML syntax error: {exc.reason} ({char})") from None
    except yaml.YAMLError as exc:
        raise error(f"{source}:1: YAML syntax error: {exc}") from None


def join_key(parent: str, child: str | int) -> str:
    if isinstance(child, int):
        return f"{parent}[{child}]"
    return f"{parent}.{child}" if parent else child


def close_match(word: str, choices: Sequence[str]) -> str | None:
    """The known word ``word`` was probably meant to be, if one is close enough."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def unknown(what: str, value: str, choices: Sequence[str]) -> str:
    close = close_match(value, choices)
    hint = f"did you mean {close!r}? " if close else ""
    return f"unknown {what} {value!r}; {hint}use one of: {', '.join(choices)}"


_KINDS = {"null": "null", "bool": "a boolean", "int": "an integer", "float": "a number", "str": "a string",
          "timestamp": "a date", "binary": "binary data"}


def got(node: Node) -> str:
    """How a wrong value reads in an error: the text as written, and its YAML type."""
    if isinstance(node, MappingNode):
        return "a mapping"
    if isinstance(node, SequenceNode):
        return "a list"
    kind = _KINDS.get(node.tag.rsplit(":", 1)[-1], f"a {node.tag} value")
    if kind == "null":
        return "null (an empty value)"
    shown = repr(node.value) if kind == "a string" else node.value
    return f"{shown} ({kind})"


def bounds(gt: float | None = None, ge: float | None = None, le: float | None = None, lt: float | None = None) -> str:
    """A schema's range as an error states it: ``in (0, 100000]``, ``>= 1``, or nothing when unbounded."""
    def shown(bound: float) -> str:  # 604800, not 6.048e+05
        return str(int(bound)) if float(bound).is_integer() and abs(bound) < 1e16 else f"{bound:g}"
    if (gt is not None or ge is not None) and (le is not None or lt is not None):
        low = f"({shown(gt)}" if gt is not None else f"[{shown(ge)}"
        return f" in {low}, {shown(lt) + ')' if lt is not None else shown(le) + ']'}"
    for sign, bound in ((">", gt), (">=", ge), ("<", lt), ("<=", le)):
        if bound is not None:
            return f" {sign} {shown(bound)}"
    return ""


# A number as people write it; YAML 1.1 (PyYAML) takes an exponent only after a dot and with a sign.
_NUMBER_TEXT = re.compile(r"([-+]?)(\d+\.?\d*|\.\d+)[eE]([-+]?)(\d+)")


def number_as_text(node: Node, integer: bool) -> str:
    """The hint for a number YAML 1.1 read as text (``1e9``): how to write it so it is read as one."""
    match = _NUMBER_TEXT.fullmatch(node.value) if isinstance(node, ScalarNode) and node.style is None else None
    if not match or not node.tag.endswith(":str"):
        return ""
    sign, mantissa, exp_sign, exponent = match.groups()
    whole, _, fraction = mantissa.partition(".")
    forms = [] if integer else [f"{sign}{whole or '0'}.{fraction or '0'}e{exp_sign or '+'}{exponent}"]
    if int(exponent) < 16 and (exact := Decimal(node.value)) == exact.to_integral_value():  # a whole number
        forms.append(str(int(exact)))
    return f"; YAML reads {node.value} as text: write {' or '.join(forms)}" if forms else ""


class NodeReader:
    """Walks a composed node tree, converting and checking each value against its key path.

    Subclasses add the schema (one method per part of the file) and set ``error`` to their
    EdgeperfError subclass, so every problem surfaces as ``file:line: key: problem``.
    """

    error: type[EdgeperfError] = EdgeperfError

    def __init__(self, source: str, base_dir: Path) -> None:
        self.source = source
        self.base_dir = base_dir
        self.loader = yaml.SafeLoader("")

    # errors and node access

    def fail(self, node: Node, key: str, problem: str) -> EdgeperfError:
        return self.error(f"{self.source}:{node.start_mark.line + 1}: {key or '(top level)'}: {problem}")

    def value(self, node: Node, key: str) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            raise self.fail(node, key, getattr(exc, "problem", None) or str(exc)) from None

    def mapping(self, node: Node, key: str, allowed: Sequence[str], required: Sequence[str] = (),
                what: str = "a mapping") -> dict[str, tuple[Node, Node]]:
        """Keys of a mapping node → (key node, value node), refusing duplicates, unknowns and gaps."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, key, f"expected {what}, got {got(node)}")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                raise self.fail(key_node, key, "merge keys (<<) are not supported; repeat the keys instead")
            name = self.value(key_node, key) if isinstance(key_node, ScalarNode) else None
            if not isinstance(name, str):
                raise self.fail(key_node, key, f"keys must be strings, got {got(key_node)}")
            path = join_key(key, name)
            if name in out:
                raise self.fail(key_node, path, f"duplicate key (first at line {out[name][0].start_mark.line + 1})")
            if name not in allowed:
                close = close_match(name, allowed)
                hint = f"did you mean {close!r}?" if close else f"expected one of: {', '.join(allowed)}"
                raise self.fail(key_node, path, f"unknown key; {hint}")
            out[name] = (key_node, value_node)
        for name in required:
            if name not in out:
                raise self.fail(node, join_key(key, name), "missing required key")
        return out

    def free_mapping(self, node: Node, key: str, what: str) -> dict[str, tuple[Node, Node]]:
        """A mapping whose keys are the user's own names (shapes, provider options)."""
        if not isinstance(node, MappingNode):
            raise self.fail(node, key, f"expected {what}, got {got(node)}")
        out: dict[str, tuple[Node, Node]] = {}
        for key_node, value_node in node.value:
            name = self.value(key_node, key) if isinstance(key_node, ScalarNode) else None
            if not isinstance(name, str) or not name:
                raise self.fail(key_node, key, f"keys must be non-empty strings, got {got(key_node)}")
            if name in out:
                first = out[name][0].start_mark.line + 1
                raise self.fail(key_node, join_key(key, name), f"duplicate key (first at line {first})")
            out[name] = (key_node, value_node)
        return out

    def string(self, node: Node, key: str, what: str = "a string") -> str:
        value = self.value(node, key) if isinstance(node, ScalarNode) else None
        if not isinstance(value, str) or not value.strip():
            raise self.fail(node, key, f"expected {what}, got {got(node)}")
        return value.strip()

    def name(self, node: Node, key: str) -> str:
        value = self.string(node, key, "a name")
        if not NAME_RE.fullmatch(value):
            raise self.fail(node, key, f"{value!r} is not a valid name; use letters, digits, '.', '_' and '-'")
        return value

    def choice(self, node: Node, key: str, choices: Sequence[str], what: str) -> str:
        value = self.string(node, key, f"one of: {', '.join(choices)}")
        if value not in choices:
            raise self.fail(node, key, unknown(what, value, choices))
        return value

    def integer(self, node: Node, key: str, minimum: int | None, maximum: int | None = None) -> int:
        """An integer within ``[minimum, maximum]`` (either end open when None)."""
        value = self.value(node, key) if isinstance(node, ScalarNode) else None
        ok = isinstance(value, int) and not isinstance(value, bool)
        if not ok or (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
            raise self.fail(node, key, f"expected an integer{bounds(ge=minimum, le=maximum)}, got {got(node)}"
                                       f"{number_as_text(node, integer=True)}")
        return value

    def number(self, node: Node, key: str, *, gt: float | None = None, ge: float | None = None,
               le: float | None = None, lt: float | None = None) -> float:
        """A finite number within the bounds given as msgspec's ``Meta`` names them."""
        value = self.value(node, key) if isinstance(node, ScalarNode) else None
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(node, key, f"expected a finite number{bounds(gt, ge, le, lt)}, got {got(node)}")
        in_range = isinstance(value, (int, float)) and not isinstance(value, bool) and not (
            (gt is not None and value <= gt) or (ge is not None and value < ge)
            or (le is not None and value > le) or (lt is not None and value >= lt))
        if not in_range:
            raise self.fail(node, key, f"expected a number{bounds(gt, ge, le, lt)}, got {got(node)}"
                                       f"{number_as_text(node, integer=False)}")
        return float(value)

    def boolean(self, node: Node, key: str) -> bool:
        value = self.value(node, key) if isinstance(node, ScalarNode) else None
        if not isinstance(value, bool):
            raise self.fail(node, key, f"expected true or false, got {got(node)}")
        return value

    def string_list(self, node: Node, key: str, what: str, convert: Callable[[Node, str], str]) -> tuple[str, ...]:
        """A non-empty list (or one bare item) of distinct strings, each checked by ``convert``."""
        items = [(node, key)] if isinstance(node, ScalarNode) else None
        if isinstance(node, SequenceNode):
            items = [(item, join_key(key, i)) for i, item in enumerate(node.value)]
        if items is None:
            raise self.fail(node, key, f"expected a list of {what}, got {got(node)}")
        if not items:
            raise self.fail(node, key, f"must list at least one of {what}")
        out: list[str] = []
        for item, path in items:
            value = convert(item, path)
            if value in out:
                raise self.fail(item, path, f"{value!r} is listed twice")
            out.append(value)
        return tuple(out)

    def typed(self, node: Node, key: str, kind: msgspec.inspect.Type) -> Any:
        """A scalar or a list of strings read by its schema type (``msgspec.inspect``), so a field
        added to a contract struct is read from YAML with the same errors as every other key."""
        mi = msgspec.inspect
        while isinstance(kind, (mi.Metadata, mi.UnionType)):
            if isinstance(kind, mi.Metadata):
                kind = kind.type
            else:
                kinds = [k for k in kind.types if not isinstance(k, mi.NoneType)]
                if len(kinds) != 1:
                    break
                kind = kinds[0]
        if isinstance(kind, mi.BoolType):
            return self.boolean(node, key)
        if isinstance(kind, mi.IntType):
            return self.integer(node, key, kind.ge if kind.gt is None else kind.gt + 1,
                                kind.le if kind.lt is None else kind.lt - 1)
        if isinstance(kind, mi.FloatType):
            return self.number(node, key, gt=kind.gt, ge=kind.ge, le=kind.le, lt=kind.lt)
        if isinstance(kind, mi.LiteralType):
            return self.choice(node, key, tuple(kind.values), key.rsplit(".", 1)[-1])  # "unknown optimization 'max'"
        if isinstance(kind, mi.StrType):
            return self.string(node, key)
        if isinstance(kind, (mi.VarTupleType, mi.ListType)):
            return self.string_list(node, key, "names", self.string)
        raise self.fail(node, key, f"cannot be set from a file (a {type(kind).__name__})")

    def converted(self, parse: Callable[[str], Any]) -> Callable[[Node, str], str]:
        """Wrap one of the agent's own parsers so its error lands on the right line."""
        def convert(node: Node, key: str) -> str:
            text = self.string(node, key)
            try:
                return parse(text).value
            except SettingsError as exc:
                raise self.fail(node, key, str(exc)) from None
        return convert
