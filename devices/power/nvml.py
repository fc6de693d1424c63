"""NVIDIA GPU board power through NVML (``nvidia-ml-py``, module ``pynvml``).

Two readings exist and they are not equal. ``nvmlDeviceGetTotalEnergyConsumption`` is a
millijoule counter since the driver loaded (Volta and later): the energy over a window is a
difference of two counter values, exact at any poll rate — so it is used whenever the GPU
supports it, and every sample carries it as ``energy_j``. ``nvmlDeviceGetPowerUsage`` (mW) is
what ``nvidia-smi`` shows as power draw; on many recent datacenter GPUs it is an average over
the last second, not an instantaneous value, so integrating it smears short runs — it is the
fallback when the counter is not supported, and is recorded alongside for plots and baselines.

Both cover the whole GPU board (GPU, HBM/GDDR, VRM losses), not the host. ``pynvml`` is imported
inside functions so that importing this module costs nothing on machines without NVIDIA.
"""

from __future__ import annotations

import contextlib
import importlib.util
import time
from typing import Any

from devices.power.base import PollingMonitor, PowerSample, PowerSourceError, SourceInfo, positive_number, source_options

DEFAULT_RATE_HZ = 50.0
OPTIONS = ("index", "rate")


def _init_problem(exc: Exception) -> str:
    """One line for an ``nvmlInit`` failure, naming the fix."""
    import pynvml

    if isinstance(exc, pynvml.NVMLError_LibraryNotFound):
        return ("NVML not found (no NVIDIA driver): libnvidia-ml.so.1 could not be loaded; install the NVIDIA driver "
                "(in a container, run it with --gpus all / the NVIDIA container toolkit)")
    if isinstance(exc, pynvml.NVMLError_DriverNotLoaded):
        return "NVIDIA driver not loaded: the kernel module is missing or failed (check `nvidia-smi` and `dmesg`)"
    if isinstance(exc, pynvml.NVMLError_NoPermission):
        return "no permission to use NVML: check the permissions of /dev/nvidia*"
    if isinstance(exc, pynvml.NVMLError_LibRmVersionMismatch):
        return "NVML and the NVIDIA kernel driver are different versions (driver updated without a reboot): reboot"
    return f"NVML failed to initialise: {exc}"


def _init() -> Any:
    """``nvmlInit`` (reference-counted by pynvml; pair with ``nvmlShutdown``) → the module."""
    if importlib.util.find_spec("pynvml") is None:
        raise PowerSourceError("nvidia-ml-py not installed: pip install nvidia-ml-py")
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        raise PowerSourceError(_init_problem(exc)) from None
    return pynvml


def _shutdown(pynvml: Any) -> None:
    with contextlib.suppress(pynvml.NVMLError):
        pynvml.nvmlShutdown()


def _optional(call: Any, *args: Any) -> Any:
    """An NVML query that some GPUs do not support: its value, or None."""
    import pynvml

    try:
        return call(*args)
    except pynvml.NVMLError:
        return None


def _handle(pynvml: Any, index: int) -> Any:
    count = pynvml.nvmlDeviceGetCount()
    if count == 0:
        raise PowerSourceError("nvml: no NVIDIA GPU (the driver loads but reports 0 devices)")
    if not 0 <= index < count:
        gpus = "1 GPU (index 0)" if count == 1 else f"{count} GPUs (index 0-{count - 1})"
        raise PowerSourceError(f"nvml: no GPU index {index}; this machine has {gpus}")
    return pynvml.nvmlDeviceGetHandleByIndex(index)


def available() -> tuple[bool, str]:
    """NVML loads and sees at least one GPU; opens no device handle."""
    try:
        pynvml = _init()
    except PowerSourceError as exc:
        return False, str(exc)
    try:
        count = pynvml.nvmlDeviceGetCount()
    except pynvml.NVMLError as exc:
        return False, f"NVML could not count GPUs: {exc}"
    finally:
        _shutdown(pynvml)
    if count == 0:
        return False, "no NVIDIA GPU (the driver loads but reports 0 devices)"
    return True, f"{count} NVIDIA GPU{'s' if count > 1 else ''} through NVML"


def _text(value: Any) -> Any:
    """Old nvidia-ml-py releases return names as bytes; current ones as str."""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def _version(raw: int | None) -> str | None:
    """NVML's CUDA version integer (12040) as ``12.4``."""
    return None if raw is None else f"{raw // 1000}.{raw % 1000 // 10}"


def all_gpu_facts() -> list[dict[str, Any]]:
    """``gpu_facts`` of every GPU NVML sees, in one NVML session; [] without a driver or a GPU."""
    try:
        pynvml = _init()
    except PowerSourceError:
        return []
    try:
        try:
            count = int(pynvml.nvmlDeviceGetCount())
        except pynvml.NVMLError:
            return []
        return [_facts(pynvml, i) for i in range(count)]
    finally:
        _shutdown(pynvml)


def gpu_facts(index: int = 0) -> dict[str, Any]:
    """What the device probe and the datacenter baseline record about one GPU.

    Clocks and limits explain throughput and power differences between otherwise identical
    runs (a GPU at a lowered power limit or without persistence mode behaves differently), so
    they are recorded with every result. Fields a GPU does not support are None.
    """
    pynvml = _init()
    try:
        return _facts(pynvml, index)
    finally:
        _shutdown(pynvml)


