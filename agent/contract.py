"""The contract between agent and controller: every MQTT message and the result document, typed.

One module, imported by both sides, defines what may cross the wire (docs/protocol.md is its
reference). Both edges decode through ``decode``: types, ranges and lengths are checked here —
device ids of 1-64 characters from a fixed alphabet, finite numbers, bounded lists, strings and
nesting — so the code behind it reads attributes (``status.state``, ``result.kpis.latency_ms.p90``)
and never meets a ``null`` where a list belongs or ``"no"`` where a bool does. Anything invalid
raises ``ProtocolError`` with the path of the first bad field; receive loops count it, log it
(rate-limited) and drop it.

msgspec, not pydantic: real results decode through this typed schema in 0.4-0.7× the time of a
bare ``json.loads`` (pydantic v2 models of the same schema: 0.7-1.1×), and importing msgspec
costs a bare interpreter 2.5 MB (pydantic: 4.9 MB) — ``benchmarks/contract.py`` measures both.

Job options are defined once, here: ``RuntimeOptions`` (how the runtime is set up) and
``RunLength`` (how long a run goes) are the campaign variant's and overrides' types, the job
payload's, and what the agent's bench request is built from. A field added to one of them is
understood by the campaign file, travels in the job, and reaches the runtime — one edit, plus
its line in docs/campaigns.md.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import time
from typing import Annotated, Any, ClassVar, Literal

import msgspec
from msgspec import Meta, Struct, field

from agent import fleet_key

PROTOCOL_VERSION = 1
RESULT_SCHEMA = "edgeperf.result/1"
DEFAULT_PREFIX = "edgeperf/v1"
MAX_PAYLOAD_BYTES = 1 << 20  # 1 MiB: a result with histogram, trace and confusion matrix is ~20-80 KiB
STALE_AFTER_HEARTBEATS = 3  # a device not heard for this many of its heartbeat periods is stale
MAX_DEPTH = 16  # nesting of free-form values (device facts, runtime details, settings, power-source details, baseline)

# topic kind -> (QoS, retained, direction)
TOPICS = {
    "status": (1, True, "agent"),
    "info": (1, True, "agent"),
    "jobs": (1, False, "controller"),
    "events": (1, False, "agent"),
    "results": (1, False, "agent"),
    "acks": (1, False, "controller"),
    "telemetry": (0, False, "agent"),
}
DEVICE_ID_ALPHABET = "A-Z a-z 0-9 . _ : -"
_DEVICE_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_TAG = re.compile(r"[A-Za-z0-9._:=-]{1,64}")
MAX_TAGS = 64
# A per-job artifact token (RFC 6750 b64token): it goes into an HTTP header, so no spaces or line breaks.
ARTIFACT_TOKEN = re.compile(r"[A-Za-z0-9._~+/-]{16,256}={0,2}")

# --- field types: every bound in one place ------------------------------------------------------

DeviceId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="1-64 of [A-Za-z0-9._:-]")]
ControllerId = Annotated[str, Meta(pattern=r"^[A-Za-z0-9._:-]{1,64}$", description="the controller that owns a job")]
SessionId = Annotated[str, Meta(pattern=r"^[0-9a-f]{16}$", description="one run of an agent process: 16 hex digits")]
# names files on the agent: 1-64 of [A-Za-z0-9._-], not only dots
RunId = Annotated[str, Meta(max_length=64, pattern=r"^[A-Za-z0-9._-]*[A-Za-z0-9_-][A-Za-z0-9._-]*$")]
Tag = Annotated[str, Meta(pattern=f"^{_TAG.pattern}$")]
Name = Annotated[str, Meta(min_length=1, max_length=256)]
Text = Annotated[str, Meta(max_length=4096)]
Sha256 = Annotated[str, Meta(pattern=r"^[0-9a-f]{64}$")]
Token = Annotated[str, Meta(pattern=f"^{ARTIFACT_TOKEN.pattern}$")]
Finite = Annotated[float, Meta(ge=-1e300, le=1e300)]  # JSON has no NaN; 1e400 is refused by the decoder
NonNegative = Annotated[float, Meta(ge=0, le=1e300)]
Positive = Annotated[float, Meta(gt=0, le=1e300)]
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
Celsius = Annotated[float, Meta(ge=-273.15, le=1e4)]
Fraction = Annotated[float, Meta(ge=0, le=1)]
Seq = Annotated[int, Meta(ge=0, le=2**53)]
Seed = Annotated[int, Meta(ge=0)]  # LoadGen's uint64 seeds: msgspec bounds stop at int64, so the top is checked by the struct
Scalar = Annotated[str, Meta(max_length=1024)] | int | float | bool | None
CorruptionName = Annotated[str, Meta(pattern=r"^[a-z_]{1,32}(:[1-5](,[1-5]){0,4})?$")]  # agent.corruptions
GroupName = Annotated[str, Meta(max_length=64)]
PercentPoints = Annotated[float, Meta(ge=-100, le=100)]
Free = Any  # a free-form JSON value; its depth is checked after decoding (``_check_depth``)


class ProtocolError(ValueError):
    """A message that breaks the contract; logged and dropped, never raised past a receive loop."""


def _check_depth(value: Any, limit: int = MAX_DEPTH, where: str = "$") -> None:
    stack = [(value, 0)]
    while stack:
        node, depth = stack.pop()
        if depth > limit:
            raise ValueError(f"{where} is nested deeper than {limit} levels")
        if isinstance(node, dict):
            stack.extend((v, depth + 1) for v in node.values())
        elif isinstance(node, list):
            stack.extend((v, depth + 1) for v in node)


class _Body(Struct, frozen=True, forbid_unknown_fields=False, omit_defaults=False):
    """Base of every message body. Free-form fields named in ``_free`` have their depth checked."""

    _free: ClassVar[tuple[str, ...]] = ()

    def __post_init__(self) -> None:
        for name in self._free:
            _check_depth(getattr(self, name), where=name)


def check_device_id(device_id: str) -> str:
    """Device ids become topic levels and file names: 1-64 characters of [A-Za-z0-9._:-]."""
    if not isinstance(device_id, str) or not _DEVICE_ID.fullmatch(device_id):
        raise ValueError(f"device id {str(device_id)[:80]!r} must be 1-64 characters of {DEVICE_ID_ALPHABET}")
    return device_id


def check_tags(tags: tuple[str, ...]) -> tuple[str, ...]:
    """Tags travel in status and info: at most 64, each 1-64 characters of [A-Za-z0-9._:=-]."""
    bad = [t for t in tags if not _TAG.fullmatch(t)]
    if bad or len(tags) > MAX_TAGS:
        problem = f"tag {bad[0][:80]!r}" if bad else f"{len(tags)} tags"
        raise ValueError(f"{problem}: an agent has at most {MAX_TAGS} tags of 1-64 characters of A-Z a-z 0-9 . _ : = -")
    return tags


# --- job options: defined once ------------------------------------------------------------------

Shape = Annotated[tuple[Annotated[int, Meta(ge=1, le=1 << 31)], ...], Meta(min_length=1, max_length=16)]


class RuntimeOptions(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """How a runtime session is set up. A campaign variant, the job payload and ``edgeperf-agent
    bench``'s flags all fill this one struct; each runtime reads the fields that apply to it."""

    threads: Annotated[int, Meta(ge=1, le=1024)] | None = None  # None: the runtime's own default
    providers: Annotated[tuple[Name, ...], Meta(max_length=16)] = ()  # ORT execution providers, priority order
    provider_options: Annotated[dict[Name, Annotated[dict[Name, Text], Meta(max_length=64)]], Meta(max_length=16)] = {}
    optimization_level: Literal["disable", "basic", "extended", "all"] = field(default="all", name="optimization")
    xnnpack: bool = True  # LiteRT: the default XNNPACK delegate on/off
    delegates: Annotated[tuple[Text, ...], Meta(max_length=8)] = ()  # LiteRT external delegate libraries
    compute_units: Literal["all", "cpu_only", "cpu_and_gpu", "cpu_and_ne"] = "all"  # Core ML
    shapes: Annotated[dict[Name, Shape], Meta(max_length=64)] = {}  # dynamic-dimension overrides
    # what an input is fed (agent.datasets.input_values): "16000", "-1:1", "values.npy", "words.txt"
    inputs: Annotated[dict[Name, Annotated[str, Meta(min_length=1, max_length=4096)]], Meta(max_length=64)] = {}

    # which runtime reads each option that only one does: setting it for another is a mistake, not a no-op
    RUNTIME_ONLY: ClassVar[dict[str, str]] = {
        "providers": "onnxruntime", "provider_options": "onnxruntime", "optimization_level": "onnxruntime",
        "xnnpack": "litert", "delegates": "litert", "compute_units": "coreml",
    }


