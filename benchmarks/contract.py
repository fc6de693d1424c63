"""What the typed contract costs: decode time of a real result, and the idle agent's footprint.

``python benchmarks/contract.py [--before TREE]`` prints, side by side in one run:

1. Decoding real result documents (made here by ``edgeperf-agent bench`` on the zoo's int8
   ONNX model, SingleStream performance and accuracy, smoke profile): plain ``json.loads`` with the old
   field-presence check, msgspec through ``agent.contract`` (types, ranges, lengths checked), and pydantic v2
   models generated from the same schema (the same fields and bounds), in µs per document.
2. Importing ``agent`` and ``agent.daemon`` in a fresh interpreter (wall ms, median of N) and the
   interpreter's RSS after it, for this tree and, with ``--before``, another checkout (the tree
   before the contract landed, say).
3. The idle agent: a real ``edgeperf-agent run`` connected to a mosquitto started here, RSS
   sampled for ``--idle-seconds`` once it has announced itself, for the same trees.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated, Any, Literal

import msgspec
import psutil

ROOT = Path(__file__).resolve().parent.parent
MB = 1 << 20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def real_result(tmp: Path, mode: str) -> bytes:
    out = tmp / f"result-{mode}.json"
    subprocess.run([sys.executable, "-m", "agent.cli", "bench", "zoo:fashion-mnist-cnn/int8.onnx", "--profile", "smoke",
                    "--engine", "native", "--mode", mode, "--json", str(out)], check=True, capture_output=True, cwd=ROOT)
    return out.read_bytes()


def pydantic_type(t: Any, cache: dict[str, Any]) -> Any:
    """A pydantic annotation for a msgspec.inspect type: the same fields and the same bounds."""
    from pydantic import Field, create_model

    mi = msgspec.inspect
    if isinstance(t, mi.Metadata):
        return pydantic_type(t.type, cache)
    if isinstance(t, mi.StructType):
        name = t.cls.__name__
        if name not in cache:
            fields = {}
            for f in t.fields:
                default = ... if f.required else (f.default if f.default is not msgspec.NODEFAULT else None)
                fields[f.name] = (pydantic_type(f.type, cache), Field(default, alias=f.encode_name))
            cache[name] = create_model(name, **fields)
        return cache[name]
    bounds: dict[str, Any] = {}
    for attr, key in (("ge", "ge"), ("le", "le"), ("gt", "gt"), ("lt", "lt"), ("min_length", "min_length"),
                      ("max_length", "max_length"), ("pattern", "pattern")):
        if getattr(t, attr, None) is not None:
            bounds[key] = getattr(t, attr)
    wrap = (lambda base: Annotated[base, Field(**bounds)]) if bounds else (lambda base: base)
    if isinstance(t, mi.IntType):
        return wrap(int)
    if isinstance(t, mi.FloatType):
        return wrap(float)
    if isinstance(t, mi.StrType):
        return wrap(str)
    if isinstance(t, mi.BoolType):
        return bool
    if isinstance(t, mi.NoneType):
        return None
    if isinstance(t, mi.AnyType):
        return Any
    if isinstance(t, mi.LiteralType):
        return Literal[tuple(t.values)]
    if isinstance(t, (mi.ListType, mi.VarTupleType)):
        return wrap(list[pydantic_type(t.item_type, cache)])
    if isinstance(t, mi.TupleType):
        return tuple[tuple(pydantic_type(i, cache) for i in t.item_types)]
    if isinstance(t, mi.DictType):
        return wrap(dict[pydantic_type(t.key_type, cache), pydantic_type(t.value_type, cache)])
    if isinstance(t, mi.UnionType):
        from typing import Union

        return Union[tuple(pydantic_type(i, cache) for i in t.types)]  # noqa: UP007
    if isinstance(t, mi.RawType):
        return Any
    raise TypeError(f"no pydantic mapping for {t!r}")


def per_doc_us(fn: Any, payload: bytes, seconds: float = 1.0) -> float:
    fn(payload)
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        fn(payload)
        n += 1
    return (time.perf_counter() - t0) / n * 1e6


def import_footprint(tree: Path, module: str, runs: int) -> tuple[float, float]:
    """(median wall ms, RSS MB after) of ``import module`` in a fresh interpreter on ``tree``."""
    code = (f"import time, resource; t = time.perf_counter(); import {module}; dt = time.perf_counter() - t; "
            "import psutil; print(dt * 1000, psutil.Process().memory_info().rss)")
    env = dict(os.environ, PYTHONPATH=str(tree))
    walls, rss = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env, cwd=tree)
        ms, size = out.stdout.split()
        walls.append(float(ms))
        rss.append(int(size) / MB)
    return statistics.median(walls), statistics.median(rss)


def idle_agent_rss(tree: Path, seconds: float, tmp: Path) -> tuple[float, float]:
    """(last, max) RSS MB of a real idle ``edgeperf-agent run`` from ``tree``."""
    binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
    port = free_port()
    conf = tmp / f"mosquitto-{port}.conf"
    user = "user root\n" if os.geteuid() == 0 else ""
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\n{user}")
    broker = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    data = Path(tempfile.mkdtemp(dir=tmp))
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "agent.cli", "run", "--broker", f"mqtt://127.0.0.1:{port}", "--device-id", "idle-1",
           "--data-dir", str(data), "--log-level", "info"]
    log = (data / "agent.log").open("wb")
    time.sleep(0.3)
    agent = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tree)
    try:
        deadline = time.monotonic() + 60
        while b"serving" not in (data / "agent.log").read_bytes():
            if agent.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"idle agent from {tree} did not start: {(data / 'agent.log').read_text()[-500:]}")
            time.sleep(0.1)
        time.sleep(2.0)  # its presence (status, info with the device probe) published
        p, samples = psutil.Process(agent.pid), []
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            samples.append(p.memory_info().rss / MB)
            time.sleep(0.5)
        return samples[-1], max(samples)
    finally:
        agent.send_signal(signal.SIGTERM)
        agent.wait(30)
        log.close()
        broker.terminate()
        broker.wait(10)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout to measure beside this one (imports, idle RSS)")
    parser.add_argument("--imports", type=int, default=9, help="fresh interpreters per import measurement")
    parser.add_argument("--idle-seconds", type=float, default=10.0)
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from agent import contract

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        model = pydantic_type(msgspec.inspect.type_info(contract.Result), {})
        for mode in ("performance", "accuracy"):
            payload = real_result(tmp, mode)

            def old(p: bytes) -> None:
                doc = json.loads(p)
                missing = [k for k in ("schema", "run_id", "device", "model", "runtime", "kpis", "valid", "logs") if k not in doc]
                assert not missing

            print(f"decoding one real result ({len(payload):,} bytes, SingleStream {mode}, int8.onnx), µs per document:")
            base = per_doc_us(old, payload)
            for name, fn in (("json.loads + presence check (before)", old),
                             ("msgspec, agent.contract.Result (typed, bounded)", lambda p: contract.decode_body("result", p)),
                             ("pydantic v2, the same schema", model.model_validate_json)):
                us = base if fn is old else per_doc_us(fn, payload)
                print(f"  {name:<50} {us:8.1f} µs  ({us / base:.2f}× json)")
        trees = [("this tree", ROOT)] + ([("before", args.before.resolve())] if args.before else [])
        print(f"import in a fresh interpreter (median of {args.imports}): wall ms, RSS MB after")
        for label, tree in trees:
            for module in ("agent", "agent.daemon"):
                ms, rss = import_footprint(tree, module, args.imports)
                print(f"  {label:<10} import {module:<13} {ms:7.1f} ms  {rss:6.1f} MB")
        for module in ("msgspec", "pydantic"):
            ms, rss = import_footprint(ROOT, module, args.imports)
            print(f"  library    import {module:<13} {ms:7.1f} ms  {rss:6.1f} MB")
        print(f"idle agent (edgeperf-agent run, connected, no job), RSS over {args.idle_seconds:g} s: last / max MB")
        for label, tree in trees:
            last, peak = idle_agent_rss(tree, args.idle_seconds, tmp)
            print(f"  {label:<10} {last:6.1f} / {peak:6.1f} MB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
