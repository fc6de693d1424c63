"""The datacenter baseline on a host without a GPU: real campaigns, the agent's real engine, a real store.

This machine has plain onnxruntime (no CUDA/TensorRT provider) and no NVIDIA driver, so what can be
run for real is the path such a host takes: the CPU run, labelled ``host-cpu`` with its reason,
TFLite variants replaced by their ONNX siblings, energy from the host's own source. The GPU side
is checked where it can be without a GPU: NVML against the fake ``libnvidia-ml`` of
test_power_sources (the ctypes boundary), and the provider choice from ORT's provider list.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from agent import zoo
from agent.contract import Result
from agent.errors import SettingsError
from controller import baseline
from controller.baseline import NO_GPU_REASON, BaselineError
from controller.fleet import campaign as campaign_file
from controller.store.database import Store
from devices import power, probe
from devices.power.base import PowerSourceError
from tests.cli_harness import edgeperf
from tests.test_power_sources import FakeGpu, FakeNvmlLib, install_nvml  # noqa: F401  (a fixture, asked for by name)
from tests.test_zoo import reproduces

TFLITE, INT8, FP32 = "zoo:fashion-mnist-cnn/int8.tflite", "zoo:fashion-mnist-cnn/int8.onnx", "zoo:fashion-mnist-cnn/fp32.onnx"
CNN = "fashion-mnist-cnn"


def write_campaign(directory: Path, variants: str, modes: str = "[performance, accuracy]", name: str = "fmnist") -> Path:
    path = directory / f"{name}.yaml"
    path.write_text(
        f"name: {name}\nprofile: smoke\nscenarios: [SingleStream]\nmodes: {modes}\n"
        "accuracy_dataset: fashion-mnist:subset\noverrides: {min_duration_s: 0.2}\n"
        f"models:\n  - name: {CNN}\n    variants:\n{variants}"
    )
    return path


ZOO_VARIANTS = (
    f"      - {{artifact: '{TFLITE}', name: int8-tflite, runtime: litert, threads: 2, xnnpack: false}}\n"
    f"      - {{artifact: '{INT8}', provider: [CUDAExecutionProvider, CPUExecutionProvider]}}\n"
    f"      - {{artifact: '{FP32}'}}\n"
)


def sha(ref: str) -> str:
    return zoo.resolve(ref).facts["sha256"]


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    """The zoo campaign's baseline on this GPU-less host, run once for the tests that read it."""
    tmp = tmp_path_factory.mktemp("baseline")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("XDG_DATA_HOME", str(tmp / "xdg"))  # LoadGen logs stay out of the user's data directory
        spec = campaign_file.load(write_campaign(tmp, ZOO_VARIANTS))
        store = Store(tmp / "controller.db")
        messages: list[str] = []
        campaign_id = baseline.run_baseline(spec, store, progress=messages.append, idle_s=0.2)
        yield store, campaign_id, messages
        store.close()


def by_variant(results: list[Result]) -> dict[tuple[str, str], Result]:
    return {(r.model.name.split("/")[1], r.mode): r for r in results}


def test_cpu_baseline_runs_every_job_as_a_labelled_host_cpu_campaign(cpu_run):
    store, campaign_id, messages = cpu_run
    row = store.campaign(campaign_id)
    assert (row["name"], row["kind"], row["state"]) == ("fmnist-baseline", "baseline", "finished")
    assert store.campaign("fmnist-baseline")["id"] == campaign_id
    jobs = store.jobs(campaign_id)
    assert len(jobs) == 6 and {j.state for j in jobs} == {"done"}
    assert all(j.device_id.startswith("host-cpu:") and j.attempts == 1 for j in jobs)

    results = store.results(campaign_id)
    assert len(results) == 6
    for result in results:
        assert result.device.id == jobs[0].device_id
        assert result.baseline["kind"] == "host-cpu" and result.baseline["reason"] == NO_GPU_REASON
        assert result.baseline["providers"] == ["CPUExecutionProvider"]
        assert (result.runtime.name, result.runtime.accelerator) == ("onnxruntime", "CPUExecutionProvider")
        assert result.valid, result.invalid_reasons
        # the job key pairs the row with the edge campaign's: only the device part differs
        assert result.job.key.split("/")[1:] == [CNN, result.model.name.split("/")[1], "SingleStream", result.mode, "r0"]

    # said before anything ran, not only written into the results
    first_job = next(i for i, m in enumerate(messages) if m.startswith("[1/6]"))
    assert any(NO_GPU_REASON in m and "host-cpu" in m for m in messages[:first_job])
    assert sum(": running " in m for m in messages) == 6 and messages[-1].endswith("6 done, 0 failed")