# Bounds of a run (range checks on job options; docs/engines.md "Bad values"). Neither engine issues
# more than ~16,000 queries/s from Python, so 100,000/s is already unreachable; above it LoadGen's
# and the native engine's pre-generated arrival schedules alone exhaust memory (1e7/s: std::bad_alloc).
MAX_TARGET_QPS = 100_000.0
MAX_RUN_S = 7 * 86400  # a week: the longest job timeout
# LoadGen pre-generates every query it may issue, and both engines hold a Server run's whole arrival
# schedule (LoadGen ~300 B per query; 1e10 min_queries: std::bad_alloc): min_queries is bounded here,
# a Server run's target_qps × min_duration where the two meet (``agent.jobs.settings_for``)
MAX_SCHEDULED_QUERIES = 10_000_000


def check_server_schedule(target_qps: float, min_duration_s: float, max_queries: int = 0) -> None:
    """Refuse a Server rate whose arrival schedule would not fit in memory; the duration may be the
    profile's, so this runs where the two meet (``agent.jobs.settings_for``, the campaign loader)."""
    scheduled = target_qps * min_duration_s
    if max_queries:
        scheduled = min(scheduled, max_queries)
    if scheduled > MAX_SCHEDULED_QUERIES:
        raise ValueError(f"target_qps {target_qps:g} × min_duration_s {min_duration_s:g} schedules {scheduled:,.0f} "
                         f"queries, more than the {MAX_SCHEDULED_QUERIES:,} an arrival schedule may hold; lower "
                         "target_qps or min_duration_s, or set max_queries")


class RunLength(Struct, frozen=True, forbid_unknown_fields=True, omit_defaults=True):
    """Overrides of a profile's run length and load; None keeps the profile's value."""

    min_duration_s: Annotated[float, Meta(gt=0, le=MAX_RUN_S)] | None = None
    max_duration_s: Annotated[float, Meta(gt=0, le=MAX_RUN_S)] | None = None
    min_queries: Annotated[int, Meta(ge=1, le=MAX_SCHEDULED_QUERIES)] | None = None
    max_queries: Annotated[int, Meta(ge=1, le=1 << 40)] | None = None
    target_qps: Annotated[float, Meta(gt=0, le=MAX_TARGET_QPS)] | None = None
    target_latency_ms: Annotated[float, Meta(gt=0, le=1e7)] | None = None
    batch_size: Annotated[int, Meta(ge=1, le=1 << 16)] | None = None

    def __post_init__(self) -> None:
        if self.max_queries is not None and self.min_queries is not None and self.max_queries < self.min_queries:
            raise ValueError(f"max_queries ({self.max_queries}) is below min_queries ({self.min_queries})")
        if self.max_duration_s is not None and self.min_duration_s is not None and self.max_duration_s < self.min_duration_s:
            raise ValueError(f"max_duration_s ({self.max_duration_s:g}) is below min_duration_s ({self.min_duration_s:g})")


# --- messages from the controller ---------------------------------------------------------------


class Artifact(_Body, frozen=True):
    """Where a job's model comes from; the sha256 is checked before the file is used."""

    url: Annotated[str, Meta(min_length=1, max_length=2048)]
    sha256: Sha256
    size: Count
    name: Name
    archive: Literal["tar"] | None = None  # a directory model (Core ML .mlpackage) sent as one deterministic tar
    token: Token | None = field(default=None)  # the job's own short-lived download credential


class PostProcessSpec(_Body, frozen=True):
    """How an accuracy run reads the model's outputs (``agent.postprocess``): the zoo manifest's, sent with
    a job because the agent runs the artifact by its hash, not by its zoo name."""

    kind: Name
    class_offset: Annotated[int, Meta(ge=-1000, le=1000)] = 0


