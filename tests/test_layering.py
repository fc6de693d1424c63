"""The agent stays light and the dependency direction holds: controller → agent → devices."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("rich", "typer", "matplotlib", "pandas", "plotly", "textual", "yaml")
RUNTIMES = ("ai_edge_litert", "tflite_runtime", "onnxruntime", "coremltools", "mlperf_loadgen", "onnx")


def imported_after(code: str) -> set[str]:
    probe = f"import sys; {code}; import json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return {name.split(".")[0] for name in json.loads(out)}


def test_importing_the_agent_loads_no_runtime_and_no_ui_library():
    loaded = imported_after("import agent.cli, agent.bench, agent.scenarios, agent.runtimes, agent.kpi")
    assert not loaded & set(HEAVY), loaded & set(HEAVY)
    assert not loaded & set(RUNTIMES), loaded & set(RUNTIMES)


def test_the_idle_agent_daemon_loads_no_numpy():
    """``edgeperf-agent run`` waits for jobs; numpy and runtimes load in the job's own process."""
    loaded = imported_after("import agent.cli, agent.daemon")
    assert not loaded & ({"numpy"} | set(HEAVY) | set(RUNTIMES)), loaded & ({"numpy"} | set(HEAVY) | set(RUNTIMES))


def test_a_litert_job_does_not_load_onnx_runtime():
    loaded = imported_after(
        "from agent import model_file, runtimes; from agent.contract import RuntimeOptions; "
        "m = model_file.resolve('zoo:fashion-mnist-cnn/int8.tflite'); runtimes.open_session(m, 'litert', RuntimeOptions())"
    )
    assert "ai_edge_litert" in loaded
    assert not loaded & {"onnxruntime", "mlperf_loadgen", "rich", "typer"}


def top_level_imports(package: str) -> set[str]:
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                found |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module.split(".")[0])
    return found


def test_imports_flow_one_way():
    assert "controller" not in top_level_imports("agent")
    assert not top_level_imports("devices") & {"agent", "controller"}


def test_the_controller_top_folder_holds_only_package_glue_and_the_cli():
    """Each concern has its room (docs/architecture.md); nothing grows back into the top folder."""
    top = {p.name for p in (ROOT / "controller").iterdir() if p.suffix == ".py" or (p.is_dir() and p.name != "__pycache__")}
    # entry.py: the console script's shim, outside controller.cli so that it loads without typer
    assert top == {"__init__.py", "entry.py", "cli", "fleet", "store", "analysis", "reports", "provisioning", "baseline",
                   "quantize", "reference"}, top
    glue = (ROOT / "controller" / "__init__.py").read_text()
    assert not [n for n in ast.parse(glue).body if not isinstance(n, ast.Expr)], "controller/__init__.py is a docstring only"
    for room in top - {"__init__.py", "entry.py"}:
        assert (ROOT / "controller" / room / "__init__.py").is_file(), room


def test_only_the_contract_parses_what_arrives_over_mqtt():
    """Received payloads are decoded through agent/contract.py, never parsed by hand beside it."""
    parses = re.compile(r"(json\.loads|msgspec\.json\.decode)\([^)]*payload")
    offenders = [f"{p.relative_to(ROOT)}:{n}" for package in ("agent", "controller") for p in (ROOT / package).rglob("*.py")
                 if p.name != "contract.py" for n, line in enumerate(p.read_text().splitlines(), 1) if parses.search(line)]
    assert not offenders, offenders
