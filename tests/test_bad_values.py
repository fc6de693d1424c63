"""Every bad value we tried fails cleanly: one line naming the problem and the fix, exit 2.

Each case runs ``edgeperf-agent`` in a child process (a regression to a hang or a segfault must
fail the test, not take pytest down), and docs/engines.md's "Bad values" table must hold the line
each case really prints, so the doc cannot drift. ``python -m tests.test_bad_values`` prints the
table from the real outputs.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import msgspec
import numpy as np
import pytest

from agent import contract
from agent.threads import max_threads
from devices import thermal

ROOT = Path(__file__).resolve().parents[1]
ZOO_ONNX = "zoo:fashion-mnist-cnn/int8.onnx"
TABLE_HEAD = "| what was tried | what it prints (exit 2) |\n|---|---|\n"
# makes the modules named in EDGEPERF_TEST_ABSENT unimportable, as in an install without them
BLOCKER = """
import os, sys
ABSENT = set(filter(None, os.environ.get("EDGEPERF_TEST_ABSENT", "").split(",")))
class _Absent:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in ABSENT:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
sys.meta_path.insert(0, _Absent())
"""


def reshape_onnx(folder: Path) -> Path:
    """A graph that loads but fails on every run: a free-length input reshaped to a fixed [3] (the
    free dimension is set to 1 for synthetic data)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n"])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [3])
    shape = numpy_helper.from_array(np.array([3], dtype=np.int64), "shape")
    graph = helper.make_graph([helper.make_node("Reshape", ["x", "shape"], ["y"])], "reshape", [x], [y], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "reshape.onnx")
    return folder / "reshape.onnx"