class Job(_Body, frozen=True):
    """Run one measurement: the artifact, the runtime options, the scenario and its run length."""

    run_id: RunId
    artifact: Artifact
    scenario: Annotated[str, Meta(min_length=1, max_length=32)]
    mode: Annotated[str, Meta(min_length=1, max_length=32)]
    profile: Annotated[str, Meta(min_length=1, max_length=32)]
    dataset: Name
    controller: ControllerId  # the owner: only its acks and cancels apply to this run id
    campaign: Name | None = None
    key: Annotated[str, Meta(max_length=1024)] | None = None
    attempt: Annotated[int, Meta(ge=1, le=1000)] = 1
    model_name: Name | None = None
    runtime: Annotated[str, Meta(max_length=32)] | None = None
    options: RuntimeOptions = RuntimeOptions()
    overrides: RunLength = RunLength()
    engine: Literal["auto", "loadgen", "native"] = "auto"
    timeout_s: Annotated[float, Meta(gt=0, le=7 * 86400)] = 3600.0
    power: Annotated[str, Meta(min_length=1, max_length=512)] | None = None
    power_idle_s: Annotated[float, Meta(ge=0, le=3600)] | None = None  # None: the agent's default idle baseline
    preprocess: Name | None = None  # a dataset by path: the zoo model's preprocessing id (agent.datasets)
    postprocess: PostProcessSpec | None = None  # a zoo model's output reading, for accuracy runs
    corruptions: Annotated[tuple[CorruptionName, ...], Meta(max_length=64)] = ()  # robustness: NAME or NAME:SEVERITIES
    groups: Annotated[tuple[GroupName, ...], Meta(max_length=1 << 17)] = ()  # fairness: each sample's group, "" for none

    def without_token(self) -> Job:
        """The job as it may be written to disk: the token is a credential, used only for the download."""
        return msgspec.structs.replace(self, artifact=msgspec.structs.replace(self.artifact, token=None))


class Cancel(_Body, frozen=True):
    """Stop a run; applies only when ``controller`` owns it."""

    run_id: RunId
    controller: ControllerId


class Ack(_Body, frozen=True):
    """Run ids whose terminal message the controller has stored: the agent drops those this controller owns."""

    run_ids: Annotated[tuple[RunId, ...], Meta(max_length=4096)]
    controller: ControllerId


class Announce(_Body, frozen=True):
    """A controller asks every agent to say its status and info now (on ``{prefix}/announce``)."""

    controller: ControllerId


# --- messages from the agent --------------------------------------------------------------------


class Status(_Body, frozen=True):
    """Retained presence, repeated every ``heartbeat_s`` as the heartbeat; the last will says ``offline``.

    ``session`` names one run of the agent process (Sparkplug's bdSeq idea): an ``offline`` from
    an older session (a will delivered late) does not end a newer one, and two sessions alive
    under one device id are two agents sharing an id.
    """

    state: Literal["online", "busy", "offline"]
    session: SessionId
    heartbeat_s: Annotated[float, Meta(ge=0.1, le=86400)]
    agent_version: Annotated[str, Meta(max_length=64)] = ""
    job: RunId | None = None
    tags: Annotated[tuple[Tag, ...], Meta(max_length=MAX_TAGS)] = ()
    uptime_s: NonNegative = 0.0  # since this session started (its own clock): of two agents on one id, the newer stops


class PowerSource(_Body, frozen=True):
    name: Name
    available: bool
    reason: Text = ""
    detail: dict[str, Free] = {}

    _free: ClassVar[tuple[str, ...]] = ("detail",)


class Measures(_Body, frozen=True):
    """The only scenarios and modes a device can measure, and why (a phone's tools: SingleStream performance).
    The controller marks a campaign's other jobs for it "not measured" with ``reason`` instead of sending them."""

    scenarios: Annotated[tuple[Annotated[str, Meta(min_length=1, max_length=32)], ...], Meta(max_length=8)]
    modes: Annotated[tuple[Annotated[str, Meta(min_length=1, max_length=32)], ...], Meta(max_length=8)]
    reason: Text = ""


class Info(_Body, frozen=True):
    """Retained device facts: what a result will carry, what is installed, which power sources work, and
    (``measures``) what a device that cannot run every scenario and mode can measure."""

    agent_version: Annotated[str, Meta(max_length=64)] = ""
    tags: Annotated[tuple[Tag, ...], Meta(max_length=MAX_TAGS)] = ()
    facts: Annotated[dict[Name, Free], Meta(max_length=256)] = {}
    installed: Annotated[dict[Name, Annotated[str, Meta(max_length=128)] | None], Meta(max_length=64)] = {}
    power_sources: Annotated[tuple[PowerSource, ...], Meta(max_length=32)] = ()
    max_payload_bytes: Annotated[int, Meta(ge=1024, le=1 << 30)] = MAX_PAYLOAD_BYTES
    measures: Measures | None = None  # None: every scenario and mode

    _free: ClassVar[tuple[str, ...]] = ("facts",)


class Accepted(_Body, frozen=True):
    run_id: RunId
    duplicate: bool = False


class Progress(_Body, frozen=True):
    """A phase of a running job (fetching, loading, preparing, idle, running, scoring) and its details."""

    run_id: RunId
    phase: Annotated[str, Meta(min_length=1, max_length=32)]
    details: Annotated[dict[Name, Scalar], Meta(max_length=32)] = {}


class Finished(_Body, frozen=True):
    """A re-delivered job that already finished and was acknowledged."""

    run_id: RunId
    duplicate: bool = False
    reason: Text = ""


class Failed(_Body, frozen=True):
    """A job's terminal failure; ``retryable`` is False when running it again cannot help."""

    run_id: RunId
    reason: Text
    retryable: bool = True
    duplicate: bool = False


class Rejected(_Body, frozen=True):
    """A job refused before it ran (malformed, busy with another). ``busy``: the device was running
    another job (another controller's, on a shared fleet); the job waits for it, costing no retry."""

    run_id: RunId
    reason: Text
    retryable: bool = True
    busy: bool = False


class Cancelled(_Body, frozen=True):
    """A job stopped because its owner cancelled it: its own terminal state, kept until acked like a failure."""

    run_id: RunId
    reason: Text = ""


class Duplicate(_Body, frozen=True):
    """An agent found another agent alive under its device id and stops: it was the newer of the two."""

    session: SessionId
    other_session: SessionId
    detail: Text = ""


