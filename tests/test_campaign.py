"""Campaign files: loading, the file:line:key errors, and expansion into the job matrix."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

import msgspec
import pytest

from agent import contract
from agent.contract import RunLength, RuntimeOptions
from agent.errors import EXIT_USAGE, EdgeperfError
from controller.fleet import campaign
from controller.fleet.campaign import Campaign, CampaignError, DeviceSelector, JobSpec, ModelSpec, Variant

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "campaigns"
ZOO = Path(__file__).resolve().parent.parent / "agent" / "zoo" / "fashion-mnist-cnn"
ONNX = "zoo:fashion-mnist-cnn/int8.onnx"
TFLITE = "zoo:fashion-mnist-cnn/int8.tflite"


def loads(text: str, base_dir: Path = FIXTURES) -> Campaign:
    return campaign.loads(text, "camp.yaml", base_dir)


def error_of(text: str, base_dir: Path = FIXTURES) -> str:
    with pytest.raises(CampaignError) as info:
        loads(text, base_dir)
    return str(info.value)


def minimal(extra: str = "", variant_extra: str = "", artifact: str = ONNX) -> str:
    """A valid campaign (lines 1-5) with ``extra`` top-level lines after it and keys added to its variant."""
    return f"name: c\nmodels:\n  - name: cnn\n    variants:\n      - artifact: {artifact}\n{variant_extra}{extra}"


# --- valid files ---------------------------------------------------------------------------------


def test_a_full_file_gives_every_value_as_written():
    c = campaign.load(FIXTURES / "full.yaml")
    assert c.name == "fmnist-full"
    assert c.source == str(FIXTURES / "full.yaml")
    assert (c.profile, c.engine, c.repeats, c.retries) == ("smoke", "native", 2, 2)
    assert c.scenarios == ("SingleStream", "Offline")  # "offline" stored canonical
    assert c.modes == ("performance", "accuracy")
    assert (c.cooldown_s, c.timeout_s) == (5.0, 900.0)
    assert (c.dataset, c.accuracy_dataset) == ("synthetic", "fashion-mnist:subset")
    assert c.overrides == RunLength(min_duration_s=0.5, max_duration_s=5.0, min_queries=64, max_queries=1000,
                                    target_qps=100.0, target_latency_ms=10.0)
    assert isinstance(c.overrides.min_queries, int) and isinstance(c.overrides.max_duration_s, float)
    assert c.devices == DeviceSelector(all=False, ids=("pi5-01",), tags=("rpi5", "lab-a"))
    assert c.devices_line == 20
    assert [m.name for m in c.models] == ["fashion-mnist-cnn", "fmnist-fp32"]
    assert [m.dataset for m in c.models] == ["fashion-mnist", None]
    tfl, ort = c.models[0].variants
    assert tfl == Variant(name="int8-tflite", artifact=TFLITE, runtime="litert",
                          options=RuntimeOptions(threads=2, xnnpack=False), batch_size=8)
    assert ort == Variant(
        name="int8.onnx", artifact=ONNX, runtime="onnxruntime",
        options=RuntimeOptions(
            providers=("CUDAExecutionProvider", "CPUExecutionProvider"),
            provider_options={"CUDAExecutionProvider": {"device_id": "0", "gpu_mem_limit": "2147483648"}},
            optimization_level="extended", shapes={"image": (1, 1, 28, 28)},
        ),
    )
    (fp32,) = c.models[1].variants
    assert fp32 == Variant(name="fp32.onnx", artifact="zoo:fashion-mnist-cnn/fp32.onnx",
                           options=RuntimeOptions(providers=("CPUExecutionProvider",)))


def test_a_campaign_and_its_jobs_round_trip_through_json():
    c = campaign.load(FIXTURES / "full.yaml")
    again = Campaign.from_dict(json.loads(json.dumps(c.to_dict())))
    assert again == c
    assert again.models[0].variants[1].options.shapes["image"] == (1, 1, 28, 28)  # tuples come back as tuples
    assert isinstance(again.models[0].variants[1].options.providers, tuple)
    assert again.overrides == c.overrides and isinstance(again.overrides, RunLength)
    jobs = campaign.expand(c, [("pi5-01", [])])
    back = [JobSpec.from_dict(json.loads(json.dumps(j.to_dict()))) for j in jobs]
    assert back == jobs
    assert ModelSpec.from_dict(json.loads(json.dumps(c.models[0].to_dict()))) == c.models[0]


def test_defaults_are_applied():
    c = campaign.load(FIXTURES / "minimal.yaml")
    assert (c.profile, c.engine, c.repeats, c.retries) == ("quick", "auto", 1, 1)
    assert (c.scenarios, c.modes) == (("SingleStream",), ("performance",))
    assert (c.cooldown_s, c.timeout_s) == (0.0, 1800.0)
    assert (c.dataset, c.accuracy_dataset, c.overrides) == ("synthetic", "fashion-mnist", RunLength())
    assert contract.to_builtins(c.overrides) == {}  # nothing overridden: every job keeps its profile's lengths
    assert c.devices == DeviceSelector(all=True) and c.devices_line == 1
    (model,) = c.models
    assert model.dataset is None
    assert model.variants == (Variant(name="int8.onnx", artifact=ONNX),)
    v = model.variants[0]
    o = v.options
    assert (v.runtime, o.threads, o.providers, o.provider_options, o.optimization_level, o.xnnpack, v.batch_size, o.shapes) == (
        None, None, (), {}, "all", True, None, {})
    assert contract.to_builtins(o) == {}  # the runtimes' own defaults: nothing set, nothing sent


def test_a_relative_artifact_is_relative_to_the_yaml_file_not_the_working_directory(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    shutil.copy(ZOO / "int8.onnx", tmp_path / "models" / "int8.onnx")
    shutil.copytree(ZOO / "int8.mlpackage", tmp_path / "models" / "int8.mlpackage")
    (tmp_path / "campaigns").mkdir()
    path = tmp_path / "campaigns" / "c.yaml"
    path.write_text(
        "name: local\nmodels:\n  - name: cnn\n    variants:\n"
        "      - artifact: ../models/int8.onnx\n"
        "      - artifact: ../models/int8.mlpackage\n        runtime: coreml\n"
    )
    monkeypatch.chdir(tmp_path / "models")  # a path relative to the cwd would not find ../models
    onnx, mlpackage = campaign.load(path).models[0].variants
    assert onnx.artifact == str(tmp_path.resolve() / "models" / "int8.onnx")
    assert onnx.name == "int8.onnx"
    assert mlpackage.artifact == str(tmp_path.resolve() / "models" / "int8.mlpackage")
    assert (mlpackage.name, mlpackage.runtime) == ("int8.mlpackage", "coreml")


def test_names_are_normalised_to_their_canonical_form():
    c = loads(minimal("scenarios: [single-stream, SERVER, multi_stream]\nmodes: Accuracy\n", "        runtime: onnx\n"))
    assert c.scenarios == ("SingleStream", "Server", "MultiStream")
    assert c.modes == ("accuracy",)  # one bare item is a list of one
    assert c.models[0].variants[0].runtime == "onnxruntime"


def test_provider_options_keep_values_as_written_and_one_provider_may_be_a_string():
    v = loads(minimal(variant_extra=(
        "        provider: CUDAExecutionProvider\n"
        "        provider_options:\n"
        "          CUDAExecutionProvider: {device_id: 0, arena_extend_strategy: kSameAsRequested, enable: true, x: 1e3}\n"
    ))).models[0].variants[0]
    assert v.options.providers == ("CUDAExecutionProvider",)
    assert v.options.provider_options == {"CUDAExecutionProvider": {
        "device_id": "0", "arena_extend_strategy": "kSameAsRequested", "enable": "true", "x": "1e3"}}


def test_delegates_and_compute_units_reach_the_variant_options():
    tfl = loads(minimal(artifact=TFLITE, variant_extra="        delegate: libedgetpu.so.1\n")).models[0].variants[0]
    assert tfl.options.delegates == ("libedgetpu.so.1",)  # one bare item is a list of one
    ml = loads(minimal(artifact="zoo:fashion-mnist-cnn/int8.mlpackage",
                       variant_extra="        compute_units: cpu_and_ne\n")).models[0].variants[0]
    assert (ml.runtime, ml.options.compute_units) == (None, "cpu_and_ne")
    assert contract.to_builtins(ml.options) == {"compute_units": "cpu_and_ne"}  # only what was set travels


# --- errors: each names file, line and key ------------------------------------------------------


@pytest.mark.parametrize(("file", "line", "rest"), [
    ("wrong_type.yaml", 3, "repeats: expected an integer >= 1, got 'two' (a string)"),
    ("unknown_key.yaml", 7, "models[0].variants[1].thread: unknown key; did you mean 'threads'?"),
    ("bad_scenario.yaml", 4,
     "scenarios[1]: unknown scenario 'SingleStrem'; use one of: SingleStream, MultiStream, Server, Offline"),
    ("bad_profile.yaml", 2, "profile: unknown profile 'smok'; did you mean 'smoke'? use one of: smoke, quick, standard, mlperf"),
    ("missing_key.yaml", 6, "models[1].name: missing required key"),  # the line of the mapping that lacks it
    ("missing_artifact.yaml", 5,
     f"models[0].variants[0].artifact: model file 'models/nope.onnx' not found (looked for {FIXTURES / 'models' / 'nope.onnx'})"),
    ("bad_shape.yaml", 7,
     "models[0].variants[0].shape.image: bad shape '1x1x28xN'; write D1xD2x... with sizes >= 1, e.g. 1x3x224x224"),
    ("duplicate_key.yaml", 7, "profile: duplicate key (first at line 2)"),
    ("empty_models.yaml", 3, "models: must list at least one model"),
    ("syntax_error.yaml", 3, "YAML syntax error: expected ',' or ']', but got ':' (while parsing a flow sequence at line 2)"),
])
def test_fixture_errors_name_file_line_and_key(file, line, rest):
    path = FIXTURES / file
    with pytest.raises(CampaignError) as info:
        campaign.load(path)
    assert str(info.value) == f"{path}:{line}: {rest}"
    assert info.value.exit_code == EXIT_USAGE and isinstance(info.value, EdgeperfError)


def test_an_unknown_zoo_name_lists_the_known_ones():
    path = FIXTURES / "unknown_zoo.yaml"
    with pytest.raises(CampaignError) as info:
        campaign.load(path)
    msg = str(info.value)
    assert msg.startswith(f"{path}:5: models[0].variants[0].artifact: "
                          "no zoo model named 'zoo:fashion-mnist-cnn/int4.onnx'; known: ")
    assert "zoo:fashion-mnist-cnn/int8.onnx" in msg and "zoo:fashion-mnist-cnn/int8.tflite" in msg


def test_a_missing_file_is_one_clear_line(tmp_path):
    with pytest.raises(CampaignError) as info:
        campaign.load(tmp_path / "nope.yaml")
    assert str(info.value) == f"{tmp_path / 'nope.yaml'}: campaign file not found"
    with pytest.raises(CampaignError) as info:
        campaign.load(tmp_path)
    assert str(info.value) == f"{tmp_path}: is a directory, not a campaign file"
    (tmp_path / "latin1.yaml").write_bytes(b"name: caf\xe9\n")
    with pytest.raises(CampaignError, match=r"latin1\.yaml: cannot read campaign file: not UTF-8 text"):
        campaign.load(tmp_path / "latin1.yaml")


@pytest.mark.parametrize(("text", "expected"), [
    ("", "camp.yaml:1: (top level): the file is empty; a campaign needs at least name and models"),
    ("- a\n- b\n", "camp.yaml:1: (top level): expected a mapping of campaign keys, got a list"),
    # a missing top-level key points at the top mapping, which starts after the comment
    ("# fleet run\n\nname: c\n", "camp.yaml:3: models: missing required key"),
    ("name: c\nmodels: {a: 1}\n", "camp.yaml:2: models: expected a list of models, got a mapping"),
    ("name: c\nmodels:\n", "camp.yaml:2: models: expected a list of models, got null (an empty value)"),
    ("name: c d\nmodels: []\n", "camp.yaml:1: name: 'c d' is not a valid name; use letters, digits, '.', '_' and '-'"),
    (minimal("colour: red\n"), "camp.yaml:6: colour: unknown key; expected one of: name, profile, engine, scenarios, modes, "
     "repeats, cooldown_s, power, timeout_s, retries, dataset, accuracy_dataset, corruptions, groups, overrides, devices, "
     "sweep, models"),
    (minimal("engine: lodgen\n"),
     "camp.yaml:6: engine: unknown engine 'lodgen'; did you mean 'loadgen'? use one of: auto, loadgen, native"),
    (minimal("modes: [performance, latency]\n"),
     "camp.yaml:6: modes[1]: unknown mode 'latency'; use performance, accuracy or robustness"),
    (minimal("scenarios: [Offline, offline]\n"), "camp.yaml:6: scenarios[1]: 'Offline' is listed twice"),
    (minimal("scenarios: []\n"), "camp.yaml:6: scenarios: must list at least one of scenarios"),
    (minimal("repeats: 0\n"), "camp.yaml:6: repeats: expected an integer >= 1, got 0 (an integer)"),
    (minimal("retries: -1\n"), "camp.yaml:6: retries: expected an integer in [0, 999], got -1 (an integer)"),
    # timeout_s fills the job's own field: the contract's bounds (at most a week), the same words
    (minimal("timeout_s: 0\n"), "camp.yaml:6: timeout_s: expected a number in (0, 604800], got 0 (an integer)"),
    (minimal("timeout_s: .inf\n"), "camp.yaml:6: timeout_s: expected a finite number in (0, 604800], got .inf (a number)"),
    (minimal("timeout_s: 1000000\n"),
     "camp.yaml:6: timeout_s: expected a number in (0, 604800], got 1000000 (an integer)"),
    # a job's attempt number is at most 1000 in the contract: retries beyond would fail the job mid-campaign
    (minimal("retries: 5000\n"), "camp.yaml:6: retries: expected an integer in [0, 999], got 5000 (an integer)"),
    (minimal("cooldown_s: .nan\n"), "camp.yaml:6: cooldown_s: expected a finite number >= 0, got .nan (a number)"),
    (minimal("cooldown_s: -0.5\n"), "camp.yaml:6: cooldown_s: expected a number >= 0, got -0.5 (a number)"),
    (minimal("dataset: mnist\n"), "camp.yaml:6: dataset: unknown dataset 'mnist'; use one of: "
     "synthetic, fashion-mnist, fashion-mnist:subset, fashion-mnist:full, or KIND:PATH[:N] with KIND one of: imagenet, "
     "coco, vww, cifar10, speech-commands, toycar (docs/datasets.md)"),
    (minimal("modes: [accuracy]\naccuracy_dataset: synthetic\n"),
     "camp.yaml:7: accuracy_dataset: synthetic has no labels, so accuracy cannot be scored; use fashion-mnist"),
    (minimal("overrides:\n  min_querys: 5\n"), "camp.yaml:7: overrides.min_querys: unknown key; did you mean 'min_queries'?"),
    (minimal("overrides:\n  min_queries: 1.5\n"),
     "camp.yaml:7: overrides.min_queries: expected an integer in [1, 10000000], got 1.5 (a number)"),
    (minimal("overrides:\n  target_qps: fast\n"),
     "camp.yaml:7: overrides.target_qps: expected a number in (0, 100000], got 'fast' (a string)"),
    # past the contract's upper bound: the key's own line, the key path, the range, the value
    (minimal("scenarios: [Server]\noverrides:\n  min_duration_s: 1\n  target_qps: 200000\n"),
     "camp.yaml:9: overrides.target_qps: expected a number in (0, 100000], got 200000 (an integer)"),
    (minimal("overrides:\n  min_queries: 100000000\n"),
     "camp.yaml:7: overrides.min_queries: expected an integer in [1, 10000000], got 100000000 (an integer)"),
    (minimal("overrides:\n  max_duration_s: 1.0e+6\n"),
     "camp.yaml:7: overrides.max_duration_s: expected a number in (0, 604800], got 1.0e+6 (a number)"),
    # NaN passes every comparison; it is refused for not being a number at all
    (minimal("overrides:\n  target_qps: .nan\n"),
     "camp.yaml:7: overrides.target_qps: expected a finite number in (0, 100000], got .nan (a number)"),
    # YAML 1.1 (PyYAML) reads an exponent without a dot and a sign as text: say how to write the number
    (minimal("overrides:\n  target_qps: 1e9\n"),
     "camp.yaml:7: overrides.target_qps: expected a number in (0, 100000], got '1e9' (a string); "
     "YAML reads 1e9 as text: write 1.0e+9 or 1000000000"),
    (minimal("overrides:\n  min_duration_s: 1e99999\n"),
     "camp.yaml:7: overrides.min_duration_s: expected a number in (0, 604800], got '1e99999' (a string); "
     "YAML reads 1e99999 as text: write 1.0e+99999"),
    (minimal("overrides:\n  target_latency_ms: 2.5e1\n"),  # within range once read as a number
     "camp.yaml:7: overrides.target_latency_ms: expected a number in (0, 10000000], got '2.5e1' (a string); "
     "YAML reads 2.5e1 as text: write 2.5e+1 or 25"),
    (minimal("overrides:\n  min_queries: 1e6\n"),  # an integer key: 1.0e+6 would be a float, so only the digits
     "camp.yaml:7: overrides.min_queries: expected an integer in [1, 10000000], got '1e6' (a string); "
     "YAML reads 1e6 as text: write 1000000"),
    (minimal("overrides:\n  target_qps: '1e3'\n"),  # quoted: text on purpose, so no hint
     "camp.yaml:7: overrides.target_qps: expected a number in (0, 100000], got '1e3' (a string)"),
    (minimal("overrides:\n  min_queries: 100\n  max_queries: 10\n"),
     "camp.yaml:8: overrides.max_queries: 10 is below min_queries (100)"),
    (minimal("overrides: {min_duration_s: 3, max_duration_s: 2}\n"),
     "camp.yaml:6: overrides.max_duration_s: 2 s is below min_duration_s (3 s)"),
    # the quick profile runs SingleStream for at least 10 s: a 5 s cap would fail every job
    (minimal("overrides: {max_duration_s: 5}\n"),
     "camp.yaml:6: overrides.max_duration_s: 5 s is below the quick profile's minimum for SingleStream (10 s)"),
    # the mlperf profile runs Server for 600 s: 50,000 arrivals/s would not fit in any device's memory
    (minimal("scenarios: [Server]\nprofile: mlperf\noverrides: {target_qps: 50000}\n"),
     "camp.yaml:8: overrides.target_qps: target_qps 50000 × min_duration_s 600 schedules 30,000,000 queries, more "
     "than the 10,000,000 an arrival schedule may hold; lower target_qps or min_duration_s, or set max_queries"),
    (minimal("devices: some\n"), "camp.yaml:6: devices: expected 'all' or a mapping with ids and/or tags, got 'some' (a string)"),
    (minimal("devices: {}\n"), "camp.yaml:6: devices: give ids, tags or both (or write devices: all)"),
    (minimal("devices: {id: [a]}\n"), "camp.yaml:6: devices.id: unknown key; did you mean 'ids'?"),
    (minimal("devices:\n  ids: [pi5-01, lab/pi]\n"),
     "camp.yaml:7: devices.ids[1]: device id 'lab/pi' must be 1-64 characters of A-Z a-z 0-9 . _ : -"),
    (minimal("devices:\n  tags: [rpi5, 7]\n"), "camp.yaml:7: devices.tags[1]: expected a string, got 7 (an integer)"),
    (minimal(variant_extra="        threads: true\n"),
     "camp.yaml:6: models[0].variants[0].threads: expected an integer in [1, 1024], got true (a boolean)"),
    (minimal(variant_extra="        threads: 2000\n"),
     "camp.yaml:6: models[0].variants[0].threads: expected an integer in [1, 1024], got 2000 (an integer)"),
    # a variant's batch_size becomes the job's overrides.batch_size: its bound is that field's
    (minimal(variant_extra="        batch_size: 0\n"),
     "camp.yaml:6: models[0].variants[0].batch_size: expected an integer in [1, 65536], got 0 (an integer)"),
    (minimal(variant_extra="        batch_size: 100000\n"),
     "camp.yaml:6: models[0].variants[0].batch_size: expected an integer in [1, 65536], got 100000 (an integer)"),
    (minimal(variant_extra="        runtime: tensorrt\n"),
     "camp.yaml:6: models[0].variants[0].runtime: unknown runtime 'tensorrt'; use one of: litert, onnxruntime, coreml"),
    (minimal(variant_extra="        runtime: litert\n"),
     "camp.yaml:6: models[0].variants[0].runtime: runtime litert cannot load a onnx model (int8.onnx); use onnxruntime"),
    (minimal(variant_extra="        xnnpack: false\n"),
     "camp.yaml:6: models[0].variants[0].xnnpack: applies to litert only, but this variant runs on onnxruntime"),
    (minimal(artifact=TFLITE, variant_extra="        provider: CPUExecutionProvider\n"),
     "camp.yaml:6: models[0].variants[0].provider: applies to onnxruntime only, but this variant runs on litert"),
    (minimal(artifact=TFLITE, variant_extra="        xnnpack: maybe\n"),
     "camp.yaml:6: models[0].variants[0].xnnpack: expected true or false, got 'maybe' (a string)"),
    (minimal(variant_extra="        optimization: max\n"),
     "camp.yaml:6: models[0].variants[0].optimization: unknown optimization 'max'; "
     "use one of: all, basic, disable, extended"),
    (minimal(artifact=TFLITE, variant_extra="        compute_units: cpu_only\n"),
     "camp.yaml:6: models[0].variants[0].compute_units: applies to coreml only, but this variant runs on litert"),
    (minimal(variant_extra="        delegate: libedgetpu.so.1\n"),
     "camp.yaml:6: models[0].variants[0].delegate: applies to litert only, but this variant runs on onnxruntime"),
    (minimal(variant_extra="        provider_options: {CUDAExecutionProvider: {device_id: [0]}}\n"),
     "camp.yaml:6: models[0].variants[0].provider_options.CUDAExecutionProvider.device_id: expected a single value, got a list"),
    (minimal(variant_extra="        shape: {image: 0x28}\n"),
     "camp.yaml:6: models[0].variants[0].shape.image: bad shape '0x28'; write D1xD2x... with sizes >= 1, e.g. 1x3x224x224"),
    # the contract's bounds of a shape (RuntimeOptions.shapes): at most 16 sizes of at most 2^31
    (minimal(variant_extra="        shape: {image: 1x99999999999}\n"),
     "camp.yaml:6: models[0].variants[0].shape.image: bad shape '1x99999999999'; give at most 16 sizes, "
     "each an integer in [1, 2147483648]"),
    (minimal(variant_extra="        shape: [1, 28]\n"),
     "camp.yaml:6: models[0].variants[0].shape: expected a mapping of input name -> D1xD2x..., got a list"),
    (minimal(variant_extra="        shape:\n          image: 1x28\n          image: 1x29\n"),
     "camp.yaml:8: models[0].variants[0].shape.image: duplicate key (first at line 7)"),
    ("name: c\nmodels:\n  - name: cnn\n    variants: []\n", "camp.yaml:4: models[0].variants: must list at least one variant"),
    ("name: c\nmodels:\n  - name: cnn\n    variants:\n      - name: a\n",
     "camp.yaml:5: models[0].variants[0].artifact: missing required key"),
    ("name: c\nmodels:\n  - name: cnn\n    variants:\n      - artifact: ../campaigns/full.yaml\n",
     "camp.yaml:5: models[0].variants[0].artifact: full.yaml: unknown model type '.yaml'; "
     "use one of: .tflite, .onnx, .mlpackage, .mlmodel"),
    ("name: c\nmodels:\n  - name: cnn\n    variants:\n      - artifact: " + ONNX + "\n      - artifact: " + ONNX + "\n",
     "camp.yaml:6: models[0].variants[1].artifact: variant 'int8.onnx' is listed twice (first at line 5); "
     "give the variants distinct names with name:"),
    ("name: c\nmodels:\n  - name: cnn\n    variants:\n      - artifact: " + ONNX + "\n        name: a\n"
     "      - artifact: " + TFLITE + "\n        name: a\n",
     "camp.yaml:8: models[0].variants[1].name: variant 'a' is listed twice (first at line 6)"),
    ("name: c\nmodels:\n  - name: cnn\n    variants: [{artifact: " + ONNX + "}]\n"
     "  - name: cnn\n    variants: [{artifact: " + ONNX + "}]\n",
     "camp.yaml:5: models[1].name: model 'cnn' is listed twice (first at line 3)"),
    ("name: c\nmodells: []\n", "camp.yaml:2: modells: unknown key; did you mean 'models'?"),
    ("name: c\n<<: {profile: smoke}\nmodels: []\n",
     "camp.yaml:2: (top level): merge keys (<<) are not supported; repeat the keys instead"),
    ("name: c\n1: x\n", "camp.yaml:2: (top level): keys must be strings, got 1 (an integer)"),
    ("name: c\nmodels: [a\n", "camp.yaml:3: YAML syntax error: expected ',' or ']', but got '<stream end>' "
     "(while parsing a flow sequence at line 2)"),
    ("name: c\n\tmodels: []\n", "camp.yaml:2: YAML syntax error: found character '\\t' that cannot start any token"),
    ("name: c\n---\nname: d\n", "camp.yaml:2: YAML syntax error: but found another document "
     "(expected a single document in the stream at line 1)"),
    ("name: c\nmodels: *nowhere\n", "camp.yaml:2: YAML syntax error: found undefined alias 'nowhere'"),
])
def test_inline_errors_name_file_line_and_key(text, expected):
    assert error_of(text) == expected


def _bounded(struct: type) -> list[tuple[str, msgspec.inspect.Type]]:
    """The struct's numeric fields that have an upper bound, with their (unwrapped) schema type."""
    kinds = [(f.encode_name, next(t for t in getattr(f.type, "types", (f.type,)) if not isinstance(t, msgspec.inspect.NoneType)))
             for f in msgspec.inspect.type_info(struct).fields]
    return [(name, kind) for name, kind in kinds
            if isinstance(kind, (msgspec.inspect.IntType, msgspec.inspect.FloatType)) and kind.le is not None]


