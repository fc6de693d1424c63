"""The reference row: one published MLPerf result (system × benchmark × scenario), typed.

A row is what the results tree said, never re-measured: its headline number is the result line
of the published LoadGen summary, in that summary's own metric (a latency percentile for
SingleStream and MultiStream, samples per second for Offline and Server), or for MLPerf Tiny the
runner's median throughput. Every place that shows
it calls it "published" and names where it came from (``label``), so it can never be read as a
number measured on this controller's devices.
"""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field
from typing import Any

from controller.reference.accuracy import PublishedAccuracy
from controller.reference.summary import Summary

SCHEMA = "edgeperf.reference/1"
STATUS_TEXT = {"available": "available", "preview": "preview", "rdi": "research, development or internal (RDI)"}


def headline(summary: Summary) -> tuple[str, float, str]:
    """(metric, value, unit) of a summary's result line: nanosecond latencies become ms."""
    name = summary.result_field
    if "(ns)" in name:
        metric = re.sub(r"\s*\(ns\)\s*", "", name)
        metric = re.sub(r"^(\d+)(?:\.0+)?th", r"\1th", metric)  # "90.0th" (newer LoadGen) reads as "90th"
        return metric, summary.result_value / 1e6, "ms"
    lowered = name.lower()
    if "per second" in lowered:
        unit = "tokens/s" if "token" in lowered else "queries/s" if "quer" in lowered and "sample" not in lowered else "samples/s"
        return name, summary.result_value, unit
    return name, summary.result_value, ""


@dataclass(frozen=True)
class ReferenceRow:
    """One published result, as imported (``to_dict`` is what the store keeps)."""

    suite: str  # Inference | Tiny: which MLPerf benchmark suite published it
    version: str  # "v4.1"
    division: str  # closed | open | network
    submitter: str
    system: str  # the systems/<system>.json stem, as the results folders name it
    system_name: str
    system_type: str  # edge | datacenter | both, as the system description says ("" if absent)
    status: str  # available | preview | rdi
    accelerator: str
    accelerators: int | None
    host_processor: str
    framework: str
    benchmark: str
    scenario: str
    metric: str  # "90th percentile latency", "Samples per second"
    value: float
    unit: str  # ms | samples/s | inferences/s (Tiny) | tokens/s | queries/s | ""
    result_field: str  # the summary's result line name, as written
    valid: bool
    latency_ms: dict[str, float] = field(default_factory=dict)
    early_stopping_ms: dict[str, float] = field(default_factory=dict)  # percentile ("90", "99") -> estimate
    performance_sample_count: int | None = None
    min_duration_ms: int | None = None
    min_query_count: int | None = None
    sut_name: str | None = None
    accuracy: PublishedAccuracy | None = None
    compliance: dict[str, bool] = field(default_factory=dict)  # TEST01 -> passed, as verify_*.txt said
    energy_mj_per_inference: float | None = None  # MLPerf Tiny's median energy per inference, where published
    source: str = ""  # the scenario folder, relative to the imported tree

    @property
    def key(self) -> tuple[str, ...]:
        """What makes a row the same row when a tree is imported again."""
        return (self.suite, self.version, self.division, self.submitter, self.system, self.benchmark, self.scenario)

    @property
    def label(self) -> str:
        """``published, MLPerf Inference v4.1, NVIDIA, NVIDIA Jetson AGX Orin 64G (TensorRT)``."""
        return f"published, MLPerf {self.suite} {self.version}, {self.submitter}, {self.system_name or self.system}"

    @property
    def verdict(self) -> str:
        return "VALID" if self.valid else "INVALID"

    def compliance_text(self) -> str:
        """``compliance TEST01, TEST04 passed``, ``compliance TEST04 failed`` or that the tree had none."""
        if not self.compliance:
            return "no compliance tests in the tree"
        failed = [t for t, ok in sorted(self.compliance.items()) if not ok]
        if failed:
            return f"compliance {', '.join(failed)} failed"
        return f"compliance {', '.join(sorted(self.compliance))} passed"

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["accuracy"] = None if self.accuracy is None else self.accuracy.to_dict()
        return {"schema": SCHEMA, **out}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> ReferenceRow:
        fields = {k: v for k, v in doc.items() if k in cls.__dataclass_fields__}
        if fields.get("accuracy") is not None:
            fields["accuracy"] = PublishedAccuracy(**fields["accuracy"])
        return cls(**fields)
