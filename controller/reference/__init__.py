"""Published MLPerf results as reference rows beside a user's own devices (docs/reference.md).

``read_tree`` walks an MLCommons results tree (``tree``: its layout; ``summary``: LoadGen's
summary; ``accuracy``: each benchmark's accuracy.txt) into typed rows (``rows``); ``store_rows``
keeps them in the store's ``reference_rows`` and ``stored`` reads them back; ``matching`` decides
which local rows each one sits beside.
"""

from __future__ import annotations

from dataclasses import dataclass

from controller.reference.rows import ReferenceRow
from controller.reference.tree import TreeImport, read_tree
from controller.store.database import Store

__all__ = ["Imported", "ReferenceRow", "TreeImport", "read_tree", "store_rows", "stored"]


@dataclass(frozen=True)
class Imported:
    """What one import did: the walk (rows, problems, version) and how the store took the rows."""

    walk: TreeImport
    new: int
    changed: int
    unchanged: int


def store_rows(store: Store, walk: TreeImport) -> Imported:
    """Store the rows a walk found (again: nothing is duplicated; a row the tree now says differently is replaced)."""
    new, changed, unchanged = store.add_reference_rows(r.to_dict() for r in walk.rows)
    return Imported(walk, new, changed, unchanged)


def stored(store: Store, benchmark: str | None = None, scenario: str | None = None) -> list[ReferenceRow]:
    """The stored published rows, typed."""
    return [ReferenceRow.from_dict(doc) for doc in store.reference_rows(benchmark, scenario)]
