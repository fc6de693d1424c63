"""``--mode robustness`` end to end: the zoo's real Fashion-MNIST CNN (fp32 ONNX and int8 LiteRT) on the committed
1,000-image subset, corrupted by ``agent.corruptions``, scored and paired with the clean run; and the one-line refusals."""

from __future__ import annotations

import math
import pickle
import shlex

import numpy as np
import pytest
from scipy import stats

from agent import bench, cli, contract, corruptions, datasets, result_text
from agent.accuracy import unpack_correctness
from agent.errors import DatasetError, SettingsError
from agent.jobs import settings_for
from agent.runtimes.base import TensorSpec
from controller.analysis.paired import newcombe_paired
from tests.test_datasets_audio import KWS_INPUT, KWS_MODEL, noise, tone, write_wav

PLAN = ("gaussian_noise:1,5", "contrast:5")
VARIANTS = ("fp32.onnx", "int8.tflite")


def _request(model: str, dataset: str = "fashion-mnist:subset", entries: tuple[str, ...] = PLAN, **kw) -> bench.BenchRequest:
    settings = settings_for("smoke", "SingleStream", "robustness", contract.RunLength())
    return bench.BenchRequest(model=model, settings=settings, dataset=dataset, corruptions=entries, engine="native",
                              warmup_runs=2, **kw)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Each variant's robustness result, and the progress it reported."""
    out = {}
    for variant in VARIANTS:
        heard: list[tuple[str, dict]] = []
        doc = bench.run(_request(f"zoo:fashion-mnist-cnn/{variant}", log_dir=tmp_path_factory.mktemp("logs")),
                        lambda phase, details, heard=heard: heard.append((phase, details)))
        out[variant] = (doc, heard)
    return out


def _bits(accuracy: dict) -> np.ndarray:
    return unpack_correctness(accuracy["correct_bits"], accuracy["n"])


@pytest.mark.parametrize("variant", VARIANTS)
def test_the_result_validates_and_scores_each_variant_of_the_plan(runs, variant):
    doc, heard = runs[variant]
    typed, _ = contract.checked_result(doc)
    block = typed.kpis.robustness
    assert typed.mode == doc["mode"] == "robustness"
    assert block.family == "image"
    assert [(s.corruption, s.severity) for s in block.scores] == [("gaussian_noise", 1), ("gaussian_noise", 5), ("contrast", 5)]
    assert all(s.accuracy.n == 1000 and s.accuracy.confusion_matrix == () for s in block.scores)
    assert [d for p, d in heard if p == "corrupting"] == [{"corruption": c, "severity": s} for c, s in
                                                          corruptions.plan(PLAN, "image")]
    assert heard.index(("corrupting", {"corruption": "gaussian_noise", "severity": 1})) > \
        [p for p, _ in heard].index("scoring")  # after the clean accuracy is scored
    assert block.mean_top1 == pytest.approx(np.mean([s.accuracy.top1 for s in block.scores]))


@pytest.mark.parametrize("variant", VARIANTS)
def test_stronger_noise_costs_more_accuracy(runs, variant):
    scores = {(s["corruption"], s["severity"]): s for s in runs[variant][0]["kpis"]["robustness"]["scores"]}
    sev1, sev5 = scores[("gaussian_noise", 1)], scores[("gaussian_noise", 5)]
    assert sev5["drop_pp"] > sev1["drop_pp"] + 10
    assert sev5["accuracy"]["top1"] < runs[variant][0]["kpis"]["accuracy"]["top1"]


def test_corrupted_samples_are_the_same_for_both_variants_and_not_the_clean_ones(runs):
    fp32, int8 = (runs[v][0]["kpis"] for v in VARIANTS)
    assert fp32["accuracy"]["samples_sha256"] == int8["accuracy"]["samples_sha256"]
    prints = []
    for a, b in zip(fp32["robustness"]["scores"], int8["robustness"]["scores"], strict=True):
        assert a["accuracy"]["samples_sha256"] == b["accuracy"]["samples_sha256"]
        prints.append(a["accuracy"]["samples_sha256"])
    assert len({fp32["accuracy"]["samples_sha256"], *prints}) == 1 + len(prints)  # clean and each variant all differ


@pytest.mark.parametrize("variant", VARIANTS)
def test_each_drop_is_the_paired_difference_of_the_bits_with_its_interval(runs, variant):
    kpis = runs[variant][0]["kpis"]
    clean = _bits(kpis["accuracy"])
    for score in kpis["robustness"]["scores"]:
        corrupted = _bits(score["accuracy"])
        assert score["drop_pp"] == pytest.approx((clean.sum() - corrupted.sum()) / clean.size * 100)
        assert score["clean_only"] == int(np.sum(clean & ~corrupted))
        assert score["corrupted_only"] == int(np.sum(~clean & corrupted))
        a = int(np.sum(clean & corrupted))
        lo, hi = newcombe_paired(a, score["clean_only"], score["corrupted_only"],
                                 clean.size - a - score["clean_only"] - score["corrupted_only"])
        assert score["drop_ci95_pp"] == pytest.approx([lo * 100, hi * 100])
        assert lo * 100 <= score["drop_pp"] <= hi * 100


