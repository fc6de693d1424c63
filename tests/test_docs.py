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
    from controller.fleet import campaign

    text = (ROOT / "docs" / "campaigns.md").read_text()
    example = text.rsplit("```yaml\n", 1)[1].split("```", 1)[0]
    spec = campaign.loads(example, "docs/campaigns.md", ROOT / "docs")
    assert spec.repeats == 3 and len(spec.models[0].variants) == 2


def test_the_demo_campaign_is_valid():
    from controller.fleet import campaign, demo

    spec = campaign.load(demo.CAMPAIGN)
    assert [v.artifact for v in spec.models[0].variants] == [
        "zoo:fashion-mnist-cnn/int8.tflite", "zoo:fashion-mnist-cnn/int8.onnx", "zoo:fashion-mnist-cnn/fp32.onnx"]


def _fleet_commands() -> list[list[str]]:
    """The ``edgeperf ...`` command lines in docs/fleet.md's code blocks, continuation lines joined."""
    import re
    import shlex

    blocks = re.findall(r"```[a-z]*\n(.*?)```", (ROOT / "docs" / "fleet.md").read_text(), re.S)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            if line.startswith("edgeperf "):
                commands.append(shlex.split(line.split(" #")[0]))
    return commands


def test_the_fleet_doc_uses_only_commands_and_options_that_exist():
    import typer
    from typer.testing import CliRunner

    from controller.cli import app

    commands = _fleet_commands()
    assert len(commands) >= 15
    runner = CliRunner(env={"COLUMNS": "300"})
    for argv in commands:
        command, path = typer.main.get_command(app), []
        for word in argv[1:]:  # down the command groups as far as the words go
            if word not in getattr(command, "commands", {}):
                break
            command = command.commands[word]
            path.append(word)
        assert path and not hasattr(command, "commands"), argv
        help_text = runner.invoke(app, [*path, "--help"]).output
        for flag in (w.split("=")[0] for w in argv if w.startswith("-")):
            assert flag in help_text, f"{' '.join(argv)}: {flag} is not an option of 'edgeperf {' '.join(path)}'"


def test_the_fleet_doc_inventory_is_valid(tmp_path, monkeypatch):
    from controller.provisioning import inventory

    text = (ROOT / "docs" / "fleet.md").read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / ".ssh").mkdir()
    for name in ("edgeperf_lab", "known_hosts"):
        (tmp_path / ".ssh" / name).write_text("")
    (tmp_path / "inventory.yaml").write_text(example)
    inv = inventory.load(tmp_path / "inventory.yaml")
    assert [(h.device_id, h.family, h.user) for h in inv.hosts] == [
        ("pi5-01", "rpi", "pi"), ("pi5-02", "rpi", "pi"), ("orin-nano-01", "jetson", "nvidia")]


def test_every_file_and_function_architecture_md_points_to_exists():
    """docs/architecture.md is one hop from a concept to its code: each `path.py` `name` it cites must be there."""
    import re

    text = (ROOT / "docs" / "architecture.md").read_text()
    cited = re.findall(r"`((?:agent|controller|devices)/[\w/]+\.py)`((?: `[\w.]+`(?:/`[\w.]+`)?)*)", text)
    assert len(cited) > 30
    for path, names in cited:
        source = (ROOT / path).read_text()
        for name in re.findall(r"`([\w.]+)`", names):
            assert re.search(rf"\b(def|class) {name.split('.')[-1]}\b|^{name}\b[^=\n]*=", source, re.M), f"{path} has no {name}"
    for folder in re.findall(r"`((?:agent|controller|devices|firmware)/[\w/-]+/)`", text):
        assert (ROOT / folder).is_dir(), folder