def split_onnx(folder: Path) -> tuple[Path, Path]:
    """A graph that fails for some inputs only: ``x`` [1, 6] reshaped to [k, -1], and a file of
    ``k`` per sample (1, 2, 3, 4: 4 does not divide 6), so the failure comes inside the engine's
    timed loop, not at the first inference."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 6])
    k = helper.make_tensor_value_info("k", TensorProto.INT64, [1])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
    rest = numpy_helper.from_array(np.array([-1], dtype=np.int64), "rest")
    nodes = [helper.make_node("Concat", ["k", "rest"], ["shape"], axis=0), helper.make_node("Reshape", ["x", "shape"], ["y"])]
    model = helper.make_model(helper.make_graph(nodes, "split", [x, k], [y], [rest]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "split.onnx")
    np.save(folder / "k.npy", np.array([[1], [2], [3], [4]], dtype=np.int64))
    return folder / "split.onnx", folder / "k.npy"


def string_onnx(folder: Path) -> Path:
    """A model whose input is a string tensor, which synthetic data cannot make up."""
    import onnx
    from onnx import TensorProto, helper

    s = helper.make_tensor_value_info("s", TensorProto.STRING, [1])
    o = helper.make_tensor_value_info("o", TensorProto.STRING, [1])
    model = helper.make_model(helper.make_graph([helper.make_node("Identity", ["s"], ["o"])], "text", [s], [o]),
                              opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, folder / "string.onnx")
    return folder / "string.onnx"


@dataclass(frozen=True)
class Case:
    """One bad value: how the table names it, the argv after ``edgeperf-agent`` (or ``edgeperf`` for
    the controller; ``{reshape}``, ``{split}``, ``{k}``, ``{string}`` name the models built above,
    ``{db}`` a database holding one campaign), whether the line holds numbers of this machine or of
    a random draw (compared with digits masked), and modules made unimportable for it."""

    label: str
    argv: tuple[str, ...]
    varies: bool = False
    program: str = "agent"
    absent: tuple[str, ...] = ()


def _bench(*flags: str) -> tuple[str, ...]:
    return ("bench", ZOO_ONNX, "--profile", "smoke", "--engine", "native", *flags)


CASES = (
    Case("`--target-qps inf`", _bench("--scenario", "Server", "--target-qps", "inf")),
    Case("`--target-qps nan`", _bench("--scenario", "Server", "--target-qps", "nan")),
    Case("`--target-qps 1e9`", _bench("--scenario", "Server", "--target-qps", "1e9")),
    Case("`--target-qps 100000 --profile mlperf` (Server)",
         ("bench", ZOO_ONNX, "--scenario", "Server", "--target-qps", "100000", "--profile", "mlperf")),
    Case("`--target-latency-ms 0`", _bench("--scenario", "Server", "--target-latency-ms", "0")),
    Case("`--max-queries -3`", _bench("--max-queries", "-3")),
    Case("`--min-queries 10000000000`", _bench("--min-queries", "10000000000")),
    Case("`--min-queries 100 --max-queries 10`", _bench("--min-queries", "100", "--max-queries", "10")),
    Case("`--min-duration -1`", _bench("--min-duration", "-1")),
    Case("`--min-duration nan`", _bench("--min-duration", "nan")),
    Case("`--max-duration 1e400`", _bench("--max-duration", "1e400")),
    Case("`--min-duration 1e9`", _bench("--min-duration", "1e9")),
    Case("`--min-duration 5 --max-duration 1`", _bench("--min-duration", "5", "--max-duration", "1")),
    Case("`--batch-size 0`", _bench("--batch-size", "0")),
    Case("`--threads 0`", _bench("--threads", "0")),
    Case("`--threads -1`", _bench("--threads", "-1")),
    Case("`--threads 100000`", _bench("--threads", "100000")),
    Case("`--threads 1024` (more than 4 per CPU)", _bench("--threads", "1024"), varies=True),
    Case("`--warmup -5`", _bench("--warmup", "-5")),
    Case("`--idle-seconds nan`", _bench("--idle-seconds", "nan")),
    Case("`--grid-intensity inf`", _bench("--grid-intensity", "inf")),
    Case("`--cooldown-below nan`", _bench("--cooldown-below", "nan")),
    Case("`--cooldown-timeout -1`", _bench("--cooldown-timeout", "-1")),
    Case("`--cooldown-below 50` on a device without temperature sensors", _bench("--cooldown-below", "50")),
    Case("`power sample --seconds inf`", ("power", "sample", "--seconds", "inf")),
    Case("`run --threads 0`", ("run", "--broker", "mqtt://localhost:1", "--threads", "0")),
    Case("a model that fails on every run (Reshape of a length-1 input to [3])", ("bench", "{reshape}", "--profile", "smoke")),
    Case("a model that fails on some inputs, inside LoadGen's run (Reshape to [k, -1], k = 4)",
         ("bench", "{split}", "--profile", "smoke", "--engine", "loadgen", "--warmup", "0", "--input", "k={k}"), varies=True),
    Case("the same under the native engine",
         ("bench", "{split}", "--profile", "smoke", "--engine", "native", "--warmup", "0", "--input", "k={k}"), varies=True),
    Case("a model with a string input, on synthetic data", ("bench", "{string}", "--profile", "smoke")),
    Case("`--json` into a missing folder", _bench("--json", "/nonexistent/out.json")),
    Case("`edgeperf results` with a mistyped `--db`", ("results", "latest", "--db", "/nonexistent/typo.db"),
         program="controller"),
    Case("`edgeperf report -o` into a missing folder", ("report", "latest", "-o", "/nonexistent/report.html"),
         program="controller"),
    Case("`edgeperf compare -o` into a missing folder",
         ("compare", "latest", "--baseline", "latest", "-o", "/nonexistent/compare.md"), program="controller"),
    Case("`edgeperf certs init --out` where nothing can be written",
         ("certs", "init", "--out", "/proc/lab-pki", "--broker-host", "lab.local"), program="controller"),
    Case("`edgeperf export mlperf -o` where nothing can be written",
         ("export", "mlperf", "latest", "-o", "/proc/submission", "--db", "{db}"), program="controller"),
    Case("`edgeperf export mlflow` to a tracking server that is not running",
         ("export", "mlflow", "latest", "--tracking-uri", "http://127.0.0.1:9", "--db", "{db}"), program="controller"),
    Case("`edgeperf devices --wait nan`", ("devices", "--wait", "nan"), program="controller"),
    Case("`edgeperf results --formt json` (a mistyped option)", ("results", "latest", "--formt", "json"),
         program="controller"),
    Case("`edgeperf baseline run --idle-seconds inf`", ("baseline", "run", "campaign.yaml", "--idle-seconds", "inf"),
         program="controller"),
    Case("`edgeperf` in an agent-only install (no typer)", ("devices",), program="controller", absent=("typer",)),
)


def _stored_campaign(folder: Path) -> Path:
    """A controller database holding one campaign of one real (short) run."""
    from agent import bench
    from agent.scenarios.settings import Scenario, for_profile, with_overrides
    from tests.stored_results import store_campaign

    settings = with_overrides(for_profile("smoke", Scenario.SINGLE_STREAM), min_duration_ms=200)
    doc = bench.run(bench.BenchRequest(model=ZOO_ONNX, settings=settings, engine="native",
                                       options=contract.RuntimeOptions(threads=1), device_id="pi-a", warmup_runs=2))
    store_campaign(folder / "results.db", "bad-values", [doc])
    return folder / "results.db"


def _models(folder: Path) -> dict[str, str]:
    split, k = split_onnx(folder)
    return {"reshape": str(reshape_onnx(folder)), "split": str(split), "k": str(k), "string": str(string_onnx(folder)),
            "db": str(_stored_campaign(folder))}


def run_case(case: Case, models: dict[str, str], folder: Path) -> subprocess.CompletedProcess[str]:
    argv = [arg.format(**models) for arg in case.argv]
    module = "agent.cli" if case.program == "agent" else "controller.entry"
    env = os.environ | {"PYTHONPATH": str(ROOT), "COLUMNS": "250", "XDG_DATA_HOME": str(folder)}
    if case.absent:
        (folder / "sitecustomize.py").write_text(BLOCKER)
        env |= {"PYTHONPATH": os.pathsep.join([str(folder), str(ROOT)]), "EDGEPERF_TEST_ABSENT": ",".join(case.absent)}
    return subprocess.run([sys.executable, "-m", module, *argv], capture_output=True, text=True, timeout=120, cwd=ROOT,
                          env=env)


def printed_line(proc: subprocess.CompletedProcess[str]) -> str:
    """The one line a refused command printed, after checking that it is one line, exit 2, no traceback."""
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr[-2000:]
    assert re.match(r"(edgeperf-agent( \w+)*: |edgeperf: )?error: ", lines[0]), lines[0]
    return lines[0]


def table_row(case: Case, line: str) -> str:
    return f"| {case.label} | `{line}` |"


def _masked(text: str) -> str:
    return re.sub(r"\d+", "#", text)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, str]:
    return _models(tmp_path_factory.mktemp("bad-models"))


@pytest.mark.parametrize("case", CASES, ids=[c.label for c in CASES])
def test_bad_value_is_one_line_in_the_doc(case, models, tmp_path):
    if any(arg.startswith("/proc/") for arg in case.argv) and not Path("/proc/self").is_dir():
        pytest.skip("platform: needs Linux's /proc as a folder nothing can be created in")
    if "1024" in case.argv and max_threads() >= 1024:
        pytest.skip("platform: this machine has 256 or more CPUs, so 1024 threads is within the cap")
    if "--cooldown-below" in case.argv and "50" in case.argv and thermal.hottest() is not None:
        pytest.skip("platform: this machine has temperature sensors, so a cooldown can be waited for")
    row = table_row(case, printed_line(run_case(case, models, tmp_path)))
    doc = (ROOT / "docs" / "engines.md").read_text()
    if case.varies:
        assert _masked(row) in _masked(doc), f"docs/engines.md lacks (digits aside):\n{row}"
    else:
        assert row in doc, f"docs/engines.md lacks (regenerate with python -m tests.test_bad_values):\n{row}"


def test_doc_table_has_no_stale_rows():
    """Every row of the doc's table is a case this file runs: a case removed here leaves no line behind."""
    doc = (ROOT / "docs" / "engines.md").read_text()
    section = doc.split("## Bad values", 1)[1].split("\n## ", 1)[0]
    labels = {c.label for c in CASES}
    rows = [line for line in section.splitlines() if line.startswith("| ") and not line.startswith("| what was tried")]
    assert rows and all(row.split(" | ")[0][2:] in labels for row in rows), rows


