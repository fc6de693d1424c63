"""Campaign files: load a YAML campaign, validate it, and expand it into the job matrix.

A campaign says which models (and variants of each) run on which devices, under which scenarios,
modes and run-length profile. Every mistake is reported as ``file:line: key: problem`` so a user
with a 200-line file goes straight to the line; that is why the file is composed into YAML nodes
(which keep their line) and converted here, instead of being read with ``safe_load``.

Format (all keys but ``name`` and ``models`` optional; defaults in brackets)::

    name: fmnist                      # [A-Za-z0-9._-]+
    profile: smoke                    # [quick] smoke | quick | standard | mlperf
    engine: auto                      # [auto] auto | loadgen | native
    scenarios: [SingleStream, Offline]  # [SingleStream]
    modes: [performance, accuracy]    # [performance]
    repeats: 2                        # [1] performance runs per (device, variant, scenario)
    cooldown_s: 5                     # [0] seconds a device rests between jobs
    power: auto                       # [none] energy per inference: auto | ina219:... | jtop | nvml | rapl | ...
    timeout_s: 900                    # [1800] per job
    retries: 1                        # [1] extra attempts after a failure
    dataset: synthetic                # [synthetic] for performance runs
    accuracy_dataset: fashion-mnist   # [fashion-mnist] for accuracy runs (must be labelled); or KIND:PATH[:N],
                                      # a data set at PATH on every device (docs/datasets.md)
    corruptions: [gaussian_noise, contrast:1,3,5]  # [all] robustness runs: NAME or NAME:SEVERITIES (agent.corruptions)
    groups: groups.csv                # fairness: each sample's group (agent.groups), read here, sent with every
                                      # accuracy and robustness job (relative to this file)
    overrides:                        # run-length overrides for every job (agent.contract.RunLength)
      min_duration_s: 0.5             # also max_duration_s, target_qps, target_latency_ms (> 0)
      min_queries: 64                 # also max_queries, batch_size (integers >= 1)
    devices: all                      # [all] or {ids: [pi5-01]} / {tags: [rpi5]} / both (id OR tag)
    # sweep:                          # scalability: every variant once per combination (docs/campaigns.md)
    #   threads: [1, 2, 4]            # a variant per thread count: int8.tflite@t2 (the variant must not set threads)
    #   batch_size: [1, 8]            # a variant per batch size: int8.tflite@t2b8 (nor batch_size)
    #   devices: [1, 2]               # Offline performance jobs on k devices at once (k = 1: each device's own job)
    models:
      - name: fashion-mnist-cnn
        dataset: fashion-mnist        # overrides ``dataset`` for this model's performance runs
        variants:
          - artifact: zoo:fashion-mnist-cnn/int8.tflite   # or a path, relative to this file
            name: int8-tflite         # [the artifact's file name], unique within the model
            runtime: litert           # litert | onnxruntime | coreml (aliases tflite, onnx, ort)
            batch_size: 8
            # runtime options: every field of agent.contract.RuntimeOptions, read by its type
            threads: 2
            xnnpack: false            # LiteRT only
            delegate: [libedgetpu.so.1]  # LiteRT only: external delegate libraries
            shape: {image: 1x1x28x28} # dynamic-dimension overrides
            inputs: {sr: 16000, x: "-1:1"}  # what an input is fed: VALUE | LOW:HIGH | PATH.npy/.txt (on the device)
            provider: [CUDAExecutionProvider, CPUExecutionProvider]   # ONNX Runtime only
            provider_options: {CUDAExecutionProvider: {device_id: 0}} # ONNX Runtime only
            optimization: all         # ONNX Runtime only: disable | basic | extended | all
            compute_units: cpu_and_ne # Core ML only: all | cpu_only | cpu_and_gpu | cpu_and_ne

Accuracy does not depend on the scenario or the repeat, so it runs once per (device, variant).
A ``sweep`` multiplies the variants before expansion (``@t2b8`` names the point; ``@`` is not allowed in a
name written in the file, so a derived name never collides); ``devices: [k, ...]`` adds, for each k > 1, a
*gang* per Offline performance job: the same job on the first k selected devices, which the scheduler
dispatches only together (``JobSpec.gang``) so that their measured windows overlap.
Runtime options and run lengths are the job's own types (``agent.contract``): a field added there
is read here by its type, sent in the job and applied by the agent, with no edit in this file.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import msgspec
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from agent import contract, corruptions, zoo
from agent import groups as groups_file
from agent.contract import RunLength, RuntimeOptions, check_device_id
from agent.datasets import DATASETS
from agent.datasets import KINDS as DATASET_KINDS
from agent.datasets.input_values import parse_input_overrides
from agent.datasets.spec import parse as parse_dataset
from agent.errors import EXIT_USAGE, EdgeperfError, ModelError, SettingsError
from agent.model_file import FORMATS
from agent.runtimes import ALIASES, RUNTIMES
from agent.runtimes.shapes import parse_shape_overrides
from agent.scenarios import ENGINES
from agent.scenarios.settings import PROFILES, Mode, Scenario, for_profile, parse_mode, parse_scenario
from controller.fleet.yaml_nodes import NodeReader, bounds, compose, got, join_key, read_text, unknown
from devices.power import parse_spec

UNLABELLED_DATASETS = ("synthetic",)
# runtime options whose YAML key (singular: one item or a list) differs from the field's wire name
OPTION_KEYS = {"providers": "provider", "delegates": "delegate", "shapes": "shape"}
_OPTION_FIELDS = {f.encode_name: f for f in msgspec.inspect.type_info(RuntimeOptions).fields}
YAML_OPTIONS = {OPTION_KEYS.get(name, name): name for name in _OPTION_FIELDS}  # YAML key -> field's wire name
_SHAPE = _OPTION_FIELDS["shapes"].type.value_type  # the contract's bounds of one shape: how many sizes, and each size
_RUN_LENGTH = {f.encode_name: f.type for f in msgspec.inspect.type_info(RunLength).fields}
OVERRIDES = tuple(_RUN_LENGTH)
# the job's own fields, whose bounds the campaign keys that fill them (timeout_s, retries) are read with
_JOB_FIELDS = {f.encode_name: f.type for f in msgspec.inspect.type_info(contract.Job).fields}
_JOB_GROUPS = _JOB_FIELDS["groups"].max_length  # the most samples a job can name groups for
_TOP_KEYS = (
    "name", "profile", "engine", "scenarios", "modes", "repeats", "cooldown_s", "power", "timeout_s", "retries",
    "dataset", "accuracy_dataset", "corruptions", "groups", "overrides", "devices", "sweep", "models",
)
_SWEEP_KEYS = ("threads", "batch_size", "devices")
MAX_GANG = 1024  # devices working at once in one sweep point
_MODEL_KEYS = ("name", "dataset", "variants")
_VARIANT_KEYS = ("artifact", "name", "runtime", "batch_size", *YAML_OPTIONS)


class CampaignError(EdgeperfError):
    """A campaign file that cannot be used; the message is ``file:line: key: problem``."""

    exit_code = EXIT_USAGE


# --- the campaign -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    """One artifact of a model with the runtime options to run it under.

    ``artifact`` is kept as written for ``zoo:`` names (the agent resolves those itself) and as an
    absolute path for files, so the campaign means the same thing whatever the working directory.
    """

    name: str
    artifact: str
    runtime: str | None = None
    options: RuntimeOptions = field(default_factory=RuntimeOptions)
    batch_size: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "artifact": self.artifact, "runtime": self.runtime,
                "options": contract.to_builtins(self.options), "batch_size": self.batch_size}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Variant:
        options = d.get("options")
        if options is None:  # stored before the contract: the options sat beside the name, unset ones as null
            options = {k: v for k, v in d.items() if k in _OPTION_FIELDS and v not in (None, [], {})}
        return cls(name=d["name"], artifact=d["artifact"], runtime=d.get("runtime"),
                   options=contract.build(RuntimeOptions, options), batch_size=d.get("batch_size"))


@dataclass(frozen=True)
class ModelSpec:
    """A model and its variants; ``dataset`` overrides the campaign's for performance runs."""

    name: str
    variants: tuple[Variant, ...]
    dataset: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "dataset": self.dataset, "variants": [v.to_dict() for v in self.variants]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ModelSpec:
        return cls(d["name"], tuple(Variant.from_dict(v) for v in d["variants"]), d.get("dataset"))