@pytest.mark.parametrize("variant", VARIANTS)
def test_mean_drop_interval_is_students_t_over_samples(runs, variant):
    kpis = runs[variant][0]["kpis"]
    block = kpis["robustness"]
    d = _bits(kpis["accuracy"]).astype(float) - np.mean([_bits(s["accuracy"]) for s in block["scores"]], axis=0)
    half = stats.t.ppf(0.975, d.size - 1) * d.std(ddof=1) / math.sqrt(d.size)
    assert block["mean_drop_pp"] == pytest.approx(d.mean() * 100)
    assert block["mean_drop_pp"] == pytest.approx((kpis["accuracy"]["top1"] - block["mean_top1"]) * 100)
    assert block["mean_drop_ci95_pp"] == pytest.approx([(d.mean() - half) * 100, (d.mean() + half) * 100], rel=1e-9)
    assert "Newcombe" in block["method"] and "Student" in block["method"]


def test_reproduce_line_carries_the_plan_and_the_text_shows_the_summary(runs):
    doc = runs["fp32.onnx"][0]
    argv = doc["reproduce"]["argv"]
    assert argv[argv.index("--mode") + 1] == "robustness"
    again = cli.build_parser().parse_args(["bench", *argv])
    assert corruptions.plan(cli._corruption_entries(again.corruptions, again.mode), "image") == corruptions.plan(PLAN, "image")
    assert "--corruptions" in shlex.split(doc["reproduce"]["command"])
    text = result_text.render(doc)
    worst = max(doc["kpis"]["robustness"]["scores"], key=lambda s: s["drop_pp"])
    assert "robustness" in text and "mean under 3 image corruptions" in text
    assert f"{worst['corruption']} severity {worst['severity']}" in text


# --- refusals, each one line, before anything is timed ------------------------------------------------------------

def _cli(capsys, *args: str) -> tuple[int, str]:
    code = cli.main(["bench", *args])
    err = capsys.readouterr().err
    return code, err


def _one_line(code: int, err: str, *fragments: str) -> None:
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "error:" in lines[0] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.mark.parametrize(("entries", "fragments"), [
    ("fog", ("unknown corruption 'fog'", "known:", "gaussian_noise", "audio_noise")),
    ("gaussian_noise:1,6", ("severities are 1 to 5", "gaussian_noise:1,3,5")),
    ("contrast:5 audio_noise", ("'audio_noise' is for audio", "holds image data", "pixelate")),
])
def test_bad_corruption_names_are_one_line(capsys, entries, fragments):
    _one_line(*_cli(capsys, "zoo:fashion-mnist-cnn/fp32.onnx", "--mode", "robustness", "--corruptions", entries), *fragments)


def test_corruptions_without_robustness_mode_name_the_fix(capsys):
    _one_line(*_cli(capsys, "zoo:fashion-mnist-cnn/fp32.onnx", "--mode", "accuracy", "--corruptions", "contrast"),
              "--corruptions applies to --mode robustness", "add --mode robustness")


