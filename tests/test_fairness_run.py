"""Fairness and class balance in real runs: ``edgeperf-agent bench --mode accuracy --groups FILE`` with ONNX
Runtime on an ONNX model built here, and the zoo's Fashion-MNIST CNN.

The model is an Identity of a float32 [1, K] input, fed one-hot vectors from a folder of .npy files: each
sample's prediction is the position of its one, so which samples are right — and each group's accuracy —
is set by construction, not estimated.
"""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import numpy as np
import pytest

from agent import bench, cli, contract, fairness, groups
from agent.errors import DatasetError, SettingsError
from agent.jobs import request_from_job, settings_for
from agent.stats import Z95
from controller.reports import campaign_report
from tests.conftest import save_onnx

K = 4  # classes


def identity_model(path: Path) -> Path:
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, K])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, K])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "identity", [x], [y])
    return save_onnx(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), path)


def one_hot_folder(folder: Path, right: np.ndarray) -> Path:
    """Sample i is labelled i mod K and predicted as its label where ``right[i]``, else as the next class."""
    folder.mkdir()
    labels = np.arange(right.size, dtype=np.int64) % K
    predicted = np.where(right, labels, (labels + 1) % K)
    np.save(folder / "x.npy", np.eye(K, dtype=np.float32)[predicted])
    np.save(folder / "labels.npy", labels)
    return folder