def test_the_tflite_variant_ran_its_onnx_sibling_and_the_result_says_so(cpu_run):
    store, campaign_id, _ = cpu_run
    results = by_variant(store.results(campaign_id))
    for mode in ("performance", "accuracy"):
        tfl = results["int8-tflite", mode]
        assert tfl.model.name == f"{CNN}/int8-tflite"  # the campaign's name, so rows pair up
        assert (tfl.model.format, tfl.model.sha256) == ("onnx", sha(INT8))  # the bytes that ran
        assert tfl.model.path.endswith("int8.onnx") and tfl.model.precision == "int8"
        assert tfl.baseline["substituted_for"] == TFLITE and tfl.baseline["substituted_by"] == "zoo manifest"
        assert any("runs int8.onnx" in n and "int8.tflite" in n for n in tfl.baseline["notes"])
        for other in ("int8.onnx", "fp32.onnx"):
            assert "substituted_for" not in results[other, mode].baseline
            assert not any("runs " in n for n in results[other, mode].baseline["notes"])
    # the same file gives the same answers
    tfl_acc, onnx_acc = results["int8-tflite", "accuracy"].kpis.accuracy, results["int8.onnx", "accuracy"].kpis.accuracy
    assert tfl_acc.n == 1000 and tfl_acc.top1 == onnx_acc.top1
    assert reproduces(zoo.resolve(INT8), onnx_acc.top1)  # within the band any CPU holds (int8 kernels vary by ISA)
    assert reproduces(zoo.resolve(FP32), results["fp32.onnx", "accuracy"].kpis.accuracy.top1)
    # the variant's own providers were for its edge device, and the result says they were replaced
    assert any("CUDAExecutionProvider" in n and "replaced" in n for n in results["int8.onnx", "performance"].baseline["notes"])
    # its threads still apply
    assert results["int8-tflite", "performance"].runtime.threads == 2


def test_energy_is_the_hosts_and_labelled(cpu_run):
    store, campaign_id, _ = cpu_run
    estimated_here = not power.availability("rapl").available and not power.availability("battery").available
    for result in store.results(campaign_id):
        energy = result.kpis.energy
        assert energy is not None and energy.source != "nvml"
        assert energy.source == result.baseline["power"].split(":")[0]
        assert energy.measured is (energy.source != "estimate")
        assert energy.energy_per_inference_mj > 0
        if estimated_here:  # this machine: no meter, so the estimate, and it says so
            assert energy.source == "estimate" and energy.measured is False
            assert any(w.startswith("estimated, not measured") for w in energy.warnings)
            assert energy.source_detail["profile"] == "generic-x86"


def test_a_user_mapping_overrides_the_zoo_manifest(tmp_path):
    spec = campaign_file.load(write_campaign(tmp_path, f"      - {{artifact: '{TFLITE}', name: int8-tflite}}\n", "[accuracy]"))
    store = Store(tmp_path / "c.db")
    fp32 = str(zoo.resolve(FP32).path)
    campaign_id = baseline.run_baseline(spec, store, mapping={"int8-tflite": fp32}, power=None)
    (result,) = store.results(campaign_id)
    assert (result.model.sha256, result.model.precision) == (sha(FP32), "fp32")
    assert result.baseline["substituted_for"] == TFLITE and result.baseline["substituted_by"] == "mapping"
    assert reproduces(zoo.resolve(FP32), result.kpis.accuracy.top1)
    assert result.kpis.energy is None and result.baseline["power"] is None  # power=None: no energy at all

    # the variant may be named by its name, model/name, its artifact or that file's name
    for key in ("int8-tflite", f"{CNN}/int8-tflite", TFLITE, "int8.tflite"):
        planned = baseline.plan_models(spec, {key: fp32})[f"{CNN}/int8-tflite"]
        assert (planned.path, planned.substituted_by) == (Path(fp32), "mapping")


