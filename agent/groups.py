"""Which group of inputs each sample belongs to, for fairness (``--groups FILE``, a job's ``groups``).

Why a module of its own: fairness asks whether a model serves every *group of inputs* (a dialect,
a skin tone, a site, a microphone) equally well, and no dataset format here carries groups — labels
say what a sample is, not who or where it comes from. So the user gives them beside the data, in the
simplest file they can write, and every mistake in that file must be one line naming the file, the
line and the fix (as the dataset loaders do) rather than a fairness figure quietly computed over the
wrong samples. Groups are read once, before anything is timed, and travel as one name per sample in
dataset order ("" for none), the way a fleet job carries them.

A groups file is one of (docs/datasets.md, "Groups and fairness"):

- CSV or TSV lines ``index,group`` (``index\\tgroup``): ``index`` is the sample's 0-based index in
  dataset order; a header line (``index,group``) is optional; samples not listed have no group;
- plain text, one group per line: line i names sample i's group (a blank line: none); fewer lines
  than samples leave the rest without a group;
- JSON: an object ``{"index": "group"}`` or a list whose item i is sample i's group (null: none).

A sample without a group is left out of the groups' rates and counted in the result's
``fairness.ungrouped``.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agent.errors import DatasetError, SettingsError

if TYPE_CHECKING:
    from agent.datasets import Samples

MAX_NAME = 64  # contract.GroupName
MAX_GROUPS = 1 << 16  # contract.GroupGap.groups
DOCS = "docs/datasets.md, 'Groups and fairness'"


@dataclass(frozen=True)
class Groups:
    """One group name per dataset sample ("" for none) and where they came from."""

    names: tuple[str, ...]
    source: str


def read(path: Path, n: int) -> Groups:
    """The groups ``path`` gives the ``n`` samples of a dataset (module docstring for the formats)."""
    data = _bytes(path)
    text = _decode(path, data)
    stripped = text.lstrip()
    if path.suffix.lower() == ".json" or stripped.startswith(("{", "[")):
        placed = _json(path, text, n)
    else:
        lines = text.splitlines()
        first = next((line for line in lines if line.strip()), "")
        delimiter = "\t" if "\t" in first else "," if "," in first else None
        placed = _table(path, lines, delimiter, n) if delimiter else _plain(path, lines, n)
    names = tuple(placed)
    _check_names(names, f"groups file {path}")
    return Groups(names, f"{path} (sha256 {hashlib.sha256(data).hexdigest()})")


def of_job(names: Sequence[str], n: int, dataset: str) -> Groups:
    """A fleet job's ``groups`` (one per sample in dataset order, already contract-checked) for a dataset of
    ``n`` samples. A campaign's groups file is read on the controller, which does not know ``n``: it sends
    the names up to the last sample that has one, so a shorter list leaves the rest without a group (as a
    file with fewer lines does), and a longer one names samples the dataset does not have."""
    if len(names) > n:
        raise DatasetError(f"the job gives groups for {len(names)} samples, but dataset {dataset} has {n}; give at most "
                           f"one group per sample in dataset order (\"\" for none), or none at all ({DOCS})")
    names = (*names, *[""] * (n - len(names)))
    _check_names(names, "the job's groups")
    digest = hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()
    return Groups(names, f"the job's groups (sha256 {digest} of the names, one a line)")


def check_file(path: Path) -> None:
    """Fail fast, before a model is loaded, when ``path`` cannot be read at all."""
    _decode(path, _bytes(path))


def _bytes(path: Path) -> bytes:
    if not path.exists():
        raise SettingsError(f"groups file {path} does not exist; give the file that names each sample's group ({DOCS})")
    if not path.is_file():
        raise SettingsError(f"groups file {path} is not a file; give the file that names each sample's group ({DOCS})")
    try:
        return path.read_bytes()
    except OSError as exc:
        raise SettingsError(f"cannot read groups file {path}: {exc.strerror}; make it readable") from None


def _decode(path: Path, data: bytes) -> str:
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[:exc.start].count(b"\n") + 1
        raise DatasetError(f"groups file {path}, line {line}: not UTF-8 text; save it as UTF-8 ({DOCS})") from None


def _name(path: Path, where: str, value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise DatasetError(f"groups file {path}, {where}: the group {value!r} is not text; write group names as strings, "
                           f"or null for none ({DOCS})")
    name = value.strip()
    if len(name) > MAX_NAME:
        raise DatasetError(f"groups file {path}, {where}: group name {name[:20]!r}… has {len(name)} characters; shorten "
                           f"it to at most {MAX_NAME}")
    return name


def _index(path: Path, where: str, text: str, n: int, seen: dict[int, str]) -> int:
    try:
        index = int(text.strip())
    except ValueError:
        raise DatasetError(f"groups file {path}, {where}: sample index {text.strip()!r} is not a whole number; write "
                           f"INDEX,GROUP with INDEX the sample's 0-based position in the dataset ({DOCS})") from None
    if not 0 <= index < n:
        raise DatasetError(f"groups file {path}, {where}: sample index {index} is out of range, the dataset has {n} "
                           f"samples (indices 0 to {n - 1}); fix the index or use the dataset the file was made for")
    if index in seen:
        raise DatasetError(f"groups file {path}, {where}: sample {index} is given a group again (first at {seen[index]}); "
                           "give each sample one group")
    seen[index] = where
    return index


def _table(path: Path, lines: list[str], delimiter: str, n: int) -> list[str]:
    placed = [""] * n
    seen: dict[int, str] = {}
    first = True
    for number, row in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        if not row or all(not cell.strip() for cell in row):
            continue
        if first and not row[0].strip().lstrip("-").isdigit():
            first = False
            continue  # a header line
        first = False
        where = f"line {number}"
        if len(row) != 2:
            sep = "tab" if delimiter == "\t" else "comma"
            raise DatasetError(f"groups file {path}, {where}: {len(row)} fields; write INDEX{delimiter}GROUP, two fields "
                               f"split by one {sep} (quote a group name that holds one) ({DOCS})")
        placed[_index(path, where, row[0], n, seen)] = _name(path, where, row[1])
    return placed


def _plain(path: Path, lines: list[str], n: int) -> list[str]:
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    for number, line in enumerate(lines, start=1):
        if re.match(r"\s*(index|\d+)\s*[;|]", line, re.I):  # a table split by another character, not group names
            raise DatasetError(f"groups file {path}, line {number}: {line.strip()[:40]!r} looks like INDEX;GROUP; split "
                               f"index and group by a comma or a tab, or write one group name a line ({DOCS})")
    if len(lines) > n:
        raise DatasetError(f"groups file {path}, line {n + 1}: the file names {len(lines)} samples' groups (one a line), "
                           f"but the dataset has {n} samples; use the groups file made for this dataset")
    placed = [_name(path, f"line {i}", line) for i, line in enumerate(lines, start=1)]
    return placed + [""] * (n - len(placed))


def _json(path: Path, text: str, n: int) -> list[str]:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise DatasetError(f"groups file {path}: key {key!r} appears twice; give each sample one group")
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as exc:
        raise DatasetError(f"groups file {path}, line {exc.lineno}: not valid JSON ({exc.msg}); write an object "
                           f"{{\"INDEX\": \"GROUP\"}} or a list of group names ({DOCS})") from None
    if isinstance(data, list):
        if len(data) > n:
            raise DatasetError(f"groups file {path}: the list names {len(data)} samples' groups, but the dataset has {n} "
                               "samples; use the groups file made for this dataset")
        placed = [_name(path, f"item {i}", value) for i, value in enumerate(data)]
        return placed + [""] * (n - len(placed))
    if isinstance(data, dict):
        placed = [""] * n
        seen: dict[int, str] = {}
        for key, value in data.items():
            where = f"key {key!r}"
            placed[_index(path, where, key, n, seen)] = _name(path, where, value)
        return placed
    raise DatasetError(f"groups file {path}: JSON {type(data).__name__}; write an object {{\"INDEX\": \"GROUP\"}} or a list "
                       f"of group names ({DOCS})")


def _check_names(names: tuple[str, ...], where: str) -> None:
    distinct = set(names) - {""}
    if not distinct:
        raise DatasetError(f"{where} gives no sample a group; name at least one sample's group ({DOCS})")
    if len(distinct) > MAX_GROUPS:
        raise DatasetError(f"{where} names {len(distinct)} groups, more than {MAX_GROUPS}; merge groups (a group is "
                           "a kind of input, not one sample)")
    if long := next((name for name in distinct if len(name) > MAX_NAME), None):
        raise DatasetError(f"{where}: group name {long[:20]!r}… has {len(long)} characters; shorten it to at most {MAX_NAME}")


def resolve(names: Sequence[str] | None, path: Path | None, samples: Samples, scored: bool) -> Groups | None:
    """The groups a run was given (a job's ``names`` or a ``--groups`` file), checked against the dataset
    just loaded; None when it was given none."""
    if not names and path is None:
        return None
    if not scored:
        raise SettingsError("groups are scored per group, so they need --mode accuracy or robustness; add the mode "
                            "or drop the groups")
    if samples.task != "classification" or samples.labels is None:
        raise DatasetError(f"groups are compared by accuracy, and dataset {samples.name} is scored as {samples.task}"
                           f"{'' if samples.labels is not None else ' without labels'}; give a labelled classification "
                           "dataset or drop the groups")
    return read(path, len(samples)) if path is not None else of_job(names or (), len(samples), samples.name)