@pytest.mark.parametrize(("name", "kind"), _bounded(RunLength), ids=[name for name, _ in _bounded(RunLength)])
def test_every_upper_bound_the_contract_declares_is_said_on_the_keys_line(name, kind):
    # The bounds are read from the contract, not listed here or in the loader: a bound added to RunLength
    # must be refused in these words (not msgspec's "Expected float <= ..."), on the key's own line.
    too_big = int(kind.le) * 2
    integer = isinstance(kind, msgspec.inspect.IntType)
    low = f"({kind.gt:g}" if kind.gt is not None else f"[{kind.ge:g}"
    assert error_of(minimal(f"overrides:\n  # longer runs\n  {name}: {too_big}\n")) == (
        f"camp.yaml:8: overrides.{name}: expected {'an integer' if integer else 'a number'} in {low}, {int(kind.le)}], "
        f"got {too_big} (an integer)")
    assert loads(minimal(f"overrides:\n  {name}: {int(kind.le)}\n")).overrides == RunLength(**{name: kind.le})


def test_a_shape_given_as_one_number_is_read_as_written():
    # YAML 1.1 would read 1:28 as a base-60 integer (88); the shape must come from the text itself
    v = loads(minimal(variant_extra="        shape: {ids: 128, image: 1x1x28x28}\n")).models[0].variants[0]
    assert v.options.shapes == {"ids": (128,), "image": (1, 1, 28, 28)}
    assert "bad shape '1:28'" in error_of(minimal(variant_extra="        shape: {ids: 1:28}\n"))