def test_the_edgeperf_script_is_the_shim_that_names_the_extra():
    """The line above comes from ``controller.entry``; the installed ``edgeperf`` script must be it."""
    from agent.config import tomllib

    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert scripts["edgeperf"] == "controller.entry:main"


def test_non_finite_job_options_are_refused_not_read_as_unset():
    """msgspec writes NaN and infinity as JSON null, which an option reads as "not set": a campaign's
    ``target_qps: .inf`` would run the profile's default rate. The contract refuses them by path."""
    for kind, field, value in ((contract.RunLength, "target_qps", float("inf")),
                               (contract.RunLength, "min_duration_s", float("nan")),
                               (contract.RunLength, "target_latency_ms", float("-inf"))):
        with pytest.raises(contract.ProtocolError, match=rf"finite number, got -?(inf|nan) - at \$\.{field}"):
            contract.build(kind, {field: value})
    assert contract.build(contract.RunLength, {"target_qps": 100.0}).target_qps == 100.0


def run_worker(tmp_path: Path, job: contract.Job, model: Path) -> subprocess.CompletedProcess[str]:
    """The agent's worker process on ``job``, as the daemon starts it."""
    (tmp_path / "job.json").write_bytes(msgspec.json.encode(job))
    return subprocess.run(
        [sys.executable, "-m", "agent.worker", "--job", str(tmp_path / "job.json"), "--model", str(model),
         "--out", str(tmp_path / "result.json"), "--log-dir", str(tmp_path / "logs"), "--device-id", "dev-1"],
        capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_a_job_whose_model_fails_at_run_time_ends_as_one_error_line(tmp_path, models):
    """The fleet path: the worker turns the failure into the one ``error:`` line the daemon reports as
    the job's failed event (not retryable), and exits 2."""
    model = Path(models["reshape"])
    job = contract.Job(
        run_id="bad-model-1", scenario="SingleStream", mode="performance", profile="smoke", dataset="synthetic",
        controller="ctl", engine="native",
        artifact=contract.Artifact(url="http://controller/a", sha256="0" * 64, size=model.stat().st_size, name=model.name),
    )
    proc = run_worker(tmp_path, job, model)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: the model failed at run time on sample 0"), proc.stderr
    assert "requested shape:{3}" in errors[0] and "--shape" in errors[0]
    assert not (tmp_path / "result.json").exists()
    phases = [json.loads(line)["phase"] for line in proc.stdout.splitlines()]
    assert phases[:2] == ["loading", "preparing"]


def test_a_job_with_a_server_schedule_too_large_is_refused_before_loading(tmp_path, models):
    """A check no contract bound can make (rate × the profile's duration) holds for jobs too."""
    model = Path(models["reshape"])
    job = contract.Job(
        run_id="bad-rate-1", scenario="Server", mode="performance", profile="mlperf", dataset="synthetic",
        controller="ctl", engine="native", overrides=contract.RunLength(target_qps=50_000),
        artifact=contract.Artifact(url="http://controller/a", sha256="0" * 64, size=model.stat().st_size, name=model.name),
    )
    proc = run_worker(tmp_path, job, model)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.strip() == ("error: target_qps 50000 × min_duration_s 600 schedules 30,000,000 queries, more than "
                                   "the 10,000,000 an arrival schedule may hold; lower target_qps or min_duration_s, "
                                   "or set max_queries")
    assert proc.stdout == ""  # refused before the model was loaded


if __name__ == "__main__":  # regenerate docs/engines.md's table from what the CLI prints here
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        built = _models(Path(folder))
        print(TABLE_HEAD + "\n".join(table_row(c, printed_line(run_case(c, built, Path(folder)))) for c in CASES))