@dataclass(frozen=True)
class DeviceSelector:
    """Which devices a campaign runs on: all of them, or those with a listed id OR a listed tag."""

    all: bool = True
    ids: tuple[str, ...] = ()
    tags: tuple[str, ...] = ()

    def matches(self, device_id: str, tags: Sequence[str]) -> bool:
        return self.all or device_id in self.ids or any(t in self.tags for t in tags)

    def describe(self) -> str:
        if self.all:
            return "all"
        parts = ([f"ids {', '.join(self.ids)}"] if self.ids else []) + ([f"tags {', '.join(self.tags)}"] if self.tags else [])
        return " or ".join(parts)

    def to_dict(self) -> dict[str, Any]:
        return {"all": self.all, "ids": list(self.ids), "tags": list(self.tags)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DeviceSelector:
        return cls(bool(d["all"]), tuple(d.get("ids", ())), tuple(d.get("tags", ())))


@dataclass(frozen=True)
class Sweep:
    """A campaign's ``sweep:``: thread counts and batch sizes each variant runs at, and device counts
    (k devices at once) each Offline performance job runs at. Empty tuples: not swept. ``line`` is the
    ``sweep`` key's line, for the device-count check made at expansion time (when devices are known)."""

    threads: tuple[int, ...] = ()
    batch_size: tuple[int, ...] = ()
    devices: tuple[int, ...] = ()
    line: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {"threads": list(self.threads), "batch_size": list(self.batch_size), "devices": list(self.devices),
                "line": self.line}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Sweep:
        d = d or {}
        return cls(tuple(d.get("threads", ())), tuple(d.get("batch_size", ())), tuple(d.get("devices", ())),
                   int(d.get("line", 1)))


def point_name(name: str, threads: int | None = None, batch_size: int | None = None, devices: int | None = None) -> str:
    """A sweep point's variant name: ``int8.tflite@t2``, ``@t2b8``, ``@b8k2`` (k: devices at once)."""
    suffix = "".join(f"{tag}{v}" for tag, v in (("t", threads), ("b", batch_size), ("k", devices)) if v is not None)
    return f"{name}@{suffix}" if suffix else name


@dataclass(frozen=True)
class Campaign:
    """A validated campaign. ``source`` and ``devices_line`` let later errors point into the file."""

    name: str
    source: str
    models: tuple[ModelSpec, ...]
    scenarios: tuple[str, ...] = (Scenario.SINGLE_STREAM.value,)
    modes: tuple[str, ...] = (Mode.PERFORMANCE.value,)
    profile: str = "quick"
    engine: str = "auto"
    repeats: int = 1
    devices: DeviceSelector = field(default_factory=DeviceSelector)
    cooldown_s: float = 0.0
    power: str | None = None  # a --power spec every job measures energy with
    timeout_s: float = 1800.0
    retries: int = 1
    dataset: str = "synthetic"
    accuracy_dataset: str = "fashion-mnist"
    overrides: RunLength = field(default_factory=RunLength)
    devices_line: int = 1  # the ``devices`` key's line, or the top mapping's when the key is absent
    sweep: Sweep = field(default_factory=Sweep)  # variants are stored already swept; ``devices`` applies at expansion
    corruptions: tuple[str, ...] = ()  # robustness runs: the agent's --corruptions entries (none: all of the family)
    groups: tuple[str, ...] = ()  # fairness: the group of each sample in dataset order, up to the last one named
    groups_source: str = ""  # the groups file and its sha256

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "source": self.source, "models": [m.to_dict() for m in self.models],
            "scenarios": list(self.scenarios), "modes": list(self.modes), "profile": self.profile,
            "engine": self.engine, "repeats": self.repeats, "devices": self.devices.to_dict(),
            "cooldown_s": self.cooldown_s, "power": self.power, "timeout_s": self.timeout_s, "retries": self.retries,
            "dataset": self.dataset, "accuracy_dataset": self.accuracy_dataset, "overrides": contract.to_builtins(self.overrides),
            "devices_line": self.devices_line, "sweep": self.sweep.to_dict(), "corruptions": list(self.corruptions),
            "groups": list(self.groups), "groups_source": self.groups_source,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Campaign:
        return cls(
            name=d["name"], source=d["source"], models=tuple(ModelSpec.from_dict(m) for m in d["models"]),
            scenarios=tuple(d["scenarios"]), modes=tuple(d["modes"]), profile=d["profile"], engine=d["engine"],
            repeats=d["repeats"], devices=DeviceSelector.from_dict(d["devices"]), cooldown_s=d["cooldown_s"],
            power=d.get("power"),
            timeout_s=d["timeout_s"], retries=d["retries"], dataset=d["dataset"],
            accuracy_dataset=d["accuracy_dataset"], overrides=contract.build(RunLength, d["overrides"]),
            devices_line=d.get("devices_line", 1), sweep=Sweep.from_dict(d.get("sweep")),
            corruptions=tuple(d.get("corruptions", ())), groups=tuple(d.get("groups", ())),
            groups_source=d.get("groups_source", ""),
        )


@dataclass(frozen=True)
class JobSpec:
    """One measurement on one device; ``key`` identifies it within its campaign across restarts."""

    key: str
    device_id: str
    model: str
    variant: Variant
    scenario: str
    mode: str
    repeat: int
    dataset: str
    profile: str
    engine: str
    overrides: RunLength = field(default_factory=RunLength)
    timeout_s: float = 1800.0
    power: str | None = None
    # A sweep's device-count point: the jobs of one gang (the same job on ``gang_size`` devices) are
    # dispatched together, so their measured windows overlap (controller.fleet.scheduler).
    gang: str | None = None
    gang_size: int = 1
    corruptions: tuple[str, ...] = ()  # robustness jobs only
    groups: tuple[str, ...] = ()  # accuracy and robustness jobs only

    def to_dict(self) -> dict[str, Any]:
        return {
            "power": self.power, "gang": self.gang, "gang_size": self.gang_size, "corruptions": list(self.corruptions),
            "groups": list(self.groups),
            "key": self.key, "device_id": self.device_id, "model": self.model, "variant": self.variant.to_dict(),
            "scenario": self.scenario, "mode": self.mode, "repeat": self.repeat, "dataset": self.dataset,
            "profile": self.profile, "engine": self.engine, "overrides": contract.to_builtins(self.overrides),
            "timeout_s": self.timeout_s,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> JobSpec:
        return cls(
            key=d["key"], device_id=d["device_id"], model=d["model"], variant=Variant.from_dict(d["variant"]),
            scenario=d["scenario"], mode=d["mode"], repeat=d["repeat"], dataset=d["dataset"], profile=d["profile"],
            engine=d["engine"], overrides=contract.build(RunLength, d["overrides"]), timeout_s=d["timeout_s"],
            power=d.get("power"), gang=d.get("gang"), gang_size=d.get("gang_size", 1),
            corruptions=tuple(d.get("corruptions", ())), groups=tuple(d.get("groups", ())),
        )


# --- loading ------------------------------------------------------------------------------------


def load(path: Path) -> Campaign:
    """Read and validate the campaign file at ``path``; relative artifacts are relative to its folder."""
    path = Path(path)
    return loads(read_text(path, "campaign file", CampaignError), str(path), path.parent)


def loads(text: str, source: str, base_dir: Path) -> Campaign:
    """Validate campaign YAML ``text``; ``source`` names it in errors, ``base_dir`` anchors relative paths."""
    root = compose(text, source, CampaignError)
    if root is None:
        raise CampaignError(f"{source}:1: (top level): the file is empty; a campaign needs at least name and models")
    return _Parser(source, Path(base_dir)).campaign(root)


# --- expansion ----------------------------------------------------------------------------------


def select_devices(campaign: Campaign, devices: Sequence[tuple[str, Sequence[str]]]) -> list[str]:
    """Device ids the campaign runs on: known matches in the given order, then listed ids not yet seen.

    Ids named explicitly are kept even when the controller has not heard from them, so it can wait
    for them instead of silently running a smaller campaign.
    """
    chosen: list[str] = []
    for device_id, tags in devices:
        if device_id not in chosen and campaign.devices.matches(device_id, tags):
            chosen.append(device_id)
    chosen += [i for i in campaign.devices.ids if i not in chosen]
    if not chosen:
        known = ", ".join(d for d, _ in devices) or "none yet"
        raise CampaignError(
            f"{campaign.source}:{campaign.devices_line}: devices: no device matches "
            f"({campaign.devices.describe()}); known devices: {known}"
        )
    return chosen


def device_jobs(campaign: Campaign, device_id: str) -> list[JobSpec]:
    """One device's jobs in order models → variants → scenarios → modes → repeats."""
    jobs = []
    for model in campaign.models:
        for variant in model.variants:
            for s_index, scenario in enumerate(campaign.scenarios):
                for mode in campaign.modes:
                    accuracy = parse_mode(mode).scored
                    for repeat in range(campaign.repeats):
                        if accuracy and (s_index or repeat):  # accuracy depends on neither
                            continue
                        jobs.append(JobSpec(
                            key=f"{device_id}/{model.name}/{variant.name}/{scenario}/{mode}/r{repeat}",
                            device_id=device_id, model=model.name, variant=variant, scenario=scenario, mode=mode,
                            repeat=repeat,
                            dataset=campaign.accuracy_dataset if accuracy else (model.dataset or campaign.dataset),
                            profile=campaign.profile, engine=campaign.engine, overrides=campaign.overrides,
                            timeout_s=campaign.timeout_s, power=campaign.power,
                            corruptions=campaign.corruptions if mode == Mode.ROBUSTNESS.value else (),
                            groups=campaign.groups if accuracy else (),
                        ))
    return jobs


def gang_jobs(campaign: Campaign, chosen: Sequence[str]) -> list[JobSpec]:
    """``sweep.devices``: for each k > 1, each Offline performance job again on the first k ``chosen``
    devices at once (k = 1 is every device's own job, which runs anyway: the single-device baseline).
    A gang's variant is named ``...@k2`` so its rows never mix with the device's solo runs."""
    ks = [k for k in campaign.sweep.devices if k > 1]
    if not ks or Scenario.OFFLINE.value not in campaign.scenarios or Mode.PERFORMANCE.value not in campaign.modes:
        return []
    if max(ks) > len(chosen):
        raise CampaignError(
            f"{campaign.source}:{campaign.sweep.line}: sweep.devices: {max(ks)} devices at once, but the campaign "
            f"selects only {len(chosen)} ({', '.join(chosen)}); lower it or select more devices")
    out = []
    scenario, mode = Scenario.OFFLINE.value, Mode.PERFORMANCE.value
    for model in campaign.models:
        for variant in model.variants:
            for k in ks:
                name = variant.name + (f"k{k}" if "@" in variant.name else f"@k{k}")
                member = dataclasses.replace(variant, name=name)
                for repeat in range(campaign.repeats):
                    gang = f"{model.name}/{name}/{scenario}/{mode}/r{repeat}"
                    out += [JobSpec(
                        key=f"{device_id}/{gang}", device_id=device_id, model=model.name, variant=member,
                        scenario=scenario, mode=mode, repeat=repeat, dataset=model.dataset or campaign.dataset,
                        profile=campaign.profile, engine=campaign.engine, overrides=campaign.overrides,
                        timeout_s=campaign.timeout_s, power=campaign.power, gang=gang, gang_size=k,
                    ) for device_id in chosen[:k]]
    return out


def expand(campaign: Campaign, devices: Sequence[tuple[str, Sequence[str]]]) -> list[JobSpec]:
    """The campaign's jobs for the selected devices, interleaved by position.

    Job 0 of every device, then job 1 of every device, ...: a scheduler walking the list in order
    starts every device early instead of finishing one device's whole matrix first. A sweep's gangs
    (``gang_jobs``) come last, when every device has done its own jobs.
    """
    chosen = select_devices(campaign, devices)
    per_device = [device_jobs(campaign, d) for d in chosen]
    return [job for position in zip(*per_device, strict=True) for job in position] + gang_jobs(campaign, chosen)


# --- the parser ---------------------------------------------------------------------------------


class _Parser(NodeReader):
    """The campaign schema over the generic node checks."""

    error = CampaignError
    _sweep = Sweep()  # the campaign's sweep, read before its models (variants are swept as they are read)

    # the schema

    def campaign(self, root: Node) -> Campaign:
        keys = self.mapping(root, "", _TOP_KEYS, ("name", "models"), "a mapping of campaign keys")
        v = {k: value for k, (_, value) in keys.items()}
        kw: dict[str, Any] = {"name": self.name(v["name"], "name")}
        if "profile" in v:
            kw["profile"] = self.choice(v["profile"], "profile", PROFILES, "profile")
        if "engine" in v:
            kw["engine"] = self.choice(v["engine"], "engine", ENGINES, "engine")
        if "scenarios" in v:
            kw["scenarios"] = self.string_list(v["scenarios"], "scenarios", "scenarios", self.converted(parse_scenario))
        if "modes" in v:
            kw["modes"] = self.string_list(v["modes"], "modes", "modes", self.converted(parse_mode))
        if "repeats" in v:
            kw["repeats"] = self.integer(v["repeats"], "repeats", 1)
        if "cooldown_s" in v:
            kw["cooldown_s"] = self.number(v["cooldown_s"], "cooldown_s", ge=0)
        if "power" in v:
            kw["power"] = self.string(v["power"], "power")
            try:
                parse_spec(kw["power"])
            except EdgeperfError as exc:
                raise self.fail(v["power"], "power", str(exc)) from None
        if "timeout_s" in v:
            kw["timeout_s"] = self.typed(v["timeout_s"], "timeout_s", _JOB_FIELDS["timeout_s"])
        if "retries" in v:
            kw["retries"] = self.integer(v["retries"], "retries", 0, _JOB_FIELDS["attempt"].le - 1)  # attempts 1..le
        for key in ("dataset", "accuracy_dataset"):
            if key in v:
                kw[key] = self.dataset(v[key], key)
        unlabelled = kw.get("accuracy_dataset") in UNLABELLED_DATASETS
        scored = any(parse_mode(m).scored for m in kw.get("modes", ()))
        if unlabelled and scored:
            raise self.fail(v["accuracy_dataset"], "accuracy_dataset",
                            f"{kw['accuracy_dataset']} has no labels, so accuracy cannot be scored; use fashion-mnist")
        if "corruptions" in v:
            if Mode.ROBUSTNESS.value not in kw.get("modes", ()):
                raise self.fail(v["corruptions"], "corruptions", "applies to robustness runs; add robustness to modes")
            kw["corruptions"] = self.string_list(v["corruptions"], "corruptions", "corruptions", self.corruption)
        if "groups" in v:
            if not scored:
                raise self.fail(v["groups"], "groups", "groups are scored per group in accuracy or robustness runs; add "
                                                       "accuracy or robustness to modes")
            kw["groups"], kw["groups_source"] = self.groups(v["groups"])
        if "overrides" in v:
            kw["overrides"] = self.overrides(v["overrides"], kw.get("profile", "quick"), kw.get("scenarios"))
        if "devices" in keys:
            kw["devices"] = self.devices(v["devices"])
            kw["devices_line"] = keys["devices"][0].start_mark.line + 1
        else:
            kw["devices_line"] = root.start_mark.line + 1
        if "sweep" in v:
            kw["sweep"] = self._sweep = self.sweep(v["sweep"], keys["sweep"][0].start_mark.line + 1, kw, v.get("overrides"))
        kw["models"] = self.models(v["models"])
        return Campaign(source=self.source, **kw)

    def sweep(self, node: Node, line: int, kw: dict[str, Any], overrides: Node | None) -> Sweep:
        """``sweep: {threads: [1, 2, 4], batch_size: [1, 8], devices: [1, 2]}``: each a list of distinct integers
        within the bounds of the field it sets (threads: ``RuntimeOptions``; batch_size: ``RunLength``)."""
        keys = self.mapping(node, "sweep", _SWEEP_KEYS, what="a mapping of threads, batch_size and/or devices lists")
        if not keys:
            raise self.fail(node, "sweep", "give threads, batch_size or devices (each a list of integers)")
        kinds = {"threads": _OPTION_FIELDS["threads"].type, "batch_size": _RUN_LENGTH["batch_size"]}
        out: dict[str, tuple[int, ...]] = {}
        for name, (_, value) in keys.items():
            key = join_key("sweep", name)
            items = [(value, key)] if isinstance(value, ScalarNode) else None
            if isinstance(value, SequenceNode) and value.value:
                items = [(item, join_key(key, i)) for i, item in enumerate(value.value)]
            if not items:
                raise self.fail(value, key, f"expected a non-empty list of integers, got {got(value)}")
            values: list[int] = []
            for item, path in items:
                n = self.typed(item, path, kinds[name]) if name in kinds else self.integer(item, path, 1, MAX_GANG)
                if n in values:
                    raise self.fail(item, path, f"{n} is listed twice")
                values.append(n)
            out[name] = tuple(values)
        if "devices" in out:
            scenarios, modes = kw.get("scenarios", (Scenario.SINGLE_STREAM.value,)), kw.get("modes", (Mode.PERFORMANCE.value,))
            if Scenario.OFFLINE.value not in scenarios or Mode.PERFORMANCE.value not in modes:
                raise self.fail(keys["devices"][0], "sweep.devices", "applies to Offline performance jobs, but the campaign "
                                "runs none; add Offline to scenarios (and performance to modes)")
        if "batch_size" in out and isinstance(overrides, MappingNode):
            for key_node, _ in overrides.value:
                if isinstance(key_node, ScalarNode) and key_node.value == "batch_size":
                    raise self.fail(keys["batch_size"][0], "sweep.batch_size", "conflicts with overrides.batch_size (line "
                                    f"{key_node.start_mark.line + 1}): the sweep sets every job's batch size; remove one")
        return Sweep(out.get("threads", ()), out.get("batch_size", ()), out.get("devices", ()), line)

    def swept(self, variant: Variant) -> list[Variant]:
        """``variant`` once per (threads, batch_size) point of the sweep, named ``name@t2b8``; as it is without one."""
        points = [(t, b) for t in self._sweep.threads or (None,) for b in self._sweep.batch_size or (None,)]
        return [dataclasses.replace(
            variant, name=point_name(variant.name, t, b), batch_size=b if b is not None else variant.batch_size,
            options=variant.options if t is None else msgspec.structs.replace(variant.options, threads=t),
        ) for t, b in points]

    def corruption(self, node: Node, key: str) -> str:
        """A robustness run's corruption as the agent's ``--corruptions`` takes it: ``NAME``, ``NAME:1,3,5`` or ``all``."""
        value = self.string(node, key, "a corruption: NAME or NAME:1,3,5 (docs/datasets.md, 'Robustness')")
        name = value.partition(":")[0].strip()
        family = next((f for f, names in corruptions.FAMILIES.items() if name in names), "image")
        try:
            corruptions.plan([value], family)
        except EdgeperfError as exc:
            problem = str(exc).replace(" in --corruptions", "").replace("--corruptions entry", "entry")
            raise self.fail(node, key, problem) from None
        return value

    def groups(self, node: Node) -> tuple[tuple[str, ...], str]:
        """A groups file (relative to the campaign's folder), read here: the group of each sample up to the last
        one it names (the controller does not know the dataset's size; the agent leaves the rest ungrouped)."""
        text = self.string(node, "groups", "a groups file (docs/datasets.md, 'Groups and fairness')")
        path = Path(text).expanduser()
        path = path if path.is_absolute() else self.base_dir / path
        try:
            read = groups_file.read(path, _JOB_GROUPS)
        except EdgeperfError as exc:
            raise self.fail(node, "groups", str(exc)) from None
        names = list(read.names)
        while names and not names[-1]:
            names.pop()
        return tuple(names), read.source

    def dataset(self, node: Node, key: str) -> str:
        """A dataset by name, or ``KIND:PATH[:N]``: a standard data set at PATH on each device (checked there,
        where the files are; here only its form)."""
        value = self.string(node, key, f"one of: {', '.join(DATASETS)}, or KIND:PATH[:N]")
        if value in DATASETS:
            return value
        try:
            spec = parse_dataset(value, tuple(DATASET_KINDS))
        except EdgeperfError as exc:
            raise self.fail(node, key, str(exc)) from None
        if spec is None:
            raise self.fail(node, key, unknown("dataset", value, DATASETS) + f", or KIND:PATH[:N] with KIND one of: "
                                       f"{', '.join(DATASET_KINDS)} (docs/datasets.md)")
        return value

    def overrides(self, node: Node, profile: str, scenarios: tuple[str, ...] | None) -> RunLength:
        keys = self.mapping(node, "overrides", OVERRIDES, what="a mapping of run-length overrides")
        out: dict[str, Any] = {name: self.typed(value, join_key("overrides", name), _RUN_LENGTH[name])
                               for name, (_, value) in keys.items()}
        # A maximum below the minimum would fail every job on the device; say so here, once.
        if "max_queries" in out and out["max_queries"] < out.get("min_queries", 0):
            raise self.fail(keys["max_queries"][1], "overrides.max_queries",
                            f"{out['max_queries']} is below min_queries ({out['min_queries']})")
        if "max_duration_s" in out:
            for scenario in scenarios or (Scenario.SINGLE_STREAM.value,):
                floor = out.get("min_duration_s", for_profile(profile, Scenario(scenario)).min_duration_ms / 1000)
                if out["max_duration_s"] < floor:
                    whose = "min_duration_s" if "min_duration_s" in out else f"the {profile} profile's minimum for {scenario}"
                    raise self.fail(keys["max_duration_s"][1], "overrides.max_duration_s",
                                    f"{out['max_duration_s']:g} s is below {whose} ({floor:g} s)")
        if "target_qps" in out and Scenario.SERVER.value in (scenarios or ()):  # every Server job would fail on its device
            duration = out.get("min_duration_s", for_profile(profile, Scenario.SERVER).min_duration_ms / 1000)
            try:
                contract.check_server_schedule(out["target_qps"], duration, out.get("max_queries", 0))
            except ValueError as exc:
                raise self.fail(keys["target_qps"][1], "overrides.target_qps", str(exc)) from None
        return self.built(RunLength, out, node, "overrides")

    def built(self, kind: type, values: dict[str, Any], node: Node, key: str) -> Any:
        """The contract's struct from values read here; its own checks (upper bounds) fail at ``node``."""
        try:
            return contract.build(kind, values)
        except contract.ProtocolError as exc:
            raise self.fail(node, key, str(exc)) from None

    def devices(self, node: Node) -> DeviceSelector:
        what = "'all' or a mapping with ids and/or tags"
        if isinstance(node, ScalarNode):
            if self.value(node, "devices") == "all":
                return DeviceSelector(all=True)
            raise self.fail(node, "devices", f"expected {what}, got {got(node)}")
        keys = self.mapping(node, "devices", ("ids", "tags"), what=what)
        if not keys:
            raise self.fail(node, "devices", "give ids, tags or both (or write devices: all)")
        ids = self.string_list(keys["ids"][1], "devices.ids", "device ids", self.device_id) if "ids" in keys else ()
        tags = self.string_list(keys["tags"][1], "devices.tags", "tags", self.string) if "tags" in keys else ()
        return DeviceSelector(all=False, ids=ids, tags=tags)

    def device_id(self, node: Node, key: str) -> str:
        value = self.string(node, key, "a device id")
        try:
            return check_device_id(value)
        except ValueError as exc:
            raise self.fail(node, key, str(exc)) from None

    def models(self, node: Node) -> tuple[ModelSpec, ...]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, "models", f"expected a list of models, got {got(node)}")
        if not node.value:
            raise self.fail(node, "models", "must list at least one model")
        out: list[ModelSpec] = []
        lines: dict[str, int] = {}
        for i, item in enumerate(node.value):
            key = join_key("models", i)
            keys = self.mapping(item, key, _MODEL_KEYS, ("name", "variants"), "a model mapping with name and variants")
            name_node = keys["name"][1]
            name = self.name(name_node, join_key(key, "name"))
            if name in lines:
                raise self.fail(name_node, join_key(key, "name"), f"model {name!r} is listed twice (first at line {lines[name]})")
            lines[name] = name_node.start_mark.line + 1
            dataset = None
            if "dataset" in keys:
                dataset = self.dataset(keys["dataset"][1], join_key(key, "dataset"))
            out.append(ModelSpec(name, self.variants(keys["variants"][1], join_key(key, "variants")), dataset))
        return tuple(out)

    def variants(self, node: Node, key: str) -> tuple[Variant, ...]:
        if not isinstance(node, SequenceNode):
            raise self.fail(node, key, f"expected a list of variants, got {got(node)}")
        if not node.value:
            raise self.fail(node, key, "must list at least one variant")
        out: list[Variant] = []
        lines: dict[str, int] = {}
        for i, item in enumerate(node.value):
            variant, name_node, named = self.variant(item, join_key(key, i))
            path = join_key(join_key(key, i), "name" if named else "artifact")
            if variant.name in lines:
                hint = "" if named else "; give the variants distinct names with name:"
                first = lines[variant.name]
                raise self.fail(name_node, path, f"variant {variant.name!r} is listed twice (first at line {first}){hint}")
            lines[variant.name] = name_node.start_mark.line + 1
            out += self.swept(variant)
        return tuple(out)

    def variant(self, node: Node, key: str) -> tuple[Variant, Node, bool]:
        """The variant, the node its name came from, and whether that was an explicit ``name``."""
        keys = self.mapping(node, key, _VARIANT_KEYS, ("artifact",), "a variant mapping with an artifact")
        v = {k: value for k, (_, value) in keys.items()}
        at = partial(join_key, key)
        for swept in ("threads", "batch_size"):  # the sweep gives every variant its value: one source for it
            if swept in keys and getattr(self._sweep, swept):
                raise self.fail(keys[swept][0], at(swept), f"conflicts with sweep.{swept} (line {self._sweep.line}): the "
                                f"sweep gives every variant its {swept}; remove it here or from the sweep")
        artifact, fmt = self.artifact(v["artifact"], at("artifact"))
        kw: dict[str, Any] = {"artifact": artifact}
        if "name" in v:
            kw["name"], name_node = self.name(v["name"], at("name")), v["name"]
        else:
            kw["name"], name_node = artifact.rstrip("/").rsplit("/", 1)[-1], v["artifact"]
        runtime = next(n for n, (_, _, formats) in RUNTIMES.items() if fmt in formats)
        if "runtime" in v:
            asked = self.string(v["runtime"], at("runtime"))
            name = ALIASES.get(asked.lower(), asked.lower())
            if name != "auto":
                if name not in RUNTIMES:
                    raise self.fail(v["runtime"], at("runtime"), unknown("runtime", asked, tuple(RUNTIMES)))
                if fmt not in RUNTIMES[name][2]:
                    raise self.fail(v["runtime"], at("runtime"),
                                    f"runtime {name} cannot load a {fmt} model ({kw['name']}); use {runtime}")
                kw["runtime"] = runtime = name
        if "batch_size" in v:
            kw["batch_size"] = self.typed(v["batch_size"], at("batch_size"), _RUN_LENGTH["batch_size"])  # a job override
        options: dict[str, Any] = {}
        for option, name in YAML_OPTIONS.items():
            if option not in v:
                continue
            owner = RuntimeOptions.RUNTIME_ONLY.get(_OPTION_FIELDS[name].name)
            if owner and runtime != owner:
                raise self.fail(keys[option][0], at(option), f"applies to {owner} only, but this variant runs on {runtime}")
            reader = {"provider_options": self.provider_options, "shapes": self.shapes, "inputs": self.inputs}.get(name)
            value = v[option]
            options[name] = reader(value, at(option)) if reader else self.typed(value, at(option), _OPTION_FIELDS[name].type)
        kw["options"] = self.built(RuntimeOptions, options, node, key)
        return Variant(**kw), name_node, "name" in v

    def artifact(self, node: Node, key: str) -> tuple[str, str]:
        """The artifact as stored (zoo name, or absolute path) and its model format; it must exist."""
        text = self.string(node, key, "a zoo:<model>/<file> name or a path")
        if text.startswith(zoo.PREFIX):
            try:
                path = zoo.resolve(text).path
            except ModelError as exc:
                raise self.fail(node, key, str(exc)) from None
            stored = text
        else:
            given = Path(text).expanduser()
            path = (given if given.is_absolute() else self.base_dir / given).resolve()
            if not path.exists():
                raise self.fail(node, key, f"model file {text!r} not found (looked for {path})")
            stored = str(path)
        fmt = FORMATS.get(path.suffix.lower())
        if fmt is None:
            suffix = path.suffix or "(no extension)"
            raise self.fail(node, key, f"{path.name}: unknown model type {suffix!r}; use one of: {', '.join(FORMATS)}")
        return stored, fmt

    def provider_options(self, node: Node, key: str) -> dict[str, dict[str, str]]:
        out: dict[str, dict[str, str]] = {}
        for provider, (_, options) in self.free_mapping(node, key, "a mapping of provider -> options").items():
            path = join_key(key, provider)
            entries = self.free_mapping(options, path, "a mapping of option -> value")
            out[provider] = {}
            for option, (_, value) in entries.items():
                if not isinstance(value, ScalarNode) or value.tag == "tag:yaml.org,2002:null":
                    raise self.fail(value, join_key(path, option), f"expected a single value, got {got(value)}")
                out[provider][option] = value.value  # as written: ORT takes option values as strings
        return out

    def inputs(self, node: Node, key: str) -> dict[str, str]:
        """``inputs: {sr: 16000, x: "-1:1", ids: ids.npy}``: what each input is fed, as ``--input`` takes it."""
        out: dict[str, str] = {}
        for name, (_, value) in self.free_mapping(node, key, "a mapping of input name -> VALUE, LOW:HIGH or PATH.npy").items():
            if not isinstance(value, ScalarNode) or value.tag == "tag:yaml.org,2002:null" or not value.value.strip():
                raise self.fail(value, join_key(key, name), f"expected VALUE, LOW:HIGH or PATH.npy, got {got(value)}")
            try:
                out.update(parse_input_overrides([f"{name}={value.value}"]))
            except SettingsError as exc:
                raise self.fail(value, join_key(key, name), str(exc).replace("--input ", "")) from None
        return out

    def shapes(self, node: Node, key: str) -> dict[str, tuple[int, ...]]:
        out: dict[str, tuple[int, ...]] = {}
        for name, (_, value) in self.free_mapping(node, key, "a mapping of input name -> D1xD2x...").items():
            path = join_key(key, name)
            if not isinstance(value, ScalarNode) or value.tag == "tag:yaml.org,2002:null":
                raise self.fail(value, path, f"expected a shape like 1x3x224x224, got {got(value)}")
            try:
                out.update(parse_shape_overrides([f"{name}={value.value}"]))
            except SettingsError:
                problem = f"bad shape {value.value!r}; write D1xD2x... with sizes >= 1, e.g. 1x3x224x224"
                raise self.fail(value, path, problem) from None
            size = _SHAPE.item_type
            if len(out[name]) > _SHAPE.max_length or max(out[name]) > size.le:
                raise self.fail(value, path, f"bad shape {value.value!r}; give at most {_SHAPE.max_length} sizes, "
                                             f"each an integer{bounds(ge=size.ge, le=size.le)}")
        return out