def test_max_duration_is_checked_against_every_scenario_of_the_profile():
    # quick Offline has no minimum duration, so 5 s passes for Offline alone but not with SingleStream
    assert loads(minimal("scenarios: [Offline]\noverrides: {max_duration_s: 5}\n")).overrides == RunLength(max_duration_s=5.0)
    both = minimal("scenarios: [Offline, SingleStream]\noverrides: {max_duration_s: 5}\n")
    assert error_of(both) == (
        "camp.yaml:7: overrides.max_duration_s: 5 s is below the quick profile's minimum for SingleStream (10 s)")


def test_errors_are_campaign_errors_with_the_usage_exit_code():
    assert issubclass(CampaignError, EdgeperfError)
    assert CampaignError.exit_code == EXIT_USAGE == 2


# --- expansion ----------------------------------------------------------------------------------

MATRIX = """\
name: matrix
profile: smoke
scenarios: [SingleStream, Offline]
modes: [performance, accuracy]
repeats: 2
dataset: synthetic
accuracy_dataset: fashion-mnist:subset
devices:
  tags: [lab-a]
models:
  - name: cnn
    dataset: fashion-mnist
    variants:
      - artifact: zoo:fashion-mnist-cnn/int8.onnx
      - artifact: zoo:fashion-mnist-cnn/int8.tflite
  - name: fp32
    variants:
      - artifact: zoo:fashion-mnist-cnn/fp32.onnx
"""
FLEET = [("pi5-01", ["rpi5", "lab-a"]), ("jetson-01", ["jetson", "lab-a"]), ("pi4-01", ["rpi4", "lab-b"])]


