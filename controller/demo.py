"""The offline demo: the zoo's reference models through the agent's engine on this machine.

It shows, in well under a minute on two cores, what a campaign produces: each model variant in
SingleStream and Offline (performance) and in accuracy mode on real Fashion-MNIST images.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from agent import bench
from agent.runtimes.base import RuntimeOptions
from agent.scenarios.settings import Mode, Scenario, for_profile

MODELS = ("zoo:fashion-mnist-cnn/int8.tflite", "zoo:fashion-mnist-cnn/int8.onnx", "zoo:fashion-mnist-cnn/fp32.onnx")
RUNS = (
    (Scenario.SINGLE_STREAM, Mode.PERFORMANCE, "synthetic"),
    (Scenario.OFFLINE, Mode.PERFORMANCE, "synthetic"),
    (Scenario.SINGLE_STREAM, Mode.ACCURACY, "fashion-mnist"),
)


def requests(threads: int = 1, engine: str = "auto") -> Iterator[bench.BenchRequest]:
    """The demo's job matrix: models × (scenario, mode, dataset), smoke-length runs."""
    for model in MODELS:
        for scenario, mode, dataset in RUNS:
            yield bench.BenchRequest(
                model=model, settings=for_profile("smoke", scenario, mode), options=RuntimeOptions(threads=threads),
                dataset=dataset, engine=engine,
            )


def run(
    threads: int = 1, engine: str = "auto", progress: Callable[[bench.BenchRequest], None] | None = None
) -> list[dict[str, Any]]:
    """Run the matrix and return every result document."""
    results = []
    for request in requests(threads, engine):
        if progress:
            progress(request)
        results.append(bench.run(request))
    return results
