"""One NVML reading of one GPU: the counters nvidia-smi shows plus, on Hopper and
newer, the GPM metrics that say how hard the SMs, tensor cores and DRAM work.

``utilization.gpu`` only says that *some* kernel ran during the last sample
period; a GPU running one small kernel at a time reads 100%. GPM's SM activity,
SM occupancy, tensor activity and DRAM bandwidth are the true utilisation.
"""

from __future__ import annotations

import time
from typing import Any

import pynvml

# GPM metric id -> column name. Values are percentages (0-100) over the interval
# between two GPM samples.
GPM_METRICS = {
    pynvml.NVML_GPM_METRIC_SM_UTIL: "gpm_sm_active_pct",
    pynvml.NVML_GPM_METRIC_SM_OCCUPANCY: "gpm_sm_occupancy_pct",
    pynvml.NVML_GPM_METRIC_ANY_TENSOR_UTIL: "gpm_tensor_active_pct",
    pynvml.NVML_GPM_METRIC_HMMA_TENSOR_UTIL: "gpm_hmma_tensor_pct",
    pynvml.NVML_GPM_METRIC_IMMA_TENSOR_UTIL: "gpm_imma_tensor_pct",
    pynvml.NVML_GPM_METRIC_DRAM_BW_UTIL: "gpm_dram_bw_pct",
    pynvml.NVML_GPM_METRIC_FP32_UTIL: "gpm_fp32_pct",
    pynvml.NVML_GPM_METRIC_FP16_UTIL: "gpm_fp16_pct",
}