def matrix(**replace: str) -> Campaign:
    text = MATRIX
    for old, new in replace.items():
        text = text.replace(old, new)
    return loads(text)


def test_the_matrix_has_the_expected_size():
    # 2 devices x 1 model x 2 variants x 2 scenarios x 2 repeats of performance, + accuracy once per variant
    c = matrix(**{"  - name: fp32\n    variants:\n      - artifact: zoo:fashion-mnist-cnn/fp32.onnx\n": ""})
    jobs = campaign.expand(c, FLEET)
    assert len(jobs) == 2 * 1 * 2 * (2 * 2 + 1) == 20
    assert Counter(j.device_id for j in jobs) == {"pi5-01": 10, "jetson-01": 10}
    assert Counter(j.mode for j in jobs) == {"performance": 16, "accuracy": 4}
    assert len({j.key for j in jobs}) == len(jobs)


def test_accuracy_runs_once_per_device_and_variant_on_the_first_scenario():
    jobs = campaign.expand(matrix(), FLEET)
    accuracy = [j for j in jobs if j.mode == "accuracy"]
    variants = [("cnn", "int8.onnx"), ("cnn", "int8.tflite"), ("fp32", "fp32.onnx")]
    assert Counter((j.device_id, j.model, j.variant.name) for j in accuracy) == {
        (d, m, v): 1 for d in ("pi5-01", "jetson-01") for m, v in variants
    }
    assert {(j.scenario, j.repeat) for j in accuracy} == {("SingleStream", 0)}
    later = campaign.expand(matrix(**{"[SingleStream, Offline]": "[Offline, SingleStream]"}), FLEET)
    assert {j.scenario for j in later if j.mode == "accuracy"} == {"Offline"}