class Telemetry(_Body, frozen=True):
    run_id: RunId | None = None
    cpu_pct: Annotated[float, Meta(ge=0, le=1e5)] = 0.0
    temperatures_c: Annotated[dict[Name, Celsius], Meta(max_length=128)] = {}


# --- the result document (schema edgeperf.result/1) ---------------------------------------------


class DeviceBlock(_Body, frozen=True):
    id: DeviceId
    facts: Annotated[dict[Name, Free], Meta(max_length=256)]

    _free: ClassVar[tuple[str, ...]] = ("facts",)


Dim = Annotated[int, Meta(ge=-1, le=2**63 - 1)] | Annotated[str, Meta(max_length=256)]  # a size, or a symbolic name


class TensorBlock(_Body, frozen=True):
    """One model input or output as the runtime saw it (``model.inputs``, ``model.outputs``)."""

    name: Text
    shape: Annotated[tuple[Dim, ...], Meta(max_length=64)]
    dtype: Annotated[str, Meta(max_length=64)]
    scale: Finite | None = None  # affine quantisation: real = scale * (q - zero_point)
    zero_point: Annotated[int, Meta(ge=-(2**31), le=2**31 - 1)] | None = None


PROVENANCE_SCHEMA = "edgeperf.quantize/1"
PROVENANCE_KEY = "edgeperf.provenance"  # the model file's own metadata entry that holds the record (docs/quantize.md)


class CalibrationBlock(_Body, frozen=True):
    """The samples a static quantiser measured activation ranges on (``model.provenance.calibration``)."""

    dataset: Name
    source: Text = ""
    n: Count = 0
    samples_sha256: Sha256 | None = None


class PairedAccuracy(_Body, frozen=True):
    """A variant's top-1 against its source's on the same samples (``model.provenance.accuracy``):
    the difference in percentage points with its paired 95 % interval (``method``), the discordant
    pairs behind it, and the exact McNemar p-value."""

    dataset: Name
    n: Count
    samples_sha256: Sha256
    source_top1: Fraction
    variant_top1: Fraction
    delta_pp: Annotated[float, Meta(ge=-100, le=100)]  # variant minus source
    ci95_pp: tuple[Annotated[float, Meta(ge=-100, le=100)], Annotated[float, Meta(ge=-100, le=100)]]
    method: Text
    source_only: Count = 0  # samples the source got right and the variant wrong
    variant_only: Count = 0  # the other way round
    p_value: Fraction | None = None


class Provenance(_Body, frozen=True):
    """How ``edgeperf quantize`` made a model file (``model.provenance``): written beside the file as
    JSON and into the file's own metadata (``PROVENANCE_KEY``), so every result that benchmarks it
    carries it. ``float_operators`` are the operators tuning left in float, in the order it fell
    them back; ``budget_met`` is None where accuracy was not measured (``accuracy_note`` says why)."""

    schema: Literal["edgeperf.quantize/1"]
    source_name: Text
    source_sha256: Sha256
    source_format: Annotated[str, Meta(max_length=32)]
    format: Literal["onnx", "tflite", "coreml"]
    precision: Annotated[str, Meta(max_length=32)]
    method: Text
    settings: Annotated[dict[Name, Scalar], Meta(max_length=64)] = {}
    calibration: CalibrationBlock | None = None
    float_operators: Annotated[tuple[Text, ...], Meta(max_length=100_000)] = ()
    tool_versions: Annotated[dict[Name, Annotated[str, Meta(max_length=128)]], Meta(max_length=64)] = {}
    accuracy: PairedAccuracy | None = None
    accuracy_note: Text = ""
    budget_pp: Annotated[float, Meta(ge=0, le=100)] | None = None
    budget_met: bool | None = None
    created_at: Annotated[str, Meta(max_length=64)] = ""


class ModelBlock(_Body, frozen=True):
    name: Name
    path: Annotated[str, Meta(max_length=4096)]
    sha256: Sha256
    size_bytes: Count
    format: Annotated[str, Meta(max_length=32)]
    precision: Annotated[str, Meta(max_length=32)]
    parameters: Count | None = None
    inputs: Annotated[tuple[TensorBlock, ...], Meta(max_length=1024)] = ()
    outputs: Annotated[tuple[TensorBlock, ...], Meta(max_length=1024)] = ()
    provenance: Provenance | None = None  # how edgeperf quantize made the file, read from the file's own metadata
    provenance_warning: Text = ""  # why a record the file carries was left out (it broke the contract)


class RuntimeBlock(_Body, frozen=True):
    name: Annotated[str, Meta(max_length=64)]
    version: Annotated[str, Meta(max_length=128)]
    threads: Annotated[int, Meta(ge=0, le=1 << 20)] | None
    accelerator: Annotated[str, Meta(max_length=256)]
    details: dict[Name, Free] = {}
    threads_rule: Text = ""  # "given", or how the default was resolved (docs/engines.md, "Threads")

    _free: ClassVar[tuple[str, ...]] = ("details",)


class RunSettingsBlock(_Body, frozen=True):
    """The settings a run used (``settings.effective``, every field of the agent's ``RunSettings``):
    exports write them as the run's conditions and rebuild LoadGen's settings logs from them."""

    scenario: Literal["SingleStream", "MultiStream", "Server", "Offline"] | None = None
    mode: Literal["performance", "accuracy", "robustness"] | None = None
    profile: Annotated[str, Meta(max_length=32)] = ""
    target_latency_percentile: Annotated[float, Meta(gt=0, lt=1)] = 0.9
    min_duration_ms: Count = 0
    min_query_count: Count = 0
    max_duration_ms: Count = 0
    max_query_count: Count = 0
    samples_per_query: Annotated[int, Meta(ge=1)] = 1
    server_target_qps: NonNegative = 0.0
    server_target_latency_ms: NonNegative = 0.0
    offline_min_sample_count: Count = 0
    expected_latency_ns: Count = 0  # per sample, from calibration (0: not recorded)
    offline_expected_qps: NonNegative = 0.0
    batch_size: Annotated[int, Meta(ge=1)] = 1
    schedule_seed: Seed = 0
    sample_index_seed: Seed = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        for name, seed in (("schedule_seed", self.schedule_seed), ("sample_index_seed", self.sample_index_seed)):
            if seed >= 2**64:
                raise ValueError(f"{name} {seed} does not fit in LoadGen's 64 bits")


