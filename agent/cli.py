"""``edgeperf-agent``: benchmark a model on this device, show its facts, list the zoo.

argparse rather than typer/rich: the agent must stay light on a Pi. A user mistake prints one
``edgeperf-agent: error: ...`` line naming the problem and the fix and exits 2; an INVALID run
exits 4 only with ``--strict``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from agent import __version__, capabilities, result, result_text, zoo
from agent.errors import EXIT_INVALID_RUN, EdgeperfError, SettingsError
from agent.scenarios import ENGINES, PROFILES

PROG = "edgeperf-agent"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line, like every other input error."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _provider(text: str) -> tuple[str, dict[str, str]]:
    """``CUDAExecutionProvider:device_id=0,arena_extend_strategy=kSameAsRequested``."""
    name, _, opts = text.partition(":")
    options = {}
    for item in filter(None, opts.split(",")):
        key, sep, value = item.partition("=")
        if not sep:
            raise SettingsError(f"bad provider option {item!r} in --provider {text!r}; write KEY=VALUE")
        options[key] = value
    return name, options


def _bounded(kind: type[int] | type[float], low: float, high: float, unit: str = "") -> Callable[[str], float]:
    """An argparse type for a flag that is not a job option: finite and within [low, high], else argparse's one
    line naming the flag (``nan`` would slip through every comparison, ``inf`` would wait forever)."""
    def parse(text: str) -> float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {'an integer' if kind is int else 'a number'}") from None
        if not (math.isfinite(value) and low <= value <= high):
            raise argparse.ArgumentTypeError(f"{text} is out of range; give {low:g} to {high:g}{unit}")
        return value
    return parse


# ranges of the flags that are not job options (those are bounded by the contract)
_WARMUP = _bounded(int, 0, 100_000)
_IDLE_S = _bounded(float, 0, 3600, " s")  # a job's power_idle_s has the same bound
_GRID = _bounded(float, 0, 2000, " gCO2e/kWh")  # coal-fired power is about 1000
_CELSIUS = _bounded(float, -40, 150, " °C")  # the range silicon is rated for
_WAIT = _bounded(float, 0, 86400, " s")
_SAMPLE_S = _bounded(float, 0.1, 3600, " s")


# the bench flag behind each job-option field, so a refused value is reported under the flag the user typed
FLAGS = {"min_duration_s": "--min-duration", "max_duration_s": "--max-duration", "min_queries": "--min-queries",
         "max_queries": "--max-queries", "target_qps": "--target-qps", "target_latency_ms": "--target-latency-ms",
         "batch_size": "--batch-size", "threads": "--threads", "providers": "--provider", "provider_options": "--provider",
         "optimization": "--optimization", "delegates": "--delegate", "compute_units": "--compute-units", "shapes": "--shape",
         "inputs": "--input"}


def _flag_error(problem: str) -> str:
    """The contract's ``Expected int >= 1 - at $.threads`` as ``--threads: expected int >= 1``."""
    text, _, where = problem.partition(" - at $.")
    flag = FLAGS.get(where.split(".")[0].split("[")[0])
    if not flag:  # a check across fields names them: "max_duration_s (1) is below min_duration_s (5)"
        return re.sub(r"\b[a-z_]+\b", lambda m: FLAGS.get(m.group(), m.group()), text) + " (see --help)"
    return f"{flag}: {text[:1].lower()}{text[1:]} (see --help)"