def test_each_job_gets_the_right_dataset():
    jobs = campaign.expand(matrix(), FLEET)
    datasets = {(j.model, j.mode): j.dataset for j in jobs}
    assert datasets == {
        ("cnn", "performance"): "fashion-mnist",  # the model's own
        ("fp32", "performance"): "synthetic",  # the campaign's
        ("cnn", "accuracy"): "fashion-mnist:subset",  # accuracy_dataset, whatever the model says
        ("fp32", "accuracy"): "fashion-mnist:subset",
    }


def test_jobs_carry_the_campaign_settings():
    c = campaign.load(FIXTURES / "full.yaml")
    job = campaign.expand(c, [("pi5-01", [])])[0]
    assert job.key == "pi5-01/fashion-mnist-cnn/int8-tflite/SingleStream/performance/r0"
    assert (job.profile, job.engine, job.timeout_s) == ("smoke", "native", 900.0)
    assert job.overrides == c.overrides
    with pytest.raises(AttributeError):  # shared, so immutable: a job cannot change its campaign's run length
        job.overrides.min_queries = 1  # type: ignore[misc]
    assert job.variant is c.models[0].variants[0]


def test_jobs_interleave_devices_and_each_device_keeps_its_order():
    c = matrix(**{"repeats: 2": "repeats: 1", "[SingleStream, Offline]": "[SingleStream]"})
    keys = [j.key for j in campaign.expand(c, FLEET)]
    per_device = [
        "cnn/int8.onnx/SingleStream/performance/r0", "cnn/int8.onnx/SingleStream/accuracy/r0",
        "cnn/int8.tflite/SingleStream/performance/r0", "cnn/int8.tflite/SingleStream/accuracy/r0",
        "fp32/fp32.onnx/SingleStream/performance/r0", "fp32/fp32.onnx/SingleStream/accuracy/r0",
    ]
    assert keys == [f"{d}/{job}" for job in per_device for d in ("pi5-01", "jetson-01")]


