"""Result documents put into a real controller database, the way a campaign stores them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from agent.contract import checked_result
from controller.store.database import Store


def store_campaign(db: Path, name: str, docs: list[dict[str, Any]], kind: str = "fleet") -> str:
    """A campaign ``name`` of ``kind`` with one job and attempt per document, each holding its result; its id."""
    with Store(db) as store:
        campaign = store.create_campaign(name, f"{name}.yaml", {"retries": 0, "cooldown_s": 0},
                                         [(f"{d['device']['id']}/{i}", d["device"]["id"], {}) for i, d in enumerate(docs)],
                                         kind=kind)
        for job, doc in zip(store.jobs(campaign), docs, strict=True):
            store.add_result(*checked_result(doc | {"run_id": store.start_attempt(job)}), job.device_id)
    return campaign