class ServerTrial(_Body, frozen=True):
    """One Server run at one rate (``settings.server.trials``): a shortened search trial, whose
    ``valid`` is the latency constraint alone, or a measured run (``final``) with its full verdict."""

    target_qps: Positive
    achieved_qps: NonNegative | None = None
    p99_ms: NonNegative | None = None
    queries: Count = 0
    over_latency: Count = 0  # queries slower than the bound
    valid: bool = False
    reason: Text = ""
    final: bool = False


class ServerBlock(_Body, frozen=True):
    """How a Server run's latency bound and rate were set (``settings.server``): the bound given or
    derived from the model's SingleStream p99 here, and the rate given or searched (docs/engines.md)."""

    latency_bound_ms: Positive
    latency_bound_rule: Text
    target_qps: NonNegative  # the measured run's rate
    target_qps_rule: Text
    searched: bool = False
    single_stream_samples: Count = 0
    single_stream_median_ms: NonNegative | None = None
    single_stream_p99_ms: NonNegative | None = None
    max_trials: Count = 0
    trials: Annotated[tuple[ServerTrial, ...], Meta(max_length=64)] = ()


class SettingsBlock(_Body, frozen=True):
    effective: RunSettingsBlock = RunSettingsBlock()
    requested: dict[Name, Free] = {}
    derived: dict[Name, Free] = {}
    server: ServerBlock | None = None  # Server runs only

    _free: ClassVar[tuple[str, ...]] = ("requested", "derived")


class LatencyMs(_Body, frozen=True):
    min: NonNegative | None = None
    mean: NonNegative | None = None
    p50: NonNegative | None = None
    p90: NonNegative | None = None
    p95: NonNegative | None = None
    p97: NonNegative | None = None
    p99: NonNegative | None = None
    p999: NonNegative | None = None
    max: NonNegative | None = None


class Histogram(_Body, frozen=True):
    """Counts per latency bucket (ns; JSON keys are decimal strings); merged by adding counts."""

    unit: Literal["ns"]
    significant_digits: Annotated[int, Meta(ge=1, le=9)]
    n: Count
    counts: Annotated[dict[Count, Count], Meta(max_length=100_000)]


class Accuracy(_Body, frozen=True):
    """Top-1 of an accuracy run; newer agents add which samples were right (``correct_bits``: bit i
    is the i-th scored sample, ``numpy.packbits`` order, base64) and which samples those are
    (``samples_sha256``), so two runs over the same samples compare sample by sample. Both or neither."""

    top1: Fraction
    ci95: tuple[Fraction, Fraction]  # Wilson's 95 % interval of top1
    n: Count
    precision_macro: Fraction | None = None
    recall_macro: Fraction | None = None
    f1_macro: Fraction | None = None
    confusion_matrix: Annotated[tuple[Annotated[tuple[Count, ...], Meta(max_length=4096)], ...], Meta(max_length=4096)] = ()
    correct: Count | None = None
    correct_bits: Annotated[str, Meta(max_length=MAX_PAYLOAD_BYTES, pattern=r"^[A-Za-z0-9+/]*={0,2}$")] | None = None
    samples_sha256: Sha256 | None = None
    postprocess: dict[Name, Text | int] = {}  # how outputs became class ids (agent.postprocess); newer agents
    # per class id: (samples of the class, samples predicted as it, of those right) — precision, recall and F1 per class
    class_counts: Annotated[tuple[tuple[Count, Count, Count], ...], Meta(max_length=1 << 16)] = ()

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.correct_bits is None) != (self.samples_sha256 is None):
            raise ValueError("correct_bits and samples_sha256 come together: per-sample correctness names its samples")
        if self.class_counts and sum(c[0] for c in self.class_counts) != self.n:
            raise ValueError(f"class_counts hold {sum(c[0] for c in self.class_counts)} samples, n is {self.n}")
        if any(right > min(support, predicted) for support, predicted, right in self.class_counts):
            raise ValueError("class_counts: a class has more right than its samples or its predictions")
        if self.correct_bits is None:
            return
        try:
            bits = base64.b64decode(self.correct_bits, validate=True)
        except binascii.Error:
            raise ValueError("correct_bits is not base64 text") from None
        if len(bits) != (self.n + 7) // 8:
            raise ValueError(f"correct_bits holds {len(bits)} bytes; {self.n} samples take {(self.n + 7) // 8}")
        ones = int.from_bytes(bits, "big")
        if ones & ((1 << (-self.n % 8)) - 1):
            raise ValueError(f"correct_bits sets bits past sample {self.n}")
        if self.correct is not None and ones.bit_count() != self.correct:
            raise ValueError(f"correct_bits marks {ones.bit_count()} samples right, correct says {self.correct}")


class MlperfEnergy(_Body, frozen=True):
    metric: Literal["mJ/query", "W"]
    mj_per_query: NonNegative | None = None
    avg_power_w: NonNegative | None = None
    samples_per_joule: NonNegative | None = None


class PowerTrace(_Body, frozen=True):
    """Power over the measured window and a tenth of it either side (``energy.trace``), thinned for a
    plot: seconds from the window's start and the watts read then, pairwise."""

    t_s: Annotated[tuple[Finite, ...], Meta(max_length=4096)]
    w: Annotated[tuple[Finite, ...], Meta(max_length=4096)]
    window_s: NonNegative | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        if len(self.t_s) != len(self.w):
            raise ValueError(f"a power trace of {len(self.t_s)} times and {len(self.w)} readings")


class Energy(_Body, frozen=True):
    source: Name
    measured: bool
    rail: Text = ""
    nominal_rate_hz: NonNegative | None = None  # the rate the source is configured for (0: unknown)
    source_detail: Annotated[dict[Name, Free], Meta(max_length=256)] = {}  # what the source said about itself
    samples: Count = 0
    idle_power_w: NonNegative | None = None
    avg_power_w: NonNegative | None = None
    energy_j: NonNegative | None = None
    energy_per_inference_mj: NonNegative | None = None
    energy_per_inference_above_idle_mj: Finite | None = None  # below zero when the run drew less than idle (noise)
    inferences_per_joule: NonNegative | None = None
    sample_rate_hz: NonNegative | None = None
    window_samples: Count | None = None
    window_s: NonNegative | None = None
    method: Annotated[str, Meta(max_length=32)] | None = None  # how the window was integrated: trapezoid | counter
    max_gap_s: NonNegative | None = None  # the longest stretch of the window without a reading
    mlperf: MlperfEnergy | None = None
    grid_intensity_g_per_kwh: NonNegative | None = None
    gco2e_per_1000_inferences: NonNegative | None = None
    warnings: Annotated[tuple[Text, ...], Meta(max_length=64)] = ()
    trace: PowerTrace | None = None

    _free: ClassVar[tuple[str, ...]] = ("source_detail",)


