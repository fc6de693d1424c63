"""Documentation generated from code stays in step with it."""

from __future__ import annotations

from pathlib import Path

from agent import kpi

ROOT = Path(__file__).resolve().parent.parent


def test_kpi_doc_is_generated_from_the_dictionary():
    assert (ROOT / "docs" / "kpis.md").read_text() == kpi.markdown(), "run: python -m agent.kpi > docs/kpis.md"


def test_every_kpi_has_a_unit_direction_and_definition():
    for entry in kpi.KPIS:
        assert entry.unit and entry.definition and entry.better in ("lower", "higher", "")
    assert len({k.key for k in kpi.KPIS}) == len(kpi.KPIS)
