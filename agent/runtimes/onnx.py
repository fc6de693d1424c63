"""ONNX Runtime sessions: execution providers in priority order, threads, optimisation level.

A provider the user asks for but ORT does not have is an error, never a silent fall-back to
CPU: the point of the run is usually that provider. Registered is not ran: a provider takes only
the nodes it supports and the CPU provider the rest, so the label comes from ORT's record of which
provider took how many nodes of the optimised graph.
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from agent.contract import RuntimeOptions
from agent.errors import ModelError, PlatformUnsupported, RuntimeMissing, SettingsError
from agent.runtimes import precision
from agent.runtimes.base import SessionInfo, TensorSpec
from agent.runtimes.shapes import unknown_overrides

_ORT_TYPES = {
    "tensor(float)": "float32", "tensor(float16)": "float16", "tensor(double)": "float64",
    "tensor(int8)": "int8", "tensor(uint8)": "uint8", "tensor(int16)": "int16",
    "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(bool)": "bool", "tensor(string)": "string",
}
OPT_LEVELS = {
    "disable": "ORT_DISABLE_ALL", "basic": "ORT_ENABLE_BASIC", "extended": "ORT_ENABLE_EXTENDED", "all": "ORT_ENABLE_ALL",
}
# ONNX TensorProto data types of weights.
_ONNX_WEIGHT_TYPES = {1: "float32", 10: "float16", 3: "int8", 2: "uint8", 22: "int4", 21: "uint4"}
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}


def _ort():
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeMissing("ONNX Runtime is not installed: pip install 'edgeperf[onnx]'") from None
    return onnxruntime


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) else (d or None) for d in arg.shape)
    return TensorSpec(name=arg.name, shape=shape, dtype=_ORT_TYPES.get(arg.type, arg.type))


def _graphs(graph: Any) -> Iterator[Any]:
    """``graph`` and every subgraph under it (If branches, Loop and Scan bodies), depth first: a model
    can keep all its weights inside them (a voice-activity model with one branch per sample rate)."""
    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.HasField("g"):
                yield from _graphs(attr.g)
            for sub in attr.graphs:
                yield from _graphs(sub)


def graph_census(path: Path) -> tuple[str, int | None]:
    """Precision and parameter count read from the graph and its subgraphs (needs ``onnx``).

    Scales and zero points of QuantizeLinear/DequantizeLinear are bookkeeping, not parameters.
    """
    try:
        import onnx
    except ImportError:
        return "unknown", None
    graphs = list(_graphs(onnx.load(str(path), load_external_data=False).graph))
    inits = {i.name: i for g in graphs for i in g.initializer}
    nodes = [n for g in graphs for n in g.node]
    qdq_params = {name for n in nodes if n.op_type in _QDQ_OPS for name in n.input[1:]}
    quantised_activations = any(
        (n.op_type == "QuantizeLinear" and n.input[0] not in inits) or n.op_type.startswith("QLinear")
        for n in nodes
    )
    weights, params = [], 0
    for g in graphs:  # per graph: two subgraphs may reuse an initializer's name
        for init in g.initializer:
            if init.name in qdq_params:
                continue
            size = int(np.prod(init.dims)) if init.dims else 1
            if init.data_type in _ONNX_WEIGHT_TYPES and size > 1:
                weights.append(_ONNX_WEIGHT_TYPES[init.data_type])
            if init.data_type in _ONNX_WEIGHT_TYPES or init.data_type == 6:  # 6: int32 (quantised bias)
                params += size
    return precision.classify(weights, quantised_activations), params


def preload() -> None:
    """Import ONNX Runtime and ``onnx`` (about 1 s on a small CPU) before load time is measured."""
    _ort()
    with contextlib.suppress(ImportError):  # only the census needs it
        import onnx  # noqa: F401


def _placement(sess: Any) -> dict[str, int] | None:
    """Nodes of the optimised graph each execution provider took, from ORT's own record of the
    partitioning (``session.record_ep_graph_assignment_info``); None where this ORT cannot say."""
    try:
        subgraphs = sess.get_provider_graph_assignment_info()
    except Exception:  # AttributeError: an ORT without the API; ORT's own Fail class: nothing recorded
        return None
    counts: dict[str, int] = {}
    for subgraph in subgraphs:
        counts[subgraph.ep_name] = counts.get(subgraph.ep_name, 0) + len(subgraph.get_nodes())
    return counts


def _accelerator(registered: list[str], placement: dict[str, int] | None) -> str:
    """The label: the providers that ran nodes, with "N of M nodes" where more than one did. Without a
    placement record only a lone CPU provider is known to have run everything; else "(requested)"."""
    if placement is None:
        return registered[0] if registered == ["CPUExecutionProvider"] else f"{registered[0]} (requested)"
    ran = [ep for ep in registered if placement.get(ep)] or registered[-1:]  # a graph of no nodes: the fallback
    if len(ran) == 1:
        return ran[0]
    total = sum(placement.values())
    return ", ".join(f"{ep} {placement[ep]} of {total} nodes" for ep in ran)


class OnnxSession:
    """One ``InferenceSession`` with the providers, threads and optimisation level asked for."""

    def __init__(self, path: Path, options: RuntimeOptions) -> None:
        ort = _ort()
        available = ort.get_available_providers()
        providers = list(options.providers) or ["CPUExecutionProvider"]
        missing = [p for p in providers if p not in available]
        if missing:
            raise SettingsError(
                f"ONNX Runtime here has no {', '.join(missing)}; available: {', '.join(available)} "
                "(GPU providers need onnxruntime-gpu: pip install 'edgeperf[onnx-gpu]')"
            )
        if options.optimization_level not in OPT_LEVELS:
            raise SettingsError(f"unknown --optimization {options.optimization_level!r}; use {', '.join(OPT_LEVELS)}")
        so = ort.SessionOptions()
        if options.threads is not None:
            so.intra_op_num_threads = options.threads
            so.inter_op_num_threads = 1
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[options.optimization_level])
        so.log_severity_level = 3
        so.add_session_config_entry("session.record_ep_graph_assignment_info", "1")  # node placement, below
        provider_args = [(p, options.provider_options.get(p, {})) for p in providers]
        try:
            t0 = time.perf_counter_ns()
            self._sess = ort.InferenceSession(str(path), so, providers=provider_args)
            load_ms = (time.perf_counter_ns() - t0) / 1e6
        except Exception as exc:  # ORT raises its own pybind classes (InvalidProtobuf, Fail, EPFail, ...)
            first = str(exc).strip().splitlines()[0]
            if type(exc).__name__ in ("InvalidProtobuf", "InvalidGraph", "NoModel", "InvalidArgument"):
                raise ModelError(f"{path} is not a loadable ONNX model ({first}); re-export or re-copy it") from None
            locale = re.search(r"Failed to construct locale with name:\s*([\w.@-]+)", str(exc))
            if locale:  # StringNormalizer's locale (en_US.UTF-8 by default), absent from slim Linux images
                name = locale[1]
                raise PlatformUnsupported(
                    f"{path} needs the {name} locale (its StringNormalizer), which this system lacks; generate it: "
                    f"localedef -i {name.partition('.')[0]} -f {name.partition('.')[2] or 'UTF-8'} {name} "
                    "(Debian: package locales; or into a folder named by LOCPATH)"
                ) from None
            raise ModelError(
                f"ONNX Runtime could not create a session for {path} with {', '.join(providers)} ({first}); "
                "if the file is sound, try another execution provider"
            ) from None

        declared = tuple(_spec(a) for a in self._sess.get_inputs())
        unknown_overrides(declared, options.shapes)
        self._out_names = [o.name for o in self._sess.get_outputs()]
        self._quiet = ort.RunOptions()  # a failed inference is reported once, by the SUT, not also logged by ORT
        self._quiet.log_severity_level = 4
        model_precision, params = graph_census(path)
        used = self._sess.get_providers()
        placement = _placement(self._sess)
        self.info = SessionInfo(
            runtime="onnxruntime",
            version=ort.__version__,
            accelerator=_accelerator(used, placement),
            threads=options.threads,
            inputs=declared,
            outputs=tuple(_spec(a) for a in self._sess.get_outputs()),
            precision=model_precision,
            parameters=params,
            details={"providers": used, "optimization_level": options.optimization_level, "node_placement": placement},
            load_ms=load_ms,
            metadata=dict(self._sess.get_modelmeta().custom_metadata_map),  # parsed with the model already
        )
        self._batchable = all(s.shape and not isinstance(s.shape[0], int) for s in declared)

    @property
    def batchable(self) -> bool:
        return self._batchable

    def run(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        return self._sess.run(self._out_names, feeds, self._quiet)
