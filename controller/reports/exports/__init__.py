"""Exports of a stored campaign to the tools people already use: MLflow and MLPerf-style folders.

Both exporters take the same input, the campaign row and its results as the store keeps them
(``Store.campaign(ref)``, ``Store.results(campaign_id)``; MLflow also attaches each result's
stored JSON, ``Store.documents``), so a campaign exported twice, or exported long after the
devices that ran it are gone, gives the same answer. Optional libraries (``mlflow``) are
imported inside the exporter that needs them: importing ``controller.exports`` costs nothing.
"""

from __future__ import annotations

import re
from typing import Any

from agent.contract import Result
from agent.errors import EdgeperfError
from controller.store.database import Store


class ExportError(EdgeperfError):
    """An export cannot be written: a target that would be overwritten, a missing library, a bad name."""


def campaign_results(store: Store, ref: str) -> tuple[dict[str, Any], list[Result], list[dict[str, Any]]]:
    """The campaign ``ref`` names (id, id prefix, name or ``latest``), its results typed, and the same
    results as stored (``Store.documents``), in matrix order, read in one snapshot so the two agree.

    What the CLI's ``export`` commands hand to ``mlflow.export_runs`` / ``mlperf.export_campaign``;
    a campaign without results is an error, since an empty export looks like a successful one.
    """
    campaign = store.campaign(ref)
    with store.snapshot():
        results, documents = store.results(campaign["id"]), store.documents(campaign["id"])
    if not results:
        raise ExportError(f"campaign {campaign['name']} ({campaign['id']}) has no results to export yet")
    return campaign, results, documents


def safe_name(text: str, fallback: str = "unnamed") -> str:
    """``text`` as one path component: runs of characters other than ``A-Za-z0-9._+-`` become ``_``.

    Device ids and model names (``fashion-mnist-cnn/int8.tflite``) come from users and devices;
    a ``/`` or ``..`` in one must not create or escape folders of the export.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._")
    return cleaned or fallback