def _serve_options(parser: argparse.ArgumentParser, default_id: str = "hostname") -> None:
    """The options of a process that serves jobs from the fleet: an agent (``run``) or a phone's bridge (``android``)."""
    parser.add_argument("--config", type=Path, metavar="TOML", help="agent.toml ([agent] table); flags and EDGEPERF_* win")
    parser.add_argument("--broker", help="mqtt[s]://[user@]host[:port] (password: EDGEPERF_PASSWORD or the TOML file)")
    parser.add_argument("--device-id", help=f"this device's id (default: {default_id})")
    parser.add_argument("--tag", dest="tags", action="append", default=[], help="a tag campaigns can select by (repeat)")
    parser.add_argument("--data-dir", type=Path, help="outbox and artifact cache (one per agent on a shared host)")
    parser.add_argument("--username", help="broker user name")
    parser.add_argument("--ca-file", type=Path, help="CA bundle for mqtts://")
    parser.add_argument("--cert-file", type=Path, help="client certificate for mutual TLS")
    parser.add_argument("--key-file", type=Path, help="client key for mutual TLS")
    parser.add_argument("--mqtt-version", help="3.1.1 (default) or 5")
    parser.add_argument("--prefix", help="topic prefix (default edgeperf/v1)")
    parser.add_argument("--threads", type=int, help="runtime threads for jobs that do not set them")
    parser.add_argument("--artifact-origin", dest="artifact_origins", action="append", default=[], metavar="URL",
                         help="scheme://host[:port] jobs may download models from (repeat; default: the broker's host)")
    parser.add_argument("--max-artifact-bytes", type=int, metavar="N", help="refuse models larger than N bytes (default 2 GiB)")
    parser.add_argument("--fleet-key-file", type=Path, metavar="PATH",
                         help="the controller's fleet key, which signs every message (default ~/.local/share/edgeperf/"
                              "fleet.key, created on first use)")
    parser.add_argument("--max-packet-bytes", type=int, metavar="N",
                         help="the broker's packet limit for MQTT 3.1.1 (mosquitto max_packet_size); MQTT 5 brokers announce it")
    parser.add_argument("--heartbeat-s", type=float, metavar="S", help="re-publish status every S seconds (default 10)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog=PROG, description="Benchmark models on this device under MLPerf LoadGen rules.")
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    bench = sub.add_parser("bench", help="benchmark one model file or zoo:<model>/<file>")
    bench.add_argument("model", nargs="?", help="path to a .tflite/.onnx/.mlpackage file, or zoo:<model>/<file>")
    bench.add_argument("--from", dest="from_result", type=Path, metavar="RESULT.json",
                       help="run again what a result records (its reproduce line; output flags may be added)")
    run = bench.add_argument_group("run")
    run.add_argument("--scenario", default="SingleStream", help="SingleStream | MultiStream | Server | Offline")
    run.add_argument("--mode", default="performance", help="performance | accuracy | robustness (accuracy, then top-1 "
                                                           "under common corruptions; docs/datasets.md#robustness)")
    run.add_argument("--corruptions", action="append", default=[], metavar="LIST",
                     help="robustness: comma/space-separated NAME or NAME:1,3,5 (severities), e.g. 'gaussian_noise:1,5 "
                          "contrast' (default: all of the dataset's family, severities 1-5)")
    run.add_argument("--profile", default="quick", help=" | ".join(PROFILES))
    run.add_argument("--engine", default="auto",
                     help=" | ".join(ENGINES) + " (auto: loadgen if installed and its query pool fits the memory)")
    run.add_argument("--dataset", default=None, help="synthetic | fashion-mnist[:subset|:full] | a folder of .npy files | "
                                                      "KIND:PATH[:N], KIND imagenet, coco, vww, cifar10, speech-commands, "
                                                      "toycar (default: synthetic; fashion-mnist in accuracy/robustness mode)")
    run.add_argument("--preprocess", metavar="ID", help="preprocessing of a KIND:PATH dataset, e.g. imagenet-vgg, "
                                                        "imagenet-mobilenet (default: the zoo model's, else the kind's)")
    run.add_argument("--inputs-cache", type=Path, metavar="DIR", help="keep KIND:PATH datasets preprocessed in DIR, so "
                                                                      "later runs skip decoding")
    run.add_argument("--groups", type=Path, metavar="FILE", help="accuracy/robustness: each sample's group of inputs "
                                                                 "(index,group CSV/TSV, one per line, or JSON), scored "
                                                                 "per group for fairness (docs/datasets.md)")
    run.add_argument("--min-duration", type=float, metavar="S", help="override the profile's minimum duration")
    run.add_argument("--max-duration", type=float, metavar="S", help="end the run after S seconds (native engine: exactly)")
    run.add_argument("--min-queries", type=int, metavar="N", help="override the profile's minimum query count")
    run.add_argument("--max-queries", type=int, metavar="N", help="stop after N queries")
    run.add_argument("--target-qps", type=float, metavar="QPS", help="Server arrival rate, run as given (default: the highest "
                                                                    "rate that meets the latency bound, searched for)")
    run.add_argument("--target-latency-ms", type=float, metavar="MS", help="Server latency bound (default: derived from the "
                                                                          "model's SingleStream p99 here; docs/engines.md)")
    run.add_argument("--batch-size", type=int, help="samples per runtime call for Offline/MultiStream (free batch dim)")
    run.add_argument("--warmup", type=_WARMUP, default=20, metavar="N", help="untimed runs before measuring (default 20)")
    rt = bench.add_argument_group("runtime")
    rt.add_argument("--runtime", help="litert | onnxruntime | coreml (default: from the file type)")
    rt.add_argument("--threads", type=int, help="runtime threads (LiteRT num_threads, ORT intra-op; default: one per CPU)")
    rt.add_argument("--provider", action="append", default=[], metavar="EP[:K=V,...]",
                    help="ORT execution provider, repeat in priority order")
    rt.add_argument("--optimization", default="all", help="ORT graph optimisation: disable | basic | extended | all")
    rt.add_argument("--no-xnnpack", action="store_true", help="LiteRT: run without the default XNNPACK delegate")
    rt.add_argument("--delegate", action="append", default=[], metavar="LIB", help="LiteRT external delegate library")
    rt.add_argument("--compute-units", default="all", help="Core ML: all | cpu_only | cpu_and_gpu | cpu_and_ne")
    rt.add_argument("--shape", action="append", default=[], metavar="NAME=D1xD2..", help="size dynamic input dimensions")
    rt.add_argument("--input", action="append", default=[], metavar="NAME=VALUE|LOW:HIGH|PATH.npy",
                    help="feed an input a constant, a uniform range or a file's values (strings: PATH.txt); repeat per input")
    energy = bench.add_argument_group("energy and thermals")
    energy.add_argument("--power", metavar="SOURCE", help="ina219[:bus=1,addr=0x40,shunt=0.1] | serial:/dev/ttyACM0 | jtop | "
                                                           "nvml | rapl | battery | estimate | auto (see 'power list')")
    energy.add_argument("--idle-seconds", type=_IDLE_S, default=2.0, metavar="S", help="idle baseline before the run (default 2)")
    energy.add_argument("--grid-intensity", type=_GRID, metavar="G", help="grid gCO2e per kWh (default 475, world average)")
    energy.add_argument("--cooldown-below", type=_CELSIUS, metavar="C", help="first wait until the hottest sensor is below C °C")
    energy.add_argument("--cooldown-timeout", type=_WAIT, default=300.0, metavar="S", help="longest cooldown wait (default 300)")
    out = bench.add_argument_group("output")
    out.add_argument("--json", type=Path, metavar="PATH", help="write the result document here")
    out.add_argument("--log-dir", type=Path, metavar="DIR", help="keep LoadGen logs under DIR/<run id>")
    out.add_argument("--device-id", help="device id in the result (default: hostname)")
    out.add_argument("--strict", action="store_true", help="exit 4 when the run is INVALID")

    _serve_options(sub.add_parser("run", help="serve benchmark jobs from a controller over MQTT"))

    android = sub.add_parser("android", help="put an Android phone on the fleet over adb, or 'android fetch' a phone tool")
    android.add_argument("action", nargs="?", choices=["serve", "fetch"], default="serve",
                         help="serve (default): be the phone's agent; fetch NAME URL: download a phone tool, pinned by sha256")
    android.add_argument("names", nargs="*", metavar="NAME URL", help="for fetch: the tool's name and its download URL")
    android.add_argument("--serial", help="the phone's adb serial (adb devices), or HOST:PORT for adb over TCP")
    android.add_argument("--adb", default="adb", metavar="PATH", help="the adb client (default: adb on PATH)")
    android.add_argument("--tools", type=Path, metavar="DIR",
                         help="host folder with the Android builds of benchmark_model / onnxruntime_perf_test (pushed)")
    android.add_argument("--phone-tools", metavar="DIR", help="folder on the phone that already holds the tools")
    android.add_argument("--sha256", help="for fetch: the tool's sha256, from its release")
    android.add_argument("--version", dest="tool_version", default="unknown", help="for fetch: the tool's version")
    android.add_argument("--to", type=Path, metavar="DIR", help="for fetch: the tools folder to put it in")
    _serve_options(android, default_id="android-SERIAL")

    power_cmd = sub.add_parser("power", help="power sources on this device")
    power_sub = power_cmd.add_subparsers(dest="power_command", required=True, parser_class=_Parser)
    listing = power_sub.add_parser("list", help="which sources this device has, and which 'auto' picks")
    listing.add_argument("--json", action="store_true", help="print JSON")
    sampling = power_sub.add_parser("sample", help="live readings from one source, then rate and statistics")
    sampling.add_argument("--source", default="auto", help="a --power spec (default auto)")
    sampling.add_argument("--seconds", type=_SAMPLE_S, default=5.0, help="how long to sample (default 5)")

    info = sub.add_parser("info", help="the device facts and runtimes a result will carry")
    info.add_argument("--json", action="store_true", help="print JSON")
    # 'zoo' alone lists; 'zoo fetch NAME..' downloads. A positional action, not sub-commands: 'edgeperf-agent zoo' stays a command
    zoo_cmd = sub.add_parser("zoo", help="list the reference models, or 'zoo fetch NAME..' to download remote ones")
    zoo_cmd.add_argument("action", nargs="?", choices=["list", "fetch"], default="list", help="list (default) | fetch")
    zoo_cmd.add_argument("names", nargs="*", metavar="NAME", help="fetch: a model, or MODEL/FILE (as the listing names them)")
    zoo_cmd.add_argument("--json", action="store_true", help="list: print JSON")
    zoo_cmd.add_argument("--url-base", metavar="URL", help="fetch: from a mirror serving URL/<sha256>/<file> (a zoo cache "
                                                           "behind any static web server) instead of the published URLs")
    zoo_cmd.add_argument("--timeout", type=_bounded(float, 1, 3600, " s"), metavar="S",
                         help="fetch: give up on a server silent for S seconds (default 60)")
    return parser


_OUTPUT_FLAGS = ("json", "log_dir", "device_id", "strict")  # what --from takes from the command line; the rest is the result's


def _replayed(args: argparse.Namespace) -> argparse.Namespace:
    """``bench --from result.json``: the recorded arguments with this command's output flags; else ``args``."""
    from agent import reproduce

    if args.from_result is None:
        if args.model is None:
            raise SettingsError("bench needs a model: a .tflite/.onnx/.mlpackage path, zoo:<model>/<file>, or --from RESULT.json")
        return args
    defaults = vars(build_parser().parse_args(["bench"]))
    extra = [k for k, v in vars(args).items() if k not in (*_OUTPUT_FLAGS, "from_result") and v != defaults[k]]
    if extra:
        flag = "a model" if extra[0] == "model" else "--" + extra[0].replace("_", "-")
        raise SettingsError(f"--from re-runs what the result records, so {flag} cannot be given with it; drop it, "
                            "or run the result's reproduce command with the change")
    again = build_parser().parse_args(["bench", *reproduce.recorded_argv(args.from_result)])
    for name in _OUTPUT_FLAGS:
        setattr(again, name, getattr(args, name))
    return again


def _bench(args: argparse.Namespace) -> int:
    from agent import bench, contract
    from agent.datasets.input_values import parse_input_overrides
    from agent.energy_meter import DEFAULT_GRID_G_PER_KWH, PowerPlan
    from agent.jobs import settings_for
    from agent.runtimes.shapes import parse_shape_overrides
    from agent.threads import check_threads

    args = _replayed(args)
    providers = [_provider(p) for p in args.provider]
    try:  # the flags fill the same job options a campaign and a fleet job do, checked the same way
        run = contract.build(contract.RunLength, {
            "min_duration_s": args.min_duration, "max_duration_s": args.max_duration, "min_queries": args.min_queries,
            "max_queries": args.max_queries, "target_qps": args.target_qps, "target_latency_ms": args.target_latency_ms,
            "batch_size": args.batch_size,
        })
        options = contract.build(contract.RuntimeOptions, {
            "threads": args.threads, "providers": [name for name, _ in providers],
            "provider_options": {name: opts for name, opts in providers if opts}, "optimization": args.optimization,
            "xnnpack": not args.no_xnnpack, "delegates": args.delegate, "compute_units": args.compute_units,
            "shapes": parse_shape_overrides(args.shape), "inputs": parse_input_overrides(args.input),
        })
    except contract.ProtocolError as exc:
        raise SettingsError(_flag_error(str(exc))) from None
    check_threads(options.threads, "--threads")
    try:
        settings = settings_for(args.profile, args.scenario, args.mode, run)
    except SettingsError as exc:  # named by job field: say the flags
        raise SettingsError(_flag_error(str(exc)).removesuffix(" (see --help)")) from None
    dataset = args.dataset or ("fashion-mnist" if settings.mode.scored else "synthetic")
    corruption_entries = _corruption_entries(args.corruptions, settings.mode.value)
    _check_groups(args.groups, settings.mode.scored)
    plan = None
    if args.power:
        grid = DEFAULT_GRID_G_PER_KWH if args.grid_intensity is None else args.grid_intensity
        plan = PowerPlan(args.power, args.idle_seconds, grid)
    request = bench.BenchRequest(
        model=args.model, settings=settings, runtime=args.runtime, options=options, dataset=dataset,
        preprocess=args.preprocess, inputs_cache=args.inputs_cache, groups_file=args.groups, corruptions=corruption_entries,
        engine=args.engine, warmup_runs=args.warmup, device_id=args.device_id, log_dir=args.log_dir, power=plan,
        cooldown_below_c=args.cooldown_below, cooldown_timeout_s=args.cooldown_timeout,
    )
    _check_outputs(args.json, args.log_dir)
    doc = bench.run(request)
    if args.json:
        try:
            result.write(doc, args.json)
        except OSError as exc:
            raise SettingsError(f"cannot write --json {args.json}: {exc.strerror}") from None
    print(result_text.render(doc), end="")
    return EXIT_INVALID_RUN if args.strict and not doc["valid"] else 0


def _check_groups(path: Path | None, scored: bool) -> None:
    """``--groups`` belongs to a scored run, and its file must be there before anything is loaded."""
    from agent import groups

    if path is None:
        return
    if not scored:
        raise SettingsError(f"--groups {path} scores accuracy per group, so it needs --mode accuracy or --mode robustness; "
                            "add the mode, or drop --groups")
    groups.check_file(path)


def _corruption_entries(given: list[str], mode: str) -> tuple[str, ...]:
    """``--corruptions`` as plan entries (``agent.corruptions.plan`` checks them against the dataset); a usage
    error outside robustness mode."""
    if not given:
        return ()
    if mode != "robustness":
        raise SettingsError(f"--corruptions applies to --mode robustness, but the mode is {mode}; add --mode robustness "
                            "or drop --corruptions")
    from agent.corruptions import split_entries

    return tuple(entry for text in given for entry in split_entries(text))


def _check_outputs(json_path: Path | None, log_dir: Path | None) -> None:
    """Refuse a --json or --log-dir that cannot be written before the run, not after minutes of measuring."""
    if json_path is not None and (json_path.is_dir() or not json_path.parent.is_dir()):
        problem = "is a folder" if json_path.is_dir() else f"is in {json_path.parent}, which does not exist"
        raise SettingsError(f"--json {json_path} {problem}; give a file in an existing folder")
    if json_path is not None and not os.access(json_path.parent, os.W_OK):
        raise SettingsError(f"--json {json_path} is in {json_path.parent}, which is not writable; give a file in a "
                            "folder you can write")
    _check_folder(log_dir, "--log-dir")


def _check_folder(folder: Path | None, flag: str) -> None:
    """A folder made when missing (``--log-dir``, ``--data-dir``): nothing on its way may be a file and
    where it is made must be writable, said before the agent starts, not as a traceback once it runs."""
    if folder is None:
        return
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        where = "is a file" if existing == folder else f"is under {existing}, which is a file"
        raise SettingsError(f"{flag} {folder} {where}; give a folder (it is created if missing)")
    if not os.access(existing, os.W_OK):
        raise SettingsError(f"{flag} {folder}: {existing} is not writable; give a folder you can write")


def run_command(broker_url: str, device_id: str, data_dir: Path, *flags: str) -> list[str]:
    """argv for ``edgeperf-agent run`` under this Python: how the demo and the tests start agents."""
    return [sys.executable, "-m", "agent.cli", "run", "--broker", broker_url, "--device-id", device_id,
            "--data-dir", str(data_dir), *flags]


def _run(args: argparse.Namespace) -> int:
    import logging

    from agent import config, daemon

    _check_folder(args.data_dir, "--data-dir")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = {k: v for k, v in vars(args).items() if k in config.FIELDS}  # every run flag is named like its setting
    return daemon.serve(config.load(flags, os.environ, args.config))


def _android(args: argparse.Namespace) -> int:
    """Serve a phone on the fleet (``agent.android.bridge``), or fetch a phone tool pinned by its sha256."""
    import logging
    import re

    from agent import config
    from agent.android import bridge, tools

    if args.action == "fetch":
        if len(args.names) != 2 or not args.sha256 or args.to is None:
            raise SettingsError("android fetch needs the tool's name, its URL, --sha256 and --to: edgeperf-agent android fetch "
                                "benchmark_model URL --sha256 HEX --to DIR [--version V]")
        path = tools.fetch(args.names[0], args.names[1], args.sha256, args.to, args.tool_version)
        print(f"{args.names[0]}  fetched  {path}")
        return 0
    if args.names:
        raise SettingsError(f"'android' serves a phone and takes no {args.names[0]!r}; 'android fetch NAME URL' downloads a tool")
    if not args.serial:
        raise SettingsError("android needs --serial SERIAL: the phone's serial as 'adb devices' lists it (HOST:PORT for adb "
                            "over TCP)")
    if args.tools is not None and args.phone_tools is not None:
        raise SettingsError("give --tools (a host folder the bridge pushes) or --phone-tools (a folder on the phone), not both")
    if args.tools is not None and not args.tools.is_dir():
        raise SettingsError(f"--tools {args.tools}: no such folder; make it and put the phone's tools in it (docs/phones.md)")
    _check_folder(args.data_dir, "--data-dir")
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    flags = {k: v for k, v in vars(args).items() if k in config.FIELDS}
    if not flags.get("device_id") and not os.environ.get("EDGEPERF_DEVICE_ID"):
        flags["device_id"] = "android-" + re.sub(r"[^A-Za-z0-9._:-]", "-", args.serial)[:56]
    link = bridge.PhoneLink(args.serial, args.adb, tools.Toolbox(args.tools, args.phone_tools))
    return bridge.serve(config.load(flags, os.environ, args.config), link)


def _power(args: argparse.Namespace) -> int:
    from agent import power_cli

    if args.power_command == "list":
        return power_cli.list_sources(args.json)
    return power_cli.sample(args.source, args.seconds)


def _info(args: argparse.Namespace) -> int:
    from devices import probe

    facts = probe.collect()
    installed = capabilities.installed()
    if args.json:
        print(json.dumps({"facts": facts, "installed": installed}, indent=2))
        return 0
    rows = list(facts.items()) + [(f"{name} (installed)", version or "no") for name, version in installed.items()]
    print(result_text.table(rows), end="")
    return 0


def _zoo(args: argparse.Namespace) -> int:
    from agent.zoo import listing

    if args.action == "fetch":
        return _zoo_fetch(args)
    given = {"a model name": args.names, "--url-base": args.url_base, "--timeout": args.timeout}
    misplaced = next((what for what, value in given.items() if value), None)
    if misplaced:
        raise SettingsError(f"'zoo' lists every model, so {misplaced} belongs to 'zoo fetch'; run edgeperf-agent zoo fetch NAME")
    print(json.dumps(listing.as_json(), indent=2) if args.json else listing.render(), end="\n" if args.json else "")
    return 0


def _zoo_fetch(args: argparse.Namespace) -> int:
    """Fetch every named file; one error line per file that fails, and exit 0 only if all are present and verified."""
    from agent.zoo import fetch

    if not args.names:
        raise SettingsError("zoo fetch needs a model name (or MODEL/FILE); 'edgeperf-agent zoo' lists them")
    if args.json:
        raise SettingsError("--json belongs to the listing ('edgeperf-agent zoo --json'); zoo fetch prints one line per file")
    fetch.check_url_base(args.url_base)
    entries = fetch.targets(args.names)  # every unknown name in one line, before anything is downloaded
    progress, code = fetch.ProgressPrinter(sys.stderr), 0
    for entry in entries:
        try:
            done = fetch.fetch_entry(entry, progress, args.url_base, args.timeout or fetch.DEFAULT_TIMEOUT_S)
        except fetch.FetchError as exc:
            progress.end_line()
            print(f"{PROG}: error: {exc}", file=sys.stderr)
            code = code or exc.exit_code
            continue
        print(f"{zoo.PREFIX}{entry.name}  {done.action}  {done.path}")
    return code


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        commands = {"bench": _bench, "run": _run, "android": _android, "power": _power, "info": _info, "zoo": _zoo}
        return commands[args.command](args)
    except EdgeperfError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