def test_one_devices_order_is_models_variants_scenarios_modes_repeats():
    jobs = [j for j in campaign.expand(matrix(), FLEET) if j.device_id == "pi5-01"]
    order = [(j.model, j.variant.name, j.scenario, j.mode, j.repeat) for j in jobs]
    assert order[:6] == [
        ("cnn", "int8.onnx", "SingleStream", "performance", 0),
        ("cnn", "int8.onnx", "SingleStream", "performance", 1),
        ("cnn", "int8.onnx", "SingleStream", "accuracy", 0),
        ("cnn", "int8.onnx", "Offline", "performance", 0),
        ("cnn", "int8.onnx", "Offline", "performance", 1),
        ("cnn", "int8.tflite", "SingleStream", "performance", 0),
    ]
    assert order == sorted(order, key=lambda o: (
        ["cnn", "fp32"].index(o[0]), ["int8.onnx", "int8.tflite", "fp32.onnx"].index(o[1]),
        ["SingleStream", "Offline"].index(o[2]), ["performance", "accuracy"].index(o[3]), o[4]))


@pytest.mark.parametrize(("devices", "chosen"), [
    ("devices: all", ["pi5-01", "jetson-01", "pi4-01"]),
    ("devices:\n  tags: [lab-a]", ["pi5-01", "jetson-01"]),
    ("devices:\n  tags: [rpi4, jetson]", ["jetson-01", "pi4-01"]),  # any listed tag; the fleet's order
    ("devices:\n  ids: [pi4-01]", ["pi4-01"]),
    ("devices:\n  ids: [pi4-01]\n  tags: [rpi5]", ["pi5-01", "pi4-01"]),  # id OR tag
    # an id the controller has not heard from yet is kept, after the known ones, so it can be waited for
    ("devices:\n  ids: [pi9-99, pi5-01]", ["pi5-01", "pi9-99"]),
])
def test_devices_are_selected_by_all_ids_or_tags(devices, chosen):
    c = matrix(**{"devices:\n  tags: [lab-a]": devices})
    assert campaign.select_devices(c, FLEET) == chosen
    jobs = campaign.expand(c, FLEET)
    assert [j.device_id for j in jobs[: len(chosen)]] == chosen
    assert len(jobs) == len(chosen) * len(campaign.device_jobs(c, chosen[0]))


