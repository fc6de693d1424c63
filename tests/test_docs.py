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


def test_the_campaign_example_in_the_docs_is_valid():
    from controller import campaign

    text = (ROOT / "docs" / "campaigns.md").read_text()
    example = text.rsplit("```yaml\n", 1)[1].split("```", 1)[0]
    spec = campaign.loads(example, "docs/campaigns.md", ROOT / "docs")
    assert spec.repeats == 3 and len(spec.models[0].variants) == 2


def test_the_demo_campaign_is_valid():
    from controller import campaign, demo

    spec = campaign.load(demo.CAMPAIGN)
    assert [v.artifact for v in spec.models[0].variants] == [
        "zoo:fashion-mnist-cnn/int8.tflite", "zoo:fashion-mnist-cnn/int8.onnx", "zoo:fashion-mnist-cnn/fp32.onnx"]