def test_synthetic_and_npy_data_cannot_be_corrupted(capsys, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    np.save(folder / "image.npy", np.zeros((4, 1, 28, 28), dtype=np.float32))
    np.save(folder / "labels.npy", np.arange(4))
    for dataset in ("synthetic", str(folder)):
        _one_line(*_cli(capsys, "zoo:fashion-mnist-cnn/fp32.onnx", "--mode", "robustness", "--dataset", dataset),
                  f"dataset {dataset} cannot be corrupted", "use fashion-mnist, imagenet:DIR")
    heard: list[str] = []
    with pytest.raises(DatasetError, match="cannot be corrupted"):
        bench.run(_request("zoo:fashion-mnist-cnn/fp32.onnx", dataset="synthetic"), lambda p, d: heard.append(p))
    assert heard == []  # refused before the model was even loaded
    with pytest.raises(SettingsError, match="add --mode robustness"):
        bench.run(bench.BenchRequest(model="zoo:fashion-mnist-cnn/fp32.onnx", corruptions=("contrast",)))


# --- where the corruption is applied ----------------------------------------------------------------------------

def _cifar(root, images, labels):
    rows = np.stack([img.transpose(2, 0, 1).reshape(-1) for img in images]).astype(np.uint8)
    root.mkdir(parents=True, exist_ok=True)
    with (root / "test_batch").open("wb") as f:
        pickle.dump({b"labels": list(labels), b"data": rows}, f)


@pytest.mark.parametrize("corruption", ["brightness", "gaussian_noise", "jpeg_compression"])
def test_a_by_path_image_is_corrupted_as_rgb_after_its_geometry_and_never_cached(tmp_path, corruption):
    """CIFAR's geometry and normalisation (``cifar10-tiny``) are the identity at 32×32, so each perturbed sample is
    exactly the clean RGB image corrupted; corrupting it as BGR would give other pixels (each channel's noise draw,
    JPEG's luma weights, float HSV's rounding differ by channel)."""
    rng = np.random.default_rng(5)
    images = [rng.integers(0, 256, (32, 32, 3), dtype=np.uint8) for _ in range(3)]
    bgr_mixup = corruptions.corrupt(images[0][..., ::-1].copy(), corruption, 4, 0)[..., ::-1]
    assert not np.array_equal(bgr_mixup, corruptions.corrupt(images[0], corruption, 4, 0))  # the test can tell
    _cifar(tmp_path / "cifar", images, [1, 2, 3])
    spec = [TensorSpec("input_1", (1, 32, 32, 3), "float32")]
    cache = tmp_path / "cache"
    clean = datasets.load(f"cifar10:{tmp_path / 'cifar'}", spec, {}, inputs_cache=cache)
    stored = sorted(p.name for p in cache.rglob("*"))
    assert clean.family == "image" and datasets.family_of(f"cifar10:{tmp_path}") == "image"
    perturbed = datasets.load(f"cifar10:{tmp_path / 'cifar'}", spec, {}, inputs_cache=cache,
                              perturb=corruptions.perturbation(corruption, 4))
    assert sorted(p.name for p in cache.rglob("*")) == stored and perturbed.origin["inputs_cache"] is None
    for i, img in enumerate(images):
        want = corruptions.corrupt(img, corruption, 4, i).astype(np.float32)
        assert np.array_equal(perturbed.raw[i], want) and np.array_equal(perturbed.feeds[i]["input_1"][0], want)
    again = datasets.load(f"cifar10:{tmp_path / 'cifar'}", spec, {}, inputs_cache=cache)
    assert again.origin["inputs_cache"]["hit"] and np.array_equal(again.raw, clean.raw)  # the cache still holds clean


def test_fashion_mnist_is_corrupted_before_scaling_and_keeps_its_shape():
    spec = [TensorSpec("image", (1, 1, 28, 28), "float32")]
    clean = datasets.load("fashion-mnist:subset", spec, {})
    noisy = datasets.load("fashion-mnist:subset", spec, {}, perturb=corruptions.perturbation("contrast", 2))
    assert noisy.raw.shape == clean.raw.shape and noisy.raw.dtype == np.uint8
    assert np.array_equal(noisy.raw[7], corruptions.corrupt(clean.raw[7], "contrast", 2, 7))
    assert np.allclose(noisy.feeds[7]["image"][0, 0], noisy.raw[7] / 255.0)


def test_a_keyword_spotting_run_under_audio_noise(tmp_path):
    """The real MLPerf Tiny KWS model on five clips: the waveform is noised before its MFCCs, the run is scored."""
    root = tmp_path / "kws"
    for folder, name, clip in (("yes", "a_nohash_0.wav", tone(1000)), ("yes", "b_nohash_0.wav", tone(1200)),
                               ("no", "a_nohash_0.wav", tone(400)), ("_silence_", "s_0.wav", noise(1.0, seed=0)),
                               ("_unknown_", "c_nohash_1.wav", tone(2500))):
        write_wav(root / folder / name, clip)
    clean = datasets.load(f"speech-commands:{root}", [KWS_INPUT], {})
    noisy = datasets.load(f"speech-commands:{root}", [KWS_INPUT], {}, perturb=corruptions.perturbation("audio_noise", 5))
    assert clean.family == "audio" and not np.array_equal(clean.raw, noisy.raw)
    doc = bench.run(_request(str(KWS_MODEL), f"speech-commands:{root}", ("audio_noise:1,5",), log_dir=tmp_path / "logs"))
    block = contract.checked_result(doc)[0].kpis.robustness
    assert block.family == "audio" and [s.severity for s in block.scores] == [1, 5]
    assert all(s.accuracy.n == 5 for s in block.scores)
    with pytest.raises(SettingsError, match="'contrast' is for image"):
        bench.run(_request(str(KWS_MODEL), f"speech-commands:{root}", ("contrast",)))


def test_the_agents_t_quantile_and_paired_interval_need_no_scipy_and_match_it():
    from agent import stats as agent_stats
    from controller.analysis import paired

    assert paired.newcombe_paired is agent_stats.newcombe_paired  # one home, in the agent; the controller re-exports it
    for df in (1, 2, 4, 9, 29, 999, 10**6):
        for p in (0.025, 0.5, 0.9, 0.975, 0.999):
            assert agent_stats.student_t_quantile(p, df) == pytest.approx(stats.t.ppf(p, df), rel=1e-8)
    assert agent_stats.mean_interval_t(np.array([1.0])) == (-math.inf, math.inf)


def test_a_fleet_job_carries_its_corruptions_into_the_request(tmp_path):
    from agent.jobs import request_from_job

    job = contract.convert("job", {
        "run_id": "r1", "artifact": {"url": "http://lab/fp32.onnx", "sha256": "0" * 64, "size": 1, "name": "fp32.onnx"},
        "scenario": "SingleStream", "mode": "robustness", "profile": "smoke", "dataset": "fashion-mnist:subset",
        "controller": "ctl", "corruptions": list(PLAN)})
    request = request_from_job(job, tmp_path / "fp32.onnx", tmp_path / "logs", "pi-01")
    assert request.corruptions == PLAN and request.settings.mode.value == "robustness"