def test_a_variant_without_an_onnx_model_is_refused_before_anything_is_stored(tmp_path):
    own = tmp_path / "mine.tflite"
    shutil.copy(zoo.resolve(TFLITE).path, own)  # the same bytes as the zoo's, but no manifest speaks for it
    variants = f"      - {{artifact: mine.tflite}}\n      - {{artifact: '{INT8}'}}\n"
    spec = campaign_file.load(write_campaign(tmp_path, variants))
    store = Store(tmp_path / "c.db")
    with pytest.raises(BaselineError) as raised:
        baseline.run_baseline(spec, store)
    message = str(raised.value)
    assert "\n" not in message and raised.value.exit_code == 2
    assert f"{CNN}/mine.tflite (mine.tflite, tflite)" in message and "--map NAME=model.onnx" in message
    assert store.campaigns() == [] and store.result_count() == 0

    shutil.copy(zoo.resolve(INT8).path, tmp_path / "mine.onnx")  # an ONNX file beside it is suggested, not assumed
    with pytest.raises(BaselineError, match=r"mine\.onnx is next to it"):
        baseline.plan_models(spec)
    planned = baseline.plan_models(spec, {"mine.tflite": str(tmp_path / "mine.onnx")})
    assert planned[f"{CNN}/mine.tflite"].substituted_for == str(own)

    with pytest.raises(BaselineError, match=r"--map nope: names no variant .* variants: fashion-mnist-cnn/mine.tflite"):
        baseline.plan_models(spec, {"mine.tflite": str(tmp_path / "mine.onnx"), "nope": str(tmp_path / "mine.onnx")})
    with pytest.raises(BaselineError, match=r"mine.tflite is a tflite model; the baseline runs ONNX models"):
        baseline.plan_models(spec, {"mine.tflite": str(own)})
    assert store.campaigns() == []


def test_a_provider_this_onnxruntime_lacks_is_one_line_before_the_campaign_is_stored(tmp_path):
    spec = campaign_file.load(write_campaign(tmp_path, f"      - {{artifact: '{INT8}'}}\n"))
    store = Store(tmp_path / "c.db")
    with pytest.raises(SettingsError) as raised:
        baseline.run_baseline(spec, store, providers=["CUDAExecutionProvider"])
    message = str(raised.value)
    assert message.startswith("ONNX Runtime here has no CUDAExecutionProvider; available: ") and "\n" not in message
    assert "CPUExecutionProvider" in message and "onnxruntime-gpu" in message
    assert store.campaigns() == []


def test_provider_choice_and_labels():
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert baseline.choose_providers(None, everything) == (tuple(everything), "gpu", None)
    assert baseline.choose_providers(None, everything[1:]) == (tuple(everything[1:]), "gpu", None)
    assert baseline.choose_providers(None, ["AzureExecutionProvider", "CPUExecutionProvider"]) == (
        ("CPUExecutionProvider",), "host-cpu", NO_GPU_REASON)
    _, kind, reason = baseline.choose_providers(["CPUExecutionProvider"], everything)
    assert kind == "host-cpu" and reason.startswith("CPUExecutionProvider asked for explicitly")
    assert baseline.choose_providers(["OpenVINOExecutionProvider"], ["OpenVINOExecutionProvider"])[1] == "host"

    options = baseline.provider_options_for(everything, Path("/cache/trt"))
    assert options["TensorrtExecutionProvider"]["trt_fp16_enable"] == "False"
    assert options["TensorrtExecutionProvider"]["trt_engine_cache_path"] == "/cache/trt"
    assert options["CUDAExecutionProvider"] == {"use_tf32": "0"} and "CPUExecutionProvider" not in options
    assert baseline.host_device_id("gpu", "dgx/01+a#b") == "host-gpu:dgx-01-a-b"
    assert len(baseline.host_device_id("host-cpu", "n" * 100)) == 64
    assert baseline.parse_mapping(["int8-tflite=exports/m.onnx"]) == {"int8-tflite": "exports/m.onnx"}
    with pytest.raises(BaselineError, match=r"write NAME=path/to/model\.onnx"):
        baseline.parse_mapping(["int8-tflite"])


