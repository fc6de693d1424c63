"""Exports of a stored campaign to the tools people already use: MLflow and MLPerf-style folders.

Both exporters take the same input, the campaign row and its result documents as the store
keeps them (``Store.campaign(ref)``, ``Store.results(campaign_id)``), so a campaign exported
twice, or exported long after the devices that ran it are gone, gives the same answer. Optional
libraries (``mlflow``) are imported inside the exporter that needs them: importing
``controller.exports`` costs nothing.
"""

from __future__ import annotations

import re
from typing import Any

from agent.errors import EdgeperfError
from controller.store.database import Store


class ExportError(EdgeperfError):
    """An export cannot be written: a target that would be overwritten, a missing library, a bad name."""


def campaign_docs(store: Store, ref: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The campaign ``ref`` names (id, id prefix, name or ``latest``) and its result documents in matrix order.

    What the CLI's ``export`` commands hand to ``mlflow.export_campaign`` / ``mlperf.export_campaign``;
    a campaign without results is an error, since an empty export looks like a successful one.
    """
    campaign = store.campaign(ref)
    docs = store.results(campaign["id"])
    if not docs:
        raise ExportError(f"campaign {campaign['name']} ({campaign['id']}) has no results to export yet")
    return campaign, docs


def safe_name(text: str, fallback: str = "unnamed") -> str:
    """``text`` as one path component: runs of characters other than ``A-Za-z0-9._+-`` become ``_``.

    Device ids and model names (``fashion-mnist-cnn/int8.tflite``) come from users and devices;
    a ``/`` or ``..`` in one must not create or escape folders of the export.
    """
    cleaned = re.sub(r"[^A-Za-z0-9._+-]+", "_", text).strip("._")
    return cleaned or fallback