class Cooldown(_Body, frozen=True):
    """The wait for ``--cooldown-below`` before a run (``thermals.cooldown``)."""

    target_c: Celsius
    timeout_s: NonNegative
    waited_s: NonNegative
    start_c: Celsius | None = None
    end_c: Celsius | None = None
    reached: bool = False


class Thermals(_Body, frozen=True):
    max_before_c: Celsius | None = None
    max_after_c: Celsius | None = None
    throttled: bool = False
    throttle_reasons: Annotated[tuple[Text, ...], Meta(max_length=64)] = ()
    pi_throttled: Annotated[str, Meta(max_length=32)] | None = None  # the Pi firmware's throttle bits after the run, hex
    cooldown: Cooldown | None = None


class Memory(_Body, frozen=True):
    peak_rss_mb: NonNegative | None
    model_rss_mb: Finite | None = None


class Cpu(_Body, frozen=True):
    process_pct: NonNegative | None = None
    system_pct: NonNegative | None = None


class TaskAccuracy(_Body, frozen=True):
    """A task's own accuracy metric, computed as MLPerf's reference accuracy script does: COCO mAP for
    detection (pycocotools, no interval: it gives none), ROC AUC for anomaly detection (DeLong's 95 %
    interval). ``n`` counts what was scored (images, clips); ``postprocess`` says how the model's
    outputs were read (``agent.postprocess``); ``details`` holds the metric's secondary figures."""

    metric: Literal["mAP", "AUC"]
    value: Fraction
    n: Count
    ci95: tuple[Fraction, Fraction] | None = None
    interval: Text = ""  # the interval's method, or why there is none
    postprocess: dict[Name, Text | int] = {}
    details: Annotated[dict[Name, float | int | None], Meta(max_length=64)] = {}
    samples_sha256: Sha256 | None = None


class CorruptionScore(_Body, frozen=True):
    """Top-1 under one corruption at one severity (``kpis.robustness.scores``), and its drop from clean
    over the same samples: ``drop_pp`` = clean − corrupted, with a paired 95 % interval."""

    corruption: Name
    severity: Annotated[int, Meta(ge=1, le=5)]
    accuracy: Accuracy  # its samples_sha256 names the corrupted samples (same for every variant of a model)
    drop_pp: PercentPoints
    drop_ci95_pp: tuple[PercentPoints, PercentPoints]
    clean_only: Count = 0  # right clean, wrong corrupted
    corrupted_only: Count = 0  # the other way round


class Robustness(_Body, frozen=True):
    """A robustness run (``--mode robustness``): the clean accuracy is ``kpis.accuracy``; these are the
    same samples corrupted (``agent.corruptions``), each corruption and severity scored without timing."""

    family: Literal["image", "audio"]
    scores: Annotated[tuple[CorruptionScore, ...], Meta(max_length=64)]
    mean_top1: Fraction  # mean corruption accuracy: the mean over ``scores``
    mean_drop_pp: PercentPoints
    mean_drop_ci95_pp: tuple[PercentPoints, PercentPoints]
    method: Text = ""


class GroupScore(_Body, frozen=True):
    name: Annotated[str, Meta(max_length=64)]
    n: Count
    correct: Count
    rate: Fraction  # accuracy of the group (class balance: the class's recall)
    ci95: tuple[Fraction, Fraction]  # Wilson 95 %
    recall_macro: Fraction | None = None  # fairness: macro recall over the classes the group's samples have


class GroupGap(_Body, frozen=True):
    """Accuracy per group and the largest gap between two groups (``kpis.fairness``: groups of inputs
    a ``--groups`` file names; ``kpis.class_balance``: recall per class, which is not fairness)."""

    kind: Literal["fairness", "class balance"]
    groups: Annotated[tuple[GroupScore, ...], Meta(max_length=1 << 16)]
    method: Text
    gap: Fraction | None = None  # best − worst rate; None with one group
    gap_ci95: tuple[Annotated[float, Meta(ge=-1, le=1)], Annotated[float, Meta(ge=-1, le=1)]] | None = None
    best: Annotated[str, Meta(max_length=64)] | None = None
    worst: Annotated[str, Meta(max_length=64)] | None = None
    confidence_each_pair: Fraction | None = None  # the Bonferroni level each pair's interval is taken at
    ungrouped: Count = 0  # scored samples the groups file gives no group
    source: Text = ""  # where the groups came from: the file and its sha256, or the dataset


class Kpis(_Body, frozen=True):
    latency_ms: LatencyMs  # all None when nothing was timed (accuracy mode)
    early_stopping_latency_ms: NonNegative | None
    throughput_sps: NonNegative | None
    query_count: Count
    sample_count: Count
    duration_s: NonNegative
    accuracy: Accuracy | None
    energy: Energy | None
    memory: Memory
    model_size_mb: NonNegative
    load_time_ms: NonNegative
    first_inference_ms: NonNegative
    early_stopping_p99_latency_ms: NonNegative | None = None
    latency_basis: Literal["sample", "query"] = "sample"
    latency_histogram: Histogram | None = None
    model_parameters: Count | None = None
    cpu: Cpu = Cpu()
    thermals: Thermals | None = None
    offered_qps: NonNegative | None = None  # Server: the load its arrival schedule offered
    task_accuracy: TaskAccuracy | None = None  # a task scored by its own metric (mAP, AUC) rather than top-1
    robustness: Robustness | None = None  # --mode robustness: top-1 under each corruption and severity
    fairness: GroupGap | None = None  # --groups: accuracy per group of inputs, the largest gap
    class_balance: GroupGap | None = None  # recall per class and its largest gap (not fairness)


class Check(_Body, frozen=True):
    name: Name
    ok: bool
    detail: Text = ""
    advice: Text = ""


class JobRef(_Body, frozen=True):
    """Which campaign job a result answers (set by the agent's worker from the job)."""

    campaign: Name | None = None
    key: Annotated[str, Meta(max_length=1024)] | None = None
    attempt: Annotated[int, Meta(ge=1, le=1000)] | None = None


