"""A worker extension that vLLM mixes into its worker class (``worker_extension_cls``).

It lets the measuring process ask the engine's own worker, through
``collective_rpc("slmstudy_report")``, what it allocated: weights, KV cache,
activation peak, CUDA graphs. Reading these inside the worker is exact where
log lines are rounded and version-dependent. Every attribute is optional: the
CPU and CUDA workers, and vLLM releases, keep different ones.
"""

from __future__ import annotations

from collections import Counter
from typing import Any


def _tensor_bytes(obj: Any) -> int:
    """Bytes held by a tensor or a (nested) list / dict of tensors."""
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.numel() * obj.element_size()
    if isinstance(obj, dict):
        return sum(_tensor_bytes(v) for v in obj.values())
    if isinstance(obj, (list, tuple)):
        # KV caches of several layers may share storage; count each storage once.
        seen, total = set(), 0
        for item in obj:
            if isinstance(item, torch.Tensor):
                ptr = item.untyped_storage().data_ptr()
                if ptr in seen:
                    continue
                seen.add(ptr)
                total += item.untyped_storage().nbytes()
            else:
                total += _tensor_bytes(item)
        return total
    return 0


class SlmstudyWorkerExtension:
    def slmstudy_report(self) -> dict[str, Any]:
        import torch

        report: dict[str, Any] = {}
        runner = getattr(self, "model_runner", None)
        value = getattr(runner, "model_memory_usage", None)
        report["weights_bytes_vllm"] = int(value) if value is not None else None
        for name in (
            "peak_activation_memory",
            "non_torch_memory",
            "cudagraph_memory_estimate",
            "available_kv_cache_memory_bytes",
            "requested_memory",
        ):
            value = getattr(self, name, None)
            report[name] = int(value) if isinstance(value, (int, float)) else None

        model = None
        if runner is not None:
            getter = getattr(runner, "get_model", None)
            model = getter() if callable(getter) else getattr(runner, "model", None)
        if model is not None:
            params = list(model.parameters())
            report["param_bytes"] = sum(p.numel() * p.element_size() for p in params)
            report["param_count"] = sum(p.numel() for p in params)
            report["buffer_bytes"] = sum(b.numel() * b.element_size() for b in model.buffers())
            by_dtype: Counter[str] = Counter()
            for p in params:
                by_dtype[str(p.dtype).removeprefix("torch.")] += p.numel() * p.element_size()
            report["param_bytes_by_dtype"] = dict(by_dtype)
            # Which kernels vLLM picked for the linear layers (quantised or not).
            kernels: Counter[str] = Counter()
            for module in model.modules():
                qm = getattr(module, "quant_method", None)
                if qm is None:
                    continue
                kernel = getattr(qm, "kernel", None)
                kernels[type(kernel if kernel is not None else qm).__name__] += 1
            report["linear_kernels"] = dict(kernels)
            # vLLM's CPU backend repacks linear weights for oneDNN (or its own
            # kernels) after loading and leaves an empty parameter behind: the
            # weights still take memory, just not as parameters. Count them by the
            # layer's shape so the weights are not undercounted on such CPUs.
            repacked = repacked_bytes = 0
            for module in model.modules():
                w = getattr(module, "weight", None)
                if hasattr(module, "cpu_linear") and isinstance(w, torch.Tensor) and w.numel() == 0:
                    n = getattr(module, "output_size_per_partition", None)
                    k = getattr(module, "input_size_per_partition", None)
                    if n and k:
                        repacked += n * k
                        repacked_bytes += n * k * w.element_size()
            report["repacked_params"] = repacked
            report["repacked_bytes"] = repacked_bytes

        kv = getattr(runner, "kv_caches", None)
        report["kv_cache_bytes"] = _tensor_bytes(kv) if kv is not None else None

        compilation = getattr(getattr(self, "vllm_config", None), "compilation_config", None)
        report["compile_time_s"] = getattr(compilation, "compilation_time", None)

        if torch.cuda.is_available():
            stats = torch.cuda.memory_stats()
            free, total = torch.cuda.mem_get_info()
            report.update(
                device="cuda",
                torch_allocated_bytes=stats.get("allocated_bytes.all.current"),
                torch_allocated_peak_bytes=stats.get("allocated_bytes.all.peak"),
                torch_reserved_bytes=stats.get("reserved_bytes.all.current"),
                torch_reserved_peak_bytes=stats.get("reserved_bytes.all.peak"),
                device_free_bytes=free,
                device_total_bytes=total,
            )
        else:
            import os

            import psutil

            report.update(device="cpu", worker_rss_bytes=psutil.Process(os.getpid()).memory_info().rss)
        return report