def test_the_selector_matches_by_id_or_any_tag():
    sel = DeviceSelector(all=False, ids=("a",), tags=("x", "y"))
    assert sel.matches("a", [])
    assert sel.matches("b", ["z", "y"])
    assert not sel.matches("b", ["z"])
    assert DeviceSelector(all=True).matches("anything", [])
    assert not DeviceSelector(all=False).matches("a", ["x"])


def test_no_matching_device_is_an_error_at_the_devices_key():
    c = matrix(**{"[lab-a]": "[lab-z]"})
    with pytest.raises(CampaignError) as info:
        campaign.expand(c, FLEET)
    assert str(info.value) == "camp.yaml:8: devices: no device matches (tags lab-z); known devices: pi5-01, jetson-01, pi4-01"


def test_no_device_at_all_is_an_error_even_without_a_devices_key():
    c = loads("# no devices key: all devices\n" + minimal())
    with pytest.raises(CampaignError) as info:
        campaign.expand(c, [])
    assert str(info.value) == "camp.yaml:2: devices: no device matches (all); known devices: none yet"


def test_a_variant_stored_before_the_contract_keeps_its_options_on_resume():
    """Campaign rows written by the previous version hold the options flat; resuming one must not drop them."""
    old = {"name": "v", "artifact": "zoo:fashion-mnist-cnn/int8.onnx", "runtime": "onnxruntime", "threads": 2,
           "providers": ["CPUExecutionProvider"], "provider_options": {}, "optimization": "basic", "xnnpack": None,
           "batch_size": 4, "shapes": {"image": [1, 1, 28, 28]}}
    v = Variant.from_dict(old)
    assert v.options == RuntimeOptions(threads=2, providers=("CPUExecutionProvider",), optimization_level="basic",
                                       shapes={"image": (1, 1, 28, 28)})
    assert v.batch_size == 4 and Variant.from_dict(v.to_dict()) == v