def _str(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class NvmlReader:
    """Reads one GPU. Create in the process that samples (NVML handles are per process)."""

    def __init__(self, gpu_index: int = 0):
        """``gpu_index``: among the GPUs this process was given (``devices.nvml_index``);
        ``self.gpu_index`` is NVML's own index of it."""
        from ..devices import nvml_index

        pynvml.nvmlInit()
        gpu_index = nvml_index(gpu_index)
        self.handle = pynvml.nvmlDeviceGetHandleByIndex(gpu_index)
        self.gpu_index = gpu_index
        self.gpm = self._gpm_supported()
        self._gpm_prev = pynvml.nvmlGpmSampleAlloc() if self.gpm else None
        self._gpm_cur = pynvml.nvmlGpmSampleAlloc() if self.gpm else None
        self._gpm_primed = False
        self._energy_ok = True
        self._proc_ok = True
        self._events_ok = True

    def _gpm_supported(self) -> bool:
        try:
            return bool(pynvml.nvmlGpmQueryDeviceSupport(self.handle).isSupportedDevice)
        except (pynvml.NVMLError, AttributeError):
            return False

    def device_info(self) -> dict[str, Any]:
        h = self.handle
        major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(h)
        info = {
            "gpu_name": _str(pynvml.nvmlDeviceGetName(h)),
            "gpu_index": self.gpu_index,
            "gpu_count": pynvml.nvmlDeviceGetCount(),  # what tensor parallelism may span
            "gpu_uuid": _str(pynvml.nvmlDeviceGetUUID(h)),
            "driver_version": _str(pynvml.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": pynvml.nvmlSystemGetCudaDriverVersion(),
            "compute_capability": f"{major}.{minor}",
            "memory_total_mib": pynvml.nvmlDeviceGetMemoryInfo(h).total / 2**20,
            "gpm_supported": self.gpm,
        }
        for key, fn in (
            ("power_limit_w", lambda: pynvml.nvmlDeviceGetEnforcedPowerLimit(h) / 1000),
            ("sm_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_SM)),
            ("mem_clock_max_mhz", lambda: pynvml.nvmlDeviceGetMaxClockInfo(h, pynvml.NVML_CLOCK_MEM)),
            ("memory_bus_width_bits", lambda: pynvml.nvmlDeviceGetMemoryBusWidth(h)),
        ):
            try:
                info[key] = fn()
            except (pynvml.NVMLError, AttributeError):
                info[key] = None
        return info

    def memory_used_mib(self) -> float:
        return pynvml.nvmlDeviceGetMemoryInfo(self.handle).used / 2**20

    def sample(self, pids: set[int] | None = None) -> dict[str, Any]:
        h = self.handle
        row: dict[str, Any] = {"t": time.time()}
        util = pynvml.nvmlDeviceGetUtilizationRates(h)
        mem = pynvml.nvmlDeviceGetMemoryInfo(h)
        row.update(
            util_gpu_pct=util.gpu,
            util_mem_pct=util.memory,
            mem_used_mib=mem.used / 2**20,
            power_w=pynvml.nvmlDeviceGetPowerUsage(h) / 1000,
            sm_clock_mhz=pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_SM),
            mem_clock_mhz=pynvml.nvmlDeviceGetClockInfo(h, pynvml.NVML_CLOCK_MEM),
            temp_c=pynvml.nvmlDeviceGetTemperature(h, pynvml.NVML_TEMPERATURE_GPU),
        )
        if self._energy_ok:
            try:
                row["energy_mj"] = pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
            except pynvml.NVMLError:
                self._energy_ok = False  # pre-Volta: fall back to integrating power
        if self._events_ok:
            try:
                row["clock_event_reasons"] = pynvml.nvmlDeviceGetCurrentClocksEventReasons(h)
            except (pynvml.NVMLError, AttributeError):
                self._events_ok = False
        if pids is not None and self._proc_ok:
            try:
                procs = pynvml.nvmlDeviceGetComputeRunningProcesses(h)
                row["proc_mem_mib"] = sum(
                    (p.usedGpuMemory or 0) for p in procs if p.pid in pids
                ) / 2**20
            except pynvml.NVMLError:
                self._proc_ok = False
        if self.gpm:
            row.update(self._gpm_metrics())
        return row

    def _gpm_metrics(self) -> dict[str, float]:
        # GPM metrics are rates between two samples: keep the previous one.
        self._gpm_prev, self._gpm_cur = self._gpm_cur, self._gpm_prev
        pynvml.nvmlGpmSampleGet(self.handle, self._gpm_cur)
        if not self._gpm_primed:
            self._gpm_primed = True
            return {}
        req = pynvml.c_nvmlGpmMetricsGet_t()
        req.version = pynvml.NVML_GPM_METRICS_GET_VERSION
        req.numMetrics = len(GPM_METRICS)
        req.sample1 = self._gpm_prev
        req.sample2 = self._gpm_cur
        for i, metric_id in enumerate(GPM_METRICS):
            req.metrics[i].metricId = metric_id
        pynvml.nvmlGpmMetricsGet(req)
        out = {}
        for i, name in enumerate(GPM_METRICS.values()):
            m = req.metrics[i]
            if m.nvmlReturn == pynvml.NVML_SUCCESS:
                out[name] = float(m.value)
        return out

    def close(self) -> None:
        for s in (self._gpm_prev, self._gpm_cur):
            if s is not None:
                try:
                    pynvml.nvmlGpmSampleFree(s)
                except pynvml.NVMLError:
                    pass
        pynvml.nvmlShutdown()


class MultiNvmlReader:
    """Reads the ``count`` GPUs from ``gpu_index`` on (a tensor-parallel engine's) as one:
    each tick's samples combined by ``gpus.combine``."""

    def __init__(self, gpu_index: int = 0, count: int = 1):
        self.readers = [NvmlReader(gpu_index + i) for i in range(count)]

    def device_info(self) -> dict[str, Any]:
        info = self.readers[0].device_info()
        info.update(gpus=len(self.readers), gpu_indices=[r.gpu_index for r in self.readers])
        return info

    def memory_used_mib(self) -> float:
        return sum(r.memory_used_mib() for r in self.readers)

    def sample(self, pids: set[int] | None = None) -> dict[str, Any]:
        from .gpus import combine

        return combine([r.sample(pids) for r in self.readers])

    def close(self) -> None:
        for r in self.readers:
            r.close()