class InputBlock(_Body, frozen=True):
    """What one model input was fed (``dataset.inputs``): its shape after ``--shape``, its dtype and
    where its values came from — the default range (``synthetic``), a ``constant``, a ``range`` or a
    ``file`` (by sha256), or the ``dataset`` — enough to feed it the same again."""

    name: Text
    shape: Annotated[tuple[Annotated[int, Meta(ge=0, le=1 << 31)], ...], Meta(max_length=16)]
    dtype: Annotated[str, Meta(max_length=64)]
    source: Literal["synthetic", "constant", "range", "file", "dataset"]
    value: Finite | bool | None = None
    low: Finite | None = None
    high: Finite | None = None
    path: Text | None = None
    sha256: Sha256 | None = None


class DatasetBlock(_Body, frozen=True):
    name: Name
    source: Text = ""
    samples: Count = 0
    inputs: Annotated[tuple[InputBlock, ...], Meta(max_length=1024)] = ()


class Window(_Body, frozen=True):
    """The measured window on the wall clock (``window``): from the first issue to the last completion."""

    begin_unix_ns: Count
    end_unix_ns: Count


class Logs(_Body, frozen=True):
    """The engine's own logs (``logs``): which engine ran and, for LoadGen, its log folder on the
    machine that ran it, the files there, its summary carried inline (dropped when the result
    would be too large to send) and the errors and warnings its detail log names."""

    engine: Annotated[str, Meta(max_length=32)] = ""
    engine_rule: Text = ""  # "given", or why auto chose it (scenarios.fit_to_memory)
    dir: Text | None = None
    files: Annotated[tuple[Name, ...], Meta(max_length=64)] = ()
    summary: Annotated[str, Meta(max_length=1 << 16)] | None = None
    errors: Annotated[tuple[Text, ...], Meta(max_length=4096)] = ()
    warnings: Annotated[tuple[Text, ...], Meta(max_length=4096)] = ()  # LoadGen's is_warning lines, word for word
    query_pool: dict[Name, Free] | None = None  # how LoadGen's pre-generated query pool was sized (loadgen.sized_pool)

    _free: ClassVar[tuple[str, ...]] = ("query_pool",)


class Reproduce(_Body, frozen=True):
    """How to run the same workload again (``reproduce``): ``edgeperf-agent bench`` arguments, and the line to paste."""

    argv: Annotated[tuple[Text, ...], Meta(max_length=512)]
    command: Annotated[str, Meta(max_length=1 << 16)]


class Result(_Body, frozen=True):
    """A result document. Fields beyond these may be present and are kept as sent."""

    schema: Literal["edgeperf.result/1"]
    run_id: RunId
    created_at: Annotated[str, Meta(max_length=64)]
    device: DeviceBlock
    model: ModelBlock
    runtime: RuntimeBlock
    scenario: Literal["SingleStream", "MultiStream", "Server", "Offline"]
    mode: Literal["performance", "accuracy", "robustness"]
    # a phone's own tool (agent.android) measured it: not LoadGen, and the result's checks say so
    engine: Literal["loadgen", "native", "benchmark_model", "onnxruntime_perf_test"]
    profile: Annotated[str, Meta(max_length=32)]
    settings: SettingsBlock
    valid: bool
    invalid_reasons: Annotated[tuple[Text, ...], Meta(max_length=64)]
    kpis: Kpis
    logs: Logs
    agent_version: Annotated[str, Meta(max_length=64)] = ""
    dataset: DatasetBlock | None = None
    checks: Annotated[tuple[Check, ...], Meta(max_length=64)] = ()
    ended_by: Text = ""
    window: Window | None = None
    job: JobRef | None = None
    baseline: dict[Name, Free] | None = None
    reproduce: Reproduce | None = None

    _free: ClassVar[tuple[str, ...]] = ("baseline",)


# --- envelopes ----------------------------------------------------------------------------------

BODIES: dict[str, type[_Body]] = {
    "status": Status, "info": Info, "job": Job, "cancel": Cancel, "ack": Ack, "announce": Announce, "accepted": Accepted,
    "progress": Progress, "finished": Finished, "failed": Failed, "rejected": Rejected, "cancelled": Cancelled,
    "duplicate": Duplicate,
    "result": Result,
    "telemetry": Telemetry,
}
# envelope types allowed on each topic kind
TYPES = {
    "status": ("status",), "info": ("info",), "jobs": ("job", "cancel"),
    "events": ("accepted", "progress", "finished", "failed", "rejected", "cancelled", "duplicate"),
    "results": ("result",), "acks": ("ack",), "telemetry": ("telemetry",), "announce": ("announce",),
}


class _Wire(Struct, frozen=True):
    """The envelope as it arrives: the body is decoded once its type is known."""

    v: int
    type: Annotated[str, Meta(max_length=32)]
    device: DeviceId
    data: msgspec.Raw
    seq: Seq = 0
    ts: NonNegative = 0.0
    sig: Annotated[str, Meta(max_length=fleet_key.SIGNATURE_HEX)] = ""


class Envelope(Struct, frozen=True):
    """Every payload: protocol version, type, device, per-sender sequence, time, typed body, signature.

    ``device`` is the device the message is about (on ``announce``: the sending controller's id).
    """

    type: str
    device: str
    data: Any  # a body struct (or, for results on the agent side, the document as a dict)
    seq: int = 0
    ts: float = field(default_factory=time.time)
    v: int = PROTOCOL_VERSION
    raw: bytes = b""  # received: the body's JSON as it came (a result is stored as sent, extra fields included)

    def encode(self, key: bytes | None) -> bytes:
        """The payload, signed with the fleet ``key`` (None: unsigned, which every receiver drops)."""
        data = msgspec.json.encode(self.data)
        wire = {"v": self.v, "type": self.type, "device": self.device, "seq": self.seq, "ts": self.ts,
                "data": msgspec.Raw(data)}
        if key is not None:
            wire["sig"] = fleet_key.signature(key, self.v, self.type, self.device, data)
        body = msgspec.json.encode(wire)
        if len(body) > MAX_PAYLOAD_BYTES:
            raise ProtocolError(f"{self.type} message of {len(body)} bytes exceeds the {MAX_PAYLOAD_BYTES}-byte limit")
        return body


