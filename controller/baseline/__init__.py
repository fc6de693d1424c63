"""The datacenter baseline: a campaign's jobs on this host's NVIDIA GPU (or, labelled, its CPU), in process.

Edge and datacenter numbers must come from the same measurement and scheduling code, so the
baseline has neither a runner nor a loop of its own: the fleet's scheduler
(``controller.fleet.scheduler``) dispatches its jobs — the very ``contract.Job`` a device would
get — to a local executor (``executor.py``) that builds the very ``BenchRequest`` an agent would
(``agent.jobs.request_from_job``) and runs the agent's engine (``agent.bench.run``) inside the
controller's process. Results go into the store like any device's, under a campaign of kind
``baseline`` named ``<campaign>-baseline``: the user's own campaign name keeps finding their edge
campaign, and ``compare`` pairs the two by job key (model / variant / scenario / mode).

What runs, and how it is labelled — never silently:

- **Providers.** By default ONNX Runtime's ``TensorrtExecutionProvider`` and
  ``CUDAExecutionProvider`` (those this onnxruntime has, in that order, then CPU for what they
  reject). The device is ``host-gpu:<hostname>`` and every result carries ``baseline.kind = "gpu"``
  with the providers and the GPU's NVML facts. Without either provider (plain ``onnxruntime``, no
  ``onnxruntime-gpu``) the jobs run on ``CPUExecutionProvider`` as ``host-cpu:<hostname>`` with
  ``baseline.kind = "host-cpu"`` and the reason, and the progress callback says so before anything
  runs. Providers given explicitly are checked against this onnxruntime before the campaign is
  stored: a missing one is one ``SettingsError`` line, never a half-stored campaign or a silent CPU
  run. A variant's own provider list and options (meant for its edge device) are replaced by the
  baseline's, and each such result says so in ``baseline.notes``.
- **Precision.** The baseline runs the model's own precision: TensorRT with ``trt_fp16_enable``
  off (an fp16 engine would make an fp32 model's baseline faster and less accurate than the
  model), the CUDA provider with ``use_tf32=0``. INT8 QDQ models are handed over as they are (no
  calibration table, no ``trt_int8_enable``). TensorRT engines are cached (``trt_cache_dir``,
  default ``$XDG_CACHE_HOME/edgeperf/tensorrt``), so only a model's first job on a host pays the
  engine build — inside its ``load_time_ms``.
- **Models.** ONNX Runtime cannot load TFLite or Core ML, so such a variant runs an ONNX file of
  the same trained model: the user's mapping (``{variant name | model/variant | artifact | artifact
  file name: model.onnx}``) or the zoo manifest's ``onnx_sibling``. The result's ``model`` block
  describes the file that actually ran (its sha256, format ``onnx``, precision) and
  ``baseline.substituted_for`` names the artifact it stands in for; ``model.name`` stays the
  campaign's ``<model>/<variant>`` so the rows pair up. A variant with neither is refused, naming
  the fix, before anything is stored or run.
- **Energy.** ``power="auto"``: NVML on the GPU the run uses (the board's power, not the host's);
  for a CPU run the normal order of this host's device profile without NVML (a CPU run's energy is
  not the GPU's) — RAPL on x86, else the estimate, labelled estimated by the energy block itself,
  with the host's own CPU profile, never a GPU's figures. Any other spec is opened once up front,
  so a missing meter is one clear error. ``None``: no energy block.

Jobs run one at a time in the campaign's order with its cooldown, as the scheduler runs a device's. A job that fails (a model
TensorRT cannot build, say) is stored as a failed attempt with its reason and the run goes on:
user errors (``EdgeperfError``) are final, as on an agent; anything else is retried up to the
campaign's ``retries``. Being in process has two costs, recorded in every result's notes:
``memory.peak_rss_mb`` is the controller process's high-water mark so far, not one job's, and the
campaign's ``timeout_s`` cannot be enforced. Ctrl-C re-queues the running job and leaves the
campaign ``interrupted``; ``resume_baseline`` finishes it on the same host.
"""

from controller.baseline.plan import (
    CPU,
    CUDA,
    GPU_PROVIDERS,
    IN_PROCESS_NOTE,
    NO_GPU_REASON,
    TENSORRT,
    BaselineError,
    BaselinePlan,
    PlannedModel,
    announce,
    baseline_name,
    choose_power,
    choose_providers,
    host_device_id,
    nvml_index_for,
    parse_mapping,
    plan_baseline,
    plan_models,
    provider_options_for,
)
from controller.baseline.runner import resume_baseline, run_baseline

__all__ = [
    "CPU", "CUDA", "GPU_PROVIDERS", "IN_PROCESS_NOTE", "NO_GPU_REASON", "TENSORRT", "BaselineError", "BaselinePlan",
    "PlannedModel", "announce", "baseline_name", "choose_power", "choose_providers", "host_device_id", "nvml_index_for",
    "parse_mapping", "plan_baseline", "plan_models", "provider_options_for", "resume_baseline", "run_baseline",
]