def test_a_failing_job_is_stored_as_failed_with_its_reason_and_the_run_goes_on(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    (tmp_path / "corrupt.onnx").write_bytes(b"not a protobuf at all")
    # loads (the batch is symbolic), then fails in the first Run, as a model TensorRT cannot execute would
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, ["batch", 1, 28, 28])
    out = helper.make_tensor_value_info("logits", TensorProto.FLOAT, [3, 5])
    shape = helper.make_tensor("shape", TensorProto.INT64, [2], [3, 5])
    graph = helper.make_graph([helper.make_node("Reshape", ["image", "shape"], ["logits"])], "g", [image], [out], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.save(model, str(tmp_path / "reshape.onnx"))
    variants = f"      - {{artifact: corrupt.onnx}}\n      - {{artifact: reshape.onnx}}\n      - {{artifact: '{INT8}'}}\n"
    spec = campaign_file.load(write_campaign(tmp_path, variants, "[accuracy]"))
    store = Store(tmp_path / "c.db")
    messages: list[str] = []
    campaign_id = baseline.run_baseline(spec, store, power=None, progress=messages.append)

    corrupt, reshape, good = store.jobs(campaign_id)
    assert store.campaign(campaign_id)["state"] == "finished_with_failures" and good.state == "done"
    assert corrupt.state == "failed" and corrupt.attempts == 1  # the user's to fix: not retried
    assert "corrupt.onnx is not a loadable ONNX model" in corrupt.error
    # The model fails at run time: the same inputs fail the same way again, so it is not retried.
    assert reshape.state == "failed" and reshape.attempts == 1, reshape.error
    assert reshape.error.startswith(f"{baseline.host_device_id('host-cpu')}: ") and "\n" not in reshape.error
    assert "reshape" in reshape.error.lower() and "--input" in reshape.error
    assert [a["state"] for a in store.attempts(reshape.id)] == ["failed"]
    assert store.result_count(campaign_id) == 1
    assert not any("reshape.onnx" in m and m.endswith("retrying") for m in messages)
    assert messages[-1].endswith("1 done, 2 failed")


def test_baseline_run_and_resume_with_a_failed_job_exit_1_naming_it(tmp_path):
    (tmp_path / "corrupt.onnx").write_bytes(b"not a protobuf at all")
    spec = write_campaign(tmp_path, f"      - {{artifact: corrupt.onnx}}\n      - {{artifact: '{INT8}'}}\n", "[accuracy]")
    db = tmp_path / "c.db"
    run = edgeperf("baseline", "run", str(spec), "--db", str(db), "--power", "none")
    assert run.returncode == 1, run.stderr
    assert "Traceback" not in run.stderr and "(finished_with_failures)" in run.stdout and "VALID" in run.stdout
    (line,) = [line for line in run.stderr.splitlines() if line.startswith("failed ")]
    host = baseline.host_device_id("host-cpu")
    assert line.startswith(f"failed {host}/{CNN}/corrupt.onnx/") and f" on {host} after 1 attempt(s): " in line, line
    assert "corrupt.onnx is not a loadable ONNX model" in line
    resumed = edgeperf("baseline", "resume", "fmnist-baseline", "--db", str(db), "--json")  # failed jobs are not re-run
    assert resumed.returncode == 1, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["state"], summary["jobs"], summary["results"]) == ("finished_with_failures", {"done": 1, "failed": 1}, 1)


def test_an_interrupted_baseline_resumes_without_running_anything_twice(tmp_path):
    variants = f"      - {{artifact: '{TFLITE}'}}\n      - {{artifact: '{INT8}'}}\n      - {{artifact: '{FP32}'}}\n"
    spec = campaign_file.load(write_campaign(tmp_path, variants, "[accuracy]"))
    store = Store(tmp_path / "c.db")

    def ctrl_c_in_the_second_job(message: str) -> None:
        if message.startswith("[2/3]") and ": running " in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        baseline.run_baseline(spec, store, power=None, progress=ctrl_c_in_the_second_job)
    (row,) = store.campaigns()
    assert (row["kind"], row["state"]) == ("baseline", "interrupted")
    first, second, third = store.jobs(row["id"])
    assert (first.state, second.state, third.state) == ("done", "pending", "pending")
    assert [(a["state"], a["reason"]) for a in store.attempts(second.id)] == [("cancelled", "interrupted (Ctrl-C)")]
    # a controller killed mid-job leaves its attempt running: resume counts it lost and runs the job again
    store.mark_running(store.start_attempt(third))

    messages: list[str] = []
    assert baseline.resume_baseline(store, "fmnist-baseline", progress=messages.append) == row["id"]
    first, second, third = store.jobs(row["id"])
    assert store.campaign(row["id"])["state"] == "finished" and {first.state, second.state, third.state} == {"done"}
    assert (first.attempts, second.attempts, third.attempts) == (1, 2, 2)
    assert [a["state"] for a in store.attempts(third.id)] == ["lost", "finished"]
    assert store.result_count(row["id"]) == 3 and len(store.results(row["id"])) == 3
    assert any(NO_GPU_REASON in m for m in messages)

    with pytest.raises(BaselineError, match="is a fleet campaign, not a baseline"):
        baseline.resume_baseline(store, store.create_campaign("edge", "x.yaml", {}, []))