def _problem(exc: Exception) -> str:
    return str(exc).replace("`", "")[:300]


def _wire(payload: bytes, key: bytes | None, max_bytes: int = MAX_PAYLOAD_BYTES) -> _Wire:
    """The envelope of ``payload``, its size, version and (with ``key``) signature checked; the body still raw."""
    if len(payload) > max_bytes:
        raise ProtocolError(f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit")
    try:
        wire = msgspec.json.decode(payload, type=_Wire)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ProtocolError(f"bad envelope: {_problem(exc)}") from None
    if wire.v != PROTOCOL_VERSION:
        raise ProtocolError(f"protocol version {wire.v!r}, this side speaks {PROTOCOL_VERSION}")
    if key is not None and not fleet_key.verifies(key, wire.v, wire.type, wire.device, bytes(wire.data), wire.sig):
        raise ProtocolError("not signed with this fleet's key" if not wire.sig else
                            "signed with another fleet key: give this side the controller's fleet.key (docs/protocol.md)")
    return wire


def decode(topic_kind: str, payload: bytes, key: bytes | None, max_bytes: int = MAX_PAYLOAD_BYTES) -> Envelope:
    """Parse and check one payload received on a topic of ``topic_kind``; ``data`` is its typed body.

    With the fleet ``key`` (every network receiver), a message without a valid signature is refused
    before its body is read; None skips that check (tests of the contract itself).
    """
    wire = _wire(payload, key, max_bytes)
    if wire.type not in TYPES.get(topic_kind, ()):
        raise ProtocolError(f"message type {wire.type!r} does not belong on {topic_kind}")
    body = decode_body(wire.type, wire.data)
    return Envelope(wire.type, wire.device, body, wire.seq, wire.ts, wire.v, bytes(wire.data))


def decode_body(kind: str, data: bytes | msgspec.Raw) -> Any:
    """One message body (or a result document) from JSON, checked against its type."""
    try:
        return msgspec.json.decode(data, type=BODIES[kind])
    except (msgspec.DecodeError, RecursionError) as exc:
        problem = _problem(exc)
        if kind == "result" and problem.endswith("at $.schema"):  # a newer or older agent: say what this side reads
            problem += f" (this side reads {RESULT_SCHEMA})"
        raise ProtocolError(f"bad {kind}: {problem}") from None


class _PeekData(Struct):
    run_id: RunId


def peek_run_id(payload: bytes, device: str, key: bytes) -> str | None:
    """The run id of a signed job for ``device`` whose body failed its checks, where it has a
    well-formed one (to refuse it by name, so the controller fails it at once instead of waiting
    for its timeout).

    None when the envelope itself is wrong: unsigned or signed with another key, another protocol
    version, another type, or for another device. Such a message is not this agent's to answer; an
    answer would settle a run that a stranger, a newer peer or another device owns.
    """
    try:
        wire = _wire(payload, key)
        if wire.type != "job" or wire.device != device:
            return None
        return msgspec.json.decode(wire.data, type=_PeekData).run_id
    except (ProtocolError, msgspec.DecodeError, RecursionError):
        return None


def _encoded(value: Any, what: str) -> bytes:
    """Python values as the JSON a peer would send; what JSON cannot carry is the contract's error."""
    try:
        return msgspec.json.encode(value)
    except (TypeError, msgspec.EncodeError) as exc:
        raise ProtocolError(f"{what}{_problem(exc)}") from None


def convert(kind: str, value: Any) -> Any:
    """A body from Python values (a dict, structs within), checked exactly as if it had arrived: through JSON."""
    return decode_body(kind, _encoded(value, f"bad {kind}: "))


def checked_result(doc: dict[str, Any]) -> tuple[Result, bytes]:
    """A result document made in this process (the baseline, tests) as it would arrive: typed, and its JSON."""
    raw = _encoded(doc, "bad result: ")
    return decode_body("result", raw), raw


def _finite(value: Any, where: str = "$") -> None:
    """JSON cannot carry NaN or infinity and msgspec encodes them as ``null``, which an option reads as
    "not set": ``--target-qps inf`` would silently run the profile's default. Refuse them by path."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ProtocolError(f"Expected a finite number, got {value} - at {where}")
    if isinstance(value, dict):
        for key, item in value.items():
            _finite(item, f"{where}.{key}")
    elif isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _finite(item, f"{where}[{i}]")


def build(kind: type[Struct], value: dict[str, Any]) -> Any:
    """A job-option struct (``RuntimeOptions``, ``RunLength``) from plain values, checked as if it had arrived."""
    _finite(value)
    try:
        return msgspec.json.decode(_encoded(value, ""), type=kind)
    except msgspec.DecodeError as exc:
        raise ProtocolError(_problem(exc)) from None


def to_builtins(value: Any) -> Any:
    """Plain dicts and lists of a body (for storage, exports and tests)."""
    return msgspec.to_builtins(value)


class Topics(Struct, frozen=True):
    """Topic names under one prefix (configurable; default ``edgeperf/v1``)."""

    prefix: str = DEFAULT_PREFIX

    def device(self, device_id: str, kind: str) -> str:
        if kind not in TOPICS:
            raise ValueError(f"unknown topic kind {kind!r}")
        check_device_id(device_id)
        return f"{self.prefix}/devices/{device_id}/{kind}"

    def announce(self) -> str:
        """The one fleet-wide topic: a controller's request that every agent say its status now."""
        return f"{self.prefix}/announce"

    def probe(self, controller_id: str) -> str:
        """Where a controller sends its link probe (``controller.fleet.link``): no one subscribes, only the
        broker's acknowledgement matters."""
        return f"{self.prefix}/probe/{controller_id}"

    def all_devices(self, kind: str) -> str:
        """Subscription filter for one kind from every device."""
        return f"{self.prefix}/devices/+/{kind}"

    def parse(self, topic: str) -> tuple[str, str]:
        """``(device_id, kind)`` of a device topic under this prefix."""
        head = f"{self.prefix}/devices/"
        if not topic.startswith(head):
            raise ProtocolError(f"topic {topic[:200]!r} is not under {head}")
        device_id, sep, kind = topic[len(head) :].partition("/")
        if not sep or kind not in TOPICS or not _DEVICE_ID.fullmatch(device_id):
            raise ProtocolError(f"topic {topic[:200]!r} is not a device topic")
        return device_id, kind
