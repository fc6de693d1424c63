"""Shared fixtures: the zoo's real model files and small real ONNX models built for a test."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ZOO = Path(__file__).resolve().parent.parent / "agent" / "zoo" / "fashion-mnist-cnn"

# Bytecode is cached for the test session even where the environment sets PYTHONDONTWRITEBYTECODE (container
# images often do): the suite starts hundreds of agent and controller processes, each of which would otherwise
# compile the project's modules from source again, and every xdist worker would redo pytest's assertion
# rewriting. Measured on tests/test_cli.py + tests/test_inputs.py: 55 s of CPU without the cache, 40 s with it.
# The .pyc files land in the checkout's (git-ignored) __pycache__ folders. Set here, before xdist starts its
# workers, so they and every process a test starts inherit it.
os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
sys.dont_write_bytecode = False


def pytest_xdist_auto_num_workers(config: pytest.Config) -> int:
    """``-n auto``: twice as many workers as CPUs. Much of the suite waits (brokers, agents, faults
    held for 30–45 s), and a worker that waits leaves its CPU to the others."""
    return max(2, len(os.sched_getaffinity(0)) * 2)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Files holding a ``slow`` test first, each file's tests in their own order. pytest-xdist (``--dist loadfile
    --no-loadscope-reorder``, see pyproject.toml) hands out whole files in this order: the long files start at
    once and the many short ones fill the workers around them, instead of a long file starting last and
    running alone at the end."""
    slow_files = {item.path for item in items if item.get_closest_marker("slow")}
    items.sort(key=lambda item: item.path not in slow_files)


@pytest.fixture(scope="session", autouse=True)
def _one_fleet_key(tmp_path_factory):
    """One fleet key for the session's controllers and agents, module-scoped agents included (they start
    before any test's own data directory is set)."""
    from agent import fleet_key

    key_file = tmp_path_factory.mktemp("fleet") / "fleet.key"
    fleet_key.generate(key_file)
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("EDGEPERF_FLEET_KEY_FILE", str(key_file))
        yield


@pytest.fixture(autouse=True)
def _own_data_dir(tmp_path_factory, monkeypatch):
    """Keep LoadGen logs of test runs out of the user's data directory."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path_factory.mktemp("xdg")))


@pytest.fixture(scope="session")
def zoo_dir() -> Path:
    return ZOO


def save_onnx(model: Any, path: Path) -> Path:
    """Save a graph built with ``onnx.helper`` at IR version 8 (what every ONNX Runtime wheel this
    project supports reads), checked first: a test model that is malformed by mistake fails here."""
    import onnx

    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def multi_input_onnx(path: Path) -> Path:
    """A real ONNX graph with two inputs (float features, int64 ids), free batch and sequence dims.

    out[b] = sum(features[b]) + sum(ids[b]): cheap, exact, and it fails loudly if either input is
    fed with the wrong dtype or shape.
    """
    from onnx import TensorProto, helper

    features = helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", "seq", 4])
    ids = helper.make_tensor_value_info("ids", TensorProto.INT64, ["batch", "seq"])
    out = helper.make_tensor_value_info("total", TensorProto.FLOAT, ["batch"])
    axes_fs = helper.make_tensor("axes_fs", TensorProto.INT64, [2], [1, 2])
    axes_ids = helper.make_tensor("axes_ids", TensorProto.INT64, [1], [1])
    nodes = [
        helper.make_node("ReduceSum", ["features", "axes_fs"], ["fsum"], keepdims=0),
        helper.make_node("Cast", ["ids"], ["ids_f"], to=TensorProto.FLOAT),
        helper.make_node("ReduceSum", ["ids_f", "axes_ids"], ["isum"], keepdims=0),
        helper.make_node("Add", ["fsum", "isum"], ["total"]),
    ]
    graph = helper.make_graph(nodes, "two_inputs", [features, ids], [out], initializer=[axes_fs, axes_ids])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    return save_onnx(model, path)


@pytest.fixture
def two_input_model(tmp_path: Path) -> Path:
    return multi_input_onnx(tmp_path / "two_inputs.onnx")


@pytest.fixture(scope="session")
def fmnist_subset():
    from agent.datasets.fashion_mnist import committed_subset

    return committed_subset()


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(1234)


@pytest.fixture
def phone_lab(tmp_path):
    """An emulated Android phone with its tools and battery, reached through Debian's adb (``tests/phone_lab.py``)."""
    from tests.phone_lab import make_lab

    made, stops = make_lab(tmp_path)
    try:
        yield made
    finally:
        for stop in stops:
            stop()