def test_cancel_requested_mid_baseline_stops_it_between_jobs(tmp_path):
    variants = f"      - {{artifact: '{INT8}'}}\n      - {{artifact: '{FP32}'}}\n"
    spec = campaign_file.load(write_campaign(tmp_path, variants, "[accuracy]"))
    store = Store(tmp_path / "c.db")

    def cancel_after_the_first(message: str) -> None:
        if message.startswith("[1/2]") and "top-1" in message:  # as `edgeperf campaign cancel` would, from elsewhere
            store.request_cancel(store.campaigns()[0]["id"])

    campaign_id = baseline.run_baseline(spec, store, power=None, progress=cancel_after_the_first)
    assert store.campaign(campaign_id)["state"] == "cancelled"
    assert [j.state for j in store.jobs(campaign_id)] == ["done", "cancelled"]


# --- NVIDIA hosts, through the fake libnvidia-ml ------------------------------------------------


def test_a_cpu_baseline_on_an_nvidia_host_neither_meters_the_gpu_nor_uses_its_figures(request, tmp_path):
    request.getfixturevalue("install_nvml")(FakeNvmlLib([FakeGpu(name="NVIDIA H200")]))
    spec = campaign_file.load(write_campaign(tmp_path, f"      - {{artifact: '{TFLITE}'}}\n", "[accuracy]"))
    store = Store(tmp_path / "c.db")
    campaign_id = baseline.run_baseline(spec, store, idle_s=0.1)
    (result,) = store.results(campaign_id)
    assert [g["name"] for g in result.device.facts["gpus"]] == ["NVIDIA H200"]  # the host has one ...
    assert result.baseline["kind"] == "host-cpu" and result.baseline["reason"] == NO_GPU_REASON  # ... ORT cannot use it
    energy = result.kpis.energy
    assert energy.source != "nvml"
    if energy.source == "estimate":
        assert result.baseline["power"] == "estimate:profile=generic-x86"  # the CPU's figures, not the H200's 700 W
        assert energy.source_detail["profile"] == "generic-x86" and energy.measured is False


def test_gpu_energy_is_the_boards_through_nvml_on_the_gpu_cuda_uses(request, monkeypatch):
    first, second = FakeGpu(name="NVIDIA H100 80GB HBM3"), FakeGpu(name="NVIDIA H200")
    first.uuid, second.uuid = "GPU-aaaa1111-0000-0000-0000-000000000000", "GPU-bbbb2222-0000-0000-0000-000000000000"
    lib = request.getfixturevalue("install_nvml")(FakeNvmlLib([first, second]))
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    assert baseline.nvml_index_for(0) == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1,0")
    assert baseline.nvml_index_for(0) == 1 and baseline.nvml_index_for(1) == 0
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-bbbb")  # a UUID prefix, as CUDA accepts
    assert baseline.nvml_index_for(0) == 1
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-ffff")
    with pytest.raises(SettingsError, match="names no GPU"):
        baseline.nvml_index_for(0)

    spec, note = baseline.choose_power("auto", "gpu", probe.collect(), 1)
    assert spec == "nvml:index=1" and "board power" in note
    monitor = power.open_source(spec)
    assert monitor.info.rail == "GPU 1 board (NVIDIA H200)" and monitor.info.measured
    monitor.close()
    assert baseline.choose_power("nvml:1", "gpu", {}, 1) == ("nvml:1", "nvml:1, as asked")
    with pytest.raises(PowerSourceError, match=r"^power 'nvml:index=2' cannot be used on this host: nvml: no GPU index 2"):
        baseline.choose_power("nvml:index=2", "gpu", {}, 0)
    assert baseline.choose_power(None, "gpu", {}, 0)[0] is None
    assert lib.refcount == 0  # every probe closed what it opened