def _facts(pynvml: Any, index: int) -> dict[str, Any]:
    """``gpu_facts`` inside an NVML session the caller opened."""
    try:
        handle = _handle(pynvml, index)
        memory = _optional(pynvml.nvmlDeviceGetMemoryInfo, handle)
        limit_mw = _optional(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        persistence = _optional(pynvml.nvmlDeviceGetPersistenceMode, handle)
        return {
            "index": index,
            "name": _text(pynvml.nvmlDeviceGetName(handle)),
            "uuid": _text(_optional(pynvml.nvmlDeviceGetUUID, handle)),
            "driver_version": _text(_optional(pynvml.nvmlSystemGetDriverVersion)),
            "cuda_driver_version": _version(_optional(pynvml.nvmlSystemGetCudaDriverVersion)),
            "memory_total_mib": None if memory is None else memory.total // (1 << 20),
            "clocks_mhz": {
                "sm": _optional(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_SM),
                "sm_max": _optional(pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_SM),
                "memory": _optional(pynvml.nvmlDeviceGetClockInfo, handle, pynvml.NVML_CLOCK_MEM),
                "memory_max": _optional(pynvml.nvmlDeviceGetMaxClockInfo, handle, pynvml.NVML_CLOCK_MEM),
            },
            "power_limit_w": None if limit_mw is None else limit_mw / 1000,
            "persistence_mode": None if persistence is None else persistence == pynvml.NVML_FEATURE_ENABLED,
        }
    except pynvml.NVMLError as exc:
        raise PowerSourceError(f"nvml: reading GPU {index} failed: {exc}") from None


class NvmlMonitor(PollingMonitor):
    """Polls one GPU: the energy counter where supported, and the power reading where supported."""

    def __init__(self, pynvml: Any, handle: Any, index: int, rate_hz: float, use_counter: bool, use_power: bool,
                 detail: dict[str, Any]) -> None:
        super().__init__(SourceInfo(source="nvml", rail=f"GPU {index} board ({detail['gpu']})", measured=True,
                                    nominal_hz=rate_hz, detail=detail))
        self._nvml = pynvml
        self._handle = handle
        self._use_counter = use_counter
        self._use_power = use_power
        self._closed = False

    def read(self) -> PowerSample:
        """Power first, then the counter, then the clock: the counter is the number the window is
        cut from, so it is the reading taken closest to the timestamp."""
        watts = self._nvml.nvmlDeviceGetPowerUsage(self._handle) / 1000 if self._use_power else None
        energy_j = self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle) / 1000 if self._use_counter else None
        return PowerSample(time.monotonic_ns(), watts, energy_j=energy_j)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            _shutdown(self._nvml)


def open(options: dict[str, str]) -> NvmlMonitor:
    """Open an NVML source.

    Options: ``index`` — the GPU (NVML's order, default 0); ``rate`` — polls per second
    (default 50; NVML's own power update is ~10-100 Hz depending on the GPU).
    """
    options = source_options("nvml", options, OPTIONS)
    try:
        index = int(options.get("index", 0))
    except ValueError:
        raise PowerSourceError(f"nvml: index must be a whole number, not {options['index']!r}") from None
    rate = positive_number("nvml", options, "rate", DEFAULT_RATE_HZ, "samples per second", "samples per second")
    pynvml = _init()
    try:
        handle = _handle(pynvml, index)
        name = _text(pynvml.nvmlDeviceGetName(handle))
        use_counter = use_power = True
        reasons = {}
        try:
            pynvml.nvmlDeviceGetTotalEnergyConsumption(handle)
        except pynvml.NVMLError as exc:  # NotSupported before Volta and on some boards
            use_counter, reasons["energy counter"] = False, str(exc)
        try:
            pynvml.nvmlDeviceGetPowerUsage(handle)
        except pynvml.NVMLError as exc:
            use_power, reasons["power readings"] = False, str(exc)
        if not (use_counter or use_power):
            raise PowerSourceError(f"nvml: GPU {index} ({name}) reports neither an energy counter nor power "
                                   f"({reasons['energy counter']}); use another source")
        limit_mw = _optional(pynvml.nvmlDeviceGetEnforcedPowerLimit, handle)
        detail: dict[str, Any] = {
            "method": "energy counter" if use_counter else "power readings",
            "gpu": name, "index": index,
            "driver_version": _text(_optional(pynvml.nvmlSystemGetDriverVersion)),
            "power_limit_w": None if limit_mw is None else limit_mw / 1000,
        }
        if not use_counter:
            detail["note"] = (f"no energy counter on this GPU ({reasons['energy counter']}): energy is integrated from "
                              "NVML's power readings, which many GPUs average over about a second")
        return NvmlMonitor(pynvml, handle, index, rate, use_counter, use_power, detail)
    except PowerSourceError:
        _shutdown(pynvml)
        raise
    except pynvml.NVMLError as exc:
        _shutdown(pynvml)
        raise PowerSourceError(f"nvml: GPU {index}: {exc}") from None