def run_cli(capsys, *args: str) -> tuple[int, str, str]:
    code = cli.main(["bench", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def accuracy_args(model: Path, folder: Path, *extra: str) -> list[str]:
    return [str(model), "--mode", "accuracy", "--profile", "smoke", "--engine", "native", "--threads", "1",
            "--warmup", "1", "--dataset", str(folder), *extra]


@pytest.fixture
def model(tmp_path: Path) -> Path:
    return identity_model(tmp_path / "identity.onnx")


def interleaved(right_a: np.ndarray, right_b: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Groups a and b alternate (a on even indices), so a run that mapped samples to groups by position in
    its kept outputs rather than by dataset index would mix them."""
    right = np.empty(right_a.size + right_b.size, dtype=bool)
    right[0::2], right[1::2] = right_a, right_b
    return right, ["a" if i % 2 == 0 else "b" for i in range(right.size)]


def test_a_gap_known_by_construction_is_reported_with_an_interval_that_covers_it(tmp_path, model, capsys):
    """Acceptance: a: 90 of 100 right, b: 60 of 100 — the gap is 0.30 by construction. The run reports exactly
    that gap, a as best and b as worst, and an interval (two groups: Newcombe's plain 95 %) covering 0.30 and
    excluding 0."""
    right, names = interleaved(np.arange(100) < 90, np.arange(100) < 60)
    folder = one_hot_folder(tmp_path / "data", right)
    order = np.random.default_rng(3).permutation(right.size)  # the file lists samples out of order
    groups_file = tmp_path / "groups.csv"
    groups_file.write_text("index,group\n" + "".join(f"{i},{names[i]}\n" for i in order))
    out = tmp_path / "result.json"
    code, text, err = run_cli(capsys, *accuracy_args(model, folder, "--groups", str(groups_file), "--json", str(out)))
    assert code == 0, err
    doc = json.loads(out.read_text())
    result, _ = contract.checked_result(doc)  # the block is the contract's GroupGap
    fair = result.kpis.fairness
    assert fair is not None and fair.kind == "fairness"
    assert fair.gap == pytest.approx(0.30, abs=1e-12) and (fair.best, fair.worst) == ("a", "b")
    lo, hi = fair.gap_ci95
    assert 0 < lo < 0.30 < hi
    assert (lo, hi) == pytest.approx(fairness.newcombe_difference((90, 100), (60, 100), Z95))
    assert [(g.name, g.n, g.correct) for g in fair.groups] == [("a", 100, 90), ("b", 100, 60)]
    assert fair.confidence_each_pair == pytest.approx(0.95) and fair.ungrouped == 0
    assert fair.source.startswith(f"{groups_file} (sha256 ") and groups.read(groups_file, 200).source == fair.source
    assert result.kpis.accuracy.top1 == pytest.approx(150 / 200)
    # the printed result: a short fairness line, and class balance labelled as not fairness
    line = next(row for row in text.splitlines() if row.startswith("fairness"))
    assert "largest gap 0.3000" in line and "best group a 0.9000" in line and "worst group b 0.6000" in line
    assert any(row.startswith("class balance (not fairness)") for row in text.splitlines())
    # the report shows the groups and the gap, and class balance under its own name
    md = campaign_report.build_markdown({"id": "c", "name": "fair"}, [result])
    assert "fairness: " in md and "| a | 100 | 90.0 [" in md and "largest gap 30.0 [" in md and "pp (a − b;" in md
    assert "class balance (recall per class; not fairness)" in md
    shown = json.loads(campaign_report.build_json({"id": "c", "name": "fair"}, [result]))["fairness"]
    assert shown[0]["fairness"]["gap"] == pytest.approx(0.30) and shown[0]["class_balance"]["kind"] == "class balance"
    # the reproduce line carries the groups file, and --from refuses it once changed
    argv = doc["reproduce"]["argv"]
    assert argv[argv.index("--groups") + 1] == str(groups_file)
    groups_file.write_text(groups_file.read_text() + "\n")
    code, _, err = run_cli(capsys, "--from", str(out))
    assert code == 2 and f"groups file {groups_file} is changed" in err


def test_a_gap_drawn_at_random_is_inside_the_interval(tmp_path, model):
    """Correctness drawn at random, p_a = 0.9 and p_b = 0.6, 400 samples a group (fixed seed): the true gap
    0.30 is inside the reported interval; the reported gap is the observed one."""
    rng = np.random.default_rng(16)
    right_a, right_b = rng.random(400) < 0.9, rng.random(400) < 0.6
    right, names = interleaved(right_a, right_b)
    folder = one_hot_folder(tmp_path / "data", right)
    groups_file = tmp_path / "groups.txt"
    groups_file.write_text("\n".join(names) + "\n")
    req = bench.BenchRequest(model=str(model), settings=settings_for("smoke", "SingleStream", "accuracy", contract.RunLength()),
                             dataset=str(folder), engine="native", warmup_runs=1, groups_file=groups_file,
                             log_dir=tmp_path / "logs")
    fair = bench.run(req)["kpis"]["fairness"]
    observed = right_a.mean() - right_b.mean()
    assert fair["gap"] == pytest.approx(observed) and (fair["best"], fair["worst"]) == ("a", "b")
    lo, hi = fair["gap_ci95"]
    assert lo <= 0.30 <= hi and lo > 0


def test_the_three_file_formats_give_the_same_groups(tmp_path):
    want = ("x", "", "y", "x", "")
    files = {
        "with-header.csv": "index,group\n0,x\n2,y\n3,x\n",
        "no-header.tsv": "3\tx\n0\tx\n\n2\ty\n",
        "plain.txt": "x\n\ny\nx\n",
        "object.json": '{"0": "x", "2": "y", "3": "x"}',
        "list.json": '["x", null, "y", "x"]',
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        got = groups.read(tmp_path / name, 5)
        assert got.names == want, name
        assert got.source.startswith(f"{tmp_path / name} (sha256 ")


@pytest.mark.parametrize(("text", "fragments"), [
    ("index,group\n0,a\n7,b\n", ["line 3", "sample index 7 is out of range", "indices 0 to 3"]),
    ("0,a\n1,b\n0,c\n", ["line 3", "sample 0 is given a group again (first at line 1)"]),
    ("0,a\n1," + "b" * 65 + "\n", ["line 2", "65 characters", "at most 64"]),
    ("0,a\nx1,b\n", ["line 2", "'x1' is not a whole number"]),
    ("0,a,extra\n", ["line 1", "3 fields"]),
    ("\n\n", ["gives no sample a group"]),
    ("a\nb\nc\nd\ne\n", ["line 5", "names 5 samples' groups", "has 4 samples"]),
    ('{"0": "a",\n "0": "b"}', ["key '0' appears twice"]),
    ('{"0": "a",\n "1": }', ["line 2", "not valid JSON"]),
    ("index;group\n0;a\n", ["line 1", "looks like INDEX;GROUP", "comma or a tab"]),
])
def test_a_bad_groups_file_is_one_line_naming_the_file_and_line(tmp_path, model, capsys, text, fragments):
    folder = one_hot_folder(tmp_path / "data", np.ones(4, dtype=bool))
    bad = tmp_path / "groups.csv"
    bad.write_text(text)
    code, _, err = run_cli(capsys, *accuracy_args(model, folder, "--groups", str(bad)))
    lines = [line for line in err.splitlines() if "error:" in line]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    assert f"groups file {bad}" in lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def test_groups_outside_a_scored_run_or_missing_are_refused_before_loading(tmp_path, model, capsys):
    folder = one_hot_folder(tmp_path / "data", np.ones(4, dtype=bool))
    code, _, err = run_cli(capsys, str(model), "--dataset", str(folder), "--groups", str(tmp_path / "g.csv"))
    assert code == 2 and "needs --mode accuracy or --mode robustness" in err
    code, _, err = run_cli(capsys, *accuracy_args(model, folder, "--groups", str(tmp_path / "absent.csv")))
    assert code == 2 and f"groups file {tmp_path / 'absent.csv'} does not exist" in err


def test_too_many_groups_or_no_file_are_clear(tmp_path):
    many = tmp_path / "many.txt"
    many.write_text("\n".join(f"g{i}" for i in range(groups.MAX_GROUPS + 1)))
    with pytest.raises(DatasetError, match="names 65537 groups, more than 65536"):
        groups.read(many, groups.MAX_GROUPS + 1)
    with pytest.raises(SettingsError, match="is not a file"):
        groups.read(tmp_path, 3)


def test_class_balance_without_groups_and_class_counts_on_the_zoo_model(capsys, tmp_path):
    """No --groups: no fairness, but class balance (recall per class), labelled as such; class_counts hold every
    sample and agree with the confusion matrix."""
    out = tmp_path / "r.json"
    code, text, err = run_cli(capsys, "zoo:fashion-mnist-cnn/fp32.onnx", "--mode", "accuracy", "--dataset",
                              "fashion-mnist:subset", "--profile", "smoke", "--engine", "native", "--warmup", "1",
                              "--json", str(out))
    assert code == 0, err
    doc = json.loads(out.read_text())
    result, _ = contract.checked_result(doc)
    kpis = result.kpis
    assert kpis.fairness is None and kpis.class_balance is not None and kpis.class_balance.kind == "class balance"
    acc = kpis.accuracy
    counts = np.array(acc.class_counts)
    matrix = np.array(acc.confusion_matrix)
    assert counts[:, 0].sum() == acc.n and counts[:, 1].sum() == acc.n and counts[:, 2].sum() == acc.correct
    assert (counts[:, 0] == matrix.sum(axis=1)).all() and (counts[:, 1] == matrix.sum(axis=0)).all()
    assert (counts[:, 2] == np.diag(matrix)).all()
    balance = kpis.class_balance
    assert [g.name for g in balance.groups] == [str(c) for c in np.flatnonzero(counts[:, 0])]
    assert [g.rate for g in balance.groups] == pytest.approx(list(counts[counts[:, 0] > 0, 2] / counts[counts[:, 0] > 0, 0]))
    assert balance.confidence_each_pair == pytest.approx(1 - 0.05 / 45)  # 10 classes: 45 pairs
    line = next(row for row in text.splitlines() if row.startswith("class balance (not fairness)"))
    assert "recall per class" in line and "10 classes" in line
    assert not any(row.startswith("fairness") for row in text.splitlines())


def _job(folder: Path, model: Path, names: list[str], mode: str = "accuracy") -> contract.Job:
    sha = contract_sha(model)
    sent = {"run_id": "r" * 8, "artifact": {"url": "http://lab/identity.onnx", "sha256": sha, "size": model.stat().st_size,
                                           "name": "identity.onnx"},
            "scenario": "SingleStream", "mode": mode, "profile": "smoke", "dataset": str(folder), "controller": "ctl",
            "engine": "native", "groups": names}
    return contract.decode_body("job", msgspec.json.encode(sent))  # as the agent reads it off the wire


def contract_sha(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_a_jobs_groups_are_scored_and_too_many_are_refused(tmp_path, model):
    right, names = interleaved(np.arange(10) < 9, np.arange(10) < 5)
    folder = one_hot_folder(tmp_path / "data", right)
    with pytest.raises(DatasetError, match=r"the job gives groups for 21 samples, but dataset .* has 20"):
        bench.run(request_from_job(_job(folder, model, [*names, "a"]), model, tmp_path / "logs", "pi-01"))
    fair = bench.run(request_from_job(_job(folder, model, names), model, tmp_path / "logs", "pi-01"))["kpis"]["fairness"]
    assert fair["gap"] == pytest.approx(0.4) and fair["source"].startswith("the job's groups")
    # a shorter list (a campaign's file read on the controller, up to its last named sample): the rest have no group
    short = bench.run(request_from_job(_job(folder, model, names[:-2]), model, tmp_path / "logs", "pi-01"))["kpis"]
    assert short["fairness"]["ungrouped"] == 2 and sum(g["n"] for g in short["fairness"]["groups"]) == 18
    with pytest.raises(SettingsError, match="need --mode accuracy or robustness"):
        bench.run(request_from_job(_job(folder, model, names, "performance"), model, tmp_path / "logs", "pi-01"))


def test_one_group_prints_without_a_gap():
    from agent import result_text

    block = fairness.by_group(np.array([0, 1, 1]), np.array([0, 1, 0]), ["only", "only", ""], "f")
    rows = result_text._gap_rows(block, "fairness", "group")
    assert rows == [("fairness", "accuracy per group: one group (only 1.0000, n=2), no gap, 1 samples without a group "
                                 "left out")]
