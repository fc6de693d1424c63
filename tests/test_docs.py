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


DOCS = ("README.md", *(f"docs/{p.name}" for p in sorted((ROOT / "docs").glob("*.md"))))


def _command_lines() -> list[tuple[str, str]]:
    """``(file, line)`` for every command in README.md's and docs/*.md's code blocks: every line of an ``sh``
    block, and the ``edgeperf``/``edgeperf-agent`` lines of an unlabelled one; continuations joined, comments cut."""
    import re

    found = []
    for name in DOCS:
        for lang, block in re.findall(r"^```([a-z]*)\n(.*?)^```", (ROOT / name).read_text(), re.S | re.M):
            for line in block.replace("\\\n", " ").splitlines():
                line = line.split(" #")[0].strip()
                if line and (lang == "sh" or (lang == "" and line.split()[0] in ("edgeperf", "edgeperf-agent"))):
                    found.append((name, line))
    return found


def _words(line: str) -> list[list[str]]:
    """The commands of a shell line (split at ``&&``), each as the shell's words; pipes and redirections stay
    tokens of their own."""
    import shlex

    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    commands: list[list[str]] = [[]]
    for token in lexer:
        if token == "&&":
            commands.append([])
        else:
            commands[-1].append(token)
    return commands


def _edgeperf_command(argv: list[str]) -> tuple[list[str], set[str]]:
    """The subcommand path ``argv`` names in the controller CLI, and the options that command takes."""
    import typer

    from controller.cli import app

    command, path = typer.main.get_command(app), []
    for word in argv:
        if word not in getattr(command, "commands", {}):
            break
        command = command.commands[word]
        path.append(word)
    assert not hasattr(command, "commands") or command.invoke_without_command, f"'edgeperf {' '.join(argv)}' names no command"
    return path, {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)} | {"--help"}


def _agent_command(argv: list[str]) -> tuple[list[str], set[str]]:
    """The same for ``edgeperf-agent`` (argparse)."""
    import argparse

    from agent.cli import build_parser

    parser, path = build_parser(), []
    while True:
        subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
        if not subs:
            break
        assert argv[len(path):] and argv[len(path)] in subs[0].choices, f"'edgeperf-agent {' '.join(argv)}' names no command"
        parser = subs[0].choices[argv[len(path)]]
        path.append(argv[len(path)])
    return path, set(parser._option_string_actions)


def test_every_command_in_readme_and_docs_runs_as_pasted():
    """No block lists alternatives with `|` or placeholders like `<id>` (a shell reads them as pipes and
    redirections), every edgeperf/edgeperf-agent subcommand and option exists, and the campaign files the
    commands name are shipped and valid."""
    from controller.fleet import campaign

    lines = _command_lines()
    assert len(lines) >= 50
    # campaign files the docs have `edgeperf quantize --campaign` write are made, not shipped
    written = {argv[i + 1] for _, line in lines for argv in _words(line) for i, w in enumerate(argv[:-1]) if w == "--campaign"}
    checked = 0
    for name, line in lines:
        for argv in _words(line):
            shell = [w for w in argv if w[0] in "|<>;&[" or w == "..."]
            assert not shell, f"{name}: {line!r}: {shell[0]!r} does not paste into a shell (write one command a line)"
            if argv[0] not in ("edgeperf", "edgeperf-agent"):
                continue
            path, options = (_edgeperf_command if argv[0] == "edgeperf" else _agent_command)(argv[1:])
            for flag in (w.split("=")[0] for w in argv[1 + len(path):] if w.startswith("-")):
                assert flag in options, f"{name}: {line!r}: {flag} is not an option of '{argv[0]} {' '.join(path)}'"
            if path[-1:] == ["run"] and path[0] in ("campaign", "baseline") and argv[1 + len(path)] not in written:
                campaign.load(ROOT / argv[1 + len(path)])  # shipped, and valid (a mistake raises with file:line)
            checked += 1
    assert checked >= 40


def test_every_yaml_campaign_in_the_docs_is_valid():
    """Valid for the loader, and each ``shape``/``inputs`` key of a zoo variant names an input its model has."""
    import re

    from agent import model_file, runtimes
    from agent.contract import RuntimeOptions
    from controller.fleet import campaign

    blocks = [(name, block) for name in DOCS
              for block in re.findall(r"^```yaml\n(.*?)^```", (ROOT / name).read_text(), re.S | re.M) if "\nmodels:" in block]
    assert len(blocks) >= 2
    named = 0
    for name, block in blocks:
        for model in campaign.loads(block, name, ROOT / "docs").models:
            for variant in model.variants:
                keys = {*variant.options.shapes, *variant.options.inputs}
                if keys:
                    file = model_file.resolve(variant.artifact)
                    session = runtimes.open_session(file, runtimes.runtime_for(file, variant.runtime), RuntimeOptions())
                    assert keys <= {i.name for i in session.info.inputs}, (name, variant.name, keys)
                    named += 1
    assert named
