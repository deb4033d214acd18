"""A worker extension that vLLM mixes into its worker class (``worker_extension_cls``).

It lets the measuring process ask the engine's own worker, through
``collective_rpc("slmstudy_report")``, what it allocated: weights, KV cache,
activation peak, CUDA graphs. Reading these inside the worker is exact where
log lines are rounded and version-dependent. Every attribute is optional: the
CPU and CUDA workers, and vLLM releases, keep different ones.
"""

from __future__ import annotations

import statistics
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any


def _cuda() -> bool:
    import torch

    return torch.cuda.is_available()


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


@dataclass
class _Anatomy:
    """One armed step-anatomy window: profile decode steps ``skip + 1`` to
    ``skip + steps + 1`` of a batch of ``batch`` requests (each of those steps
    schedules one token per request), then stop."""

    batch: int
    skip: int
    steps: int
    trace_path: str
    seen: int = 0  # pure decode steps of this batch so far
    annotated: int = 0
    state: str = "armed"  # armed -> on -> done | interrupted
    profiler: Any = None
    error: str | None = None
    # Host periods (s) between consecutive unprofiled decode steps of the same batch,
    # before and after the window: the profiled steps' own baseline, same process,
    # batch and context, so the profiler's cost is not confounded with the run-to-run
    # spread of the sweep's step (10-30% between processes on the lent H100).
    unprofiled: list[float] = field(default_factory=list)
    last_start: float | None = None

    def time_step(self, decode: bool) -> None:
        """Count the period since the last unprofiled decode step of the batch (a
        step of another shape in between breaks the chain)."""
        now = time.perf_counter()
        if decode and self.last_start is not None:
            self.unprofiled.append(now - self.last_start)
        self.last_start = now if decode else None


def _is_decode_of(scheduler_output: Any, batch: int) -> bool:
    """A step that schedules exactly one token for each of ``batch`` requests."""
    per_request = getattr(scheduler_output, "num_scheduled_tokens", None) or {}
    total = getattr(scheduler_output, "total_num_scheduled_tokens", None)
    return len(per_request) == batch and total == batch


class SlmstudyWorkerExtension:
    # --- step anatomy ---------------------------------------------------------
    # Why our own profiler rather than vLLM's start_profile: vLLM's profiler
    # options moved between the releases this package drives (0.26 on the GPU,
    # 0.32 on the CPU), it profiles whole calls rather than chosen decode steps,
    # and it cannot mark where each step starts on the trace's own clock.

    def slmstudy_anatomy_arm(self, batch: int, skip: int, steps: int, trace_path: str) -> bool:
        """Profile ``steps`` decode steps of the next batch of ``batch`` requests,
        after skipping its first ``skip`` decode steps; the trace goes to
        ``trace_path`` when ``slmstudy_anatomy_collect`` is called."""
        self._slmstudy_anatomy = _Anatomy(batch, skip, steps, trace_path)
        if getattr(self, "_slmstudy_execute", None) is None:
            # vLLM's wrapper calls ``self.worker.execute_model`` by attribute:
            # an instance attribute wraps every step without touching vLLM's class.
            self._slmstudy_execute = self.execute_model
            self.execute_model = self._slmstudy_step
        return True

    def _slmstudy_step(self, scheduler_output: Any, *args: Any, **kwargs: Any) -> Any:
        st = getattr(self, "_slmstudy_anatomy", None)
        if st is None or st.state == "interrupted":
            return self._slmstudy_execute(scheduler_output, *args, **kwargs)
        decode = _is_decode_of(scheduler_output, st.batch)
        if st.state == "done":
            st.time_step(decode)
            return self._slmstudy_execute(scheduler_output, *args, **kwargs)
        if st.state == "armed":
            st.time_step(decode)
            if decode:
                st.seen += 1
                if st.seen == st.skip + 1:
                    # this step's period is the window's: the chain restarts after it
                    st.last_start = None
                    self._slmstudy_profiler_start(st)
            if st.state != "on":
                return self._slmstudy_execute(scheduler_output, *args, **kwargs)
        elif not decode:
            # a request finished or joined inside the window: its steps are not the
            # batch's decode steps any more
            st.state = "interrupted"
            st.error = "a step inside the window was not a decode step of the whole batch"
            self._slmstudy_profiler_stop(st)
            return self._slmstudy_execute(scheduler_output, *args, **kwargs)
        import torch

        # The step's start, on the profiler's clock: the window is the time from
        # the first annotated step's start to the last one's (``steps`` periods).
        with torch.profiler.record_function(f"slmstudy_step#{st.annotated}"):
            out = self._slmstudy_execute(scheduler_output, *args, **kwargs)
        st.annotated += 1
        if st.annotated == st.steps + 1:
            st.state = "done"
            self._slmstudy_profiler_stop(st)
        return out

    def _slmstudy_profiler_start(self, st: _Anatomy) -> None:
        import torch

        activities = [torch.profiler.ProfilerActivity.CPU]
        if torch.cuda.is_available():
            activities.append(torch.profiler.ProfilerActivity.CUDA)
        try:
            st.profiler = torch.profiler.profile(activities=activities, record_shapes=False, with_stack=False)
            st.profiler.start()
            st.state = "on"
        except Exception as exc:  # never fail the engine for a profile
            st.state, st.error = "interrupted", f"profiler start: {type(exc).__name__}: {exc}"

    def _slmstudy_profiler_stop(self, st: _Anatomy) -> None:
        if st.profiler is None:
            return
        try:
            st.profiler.stop()
        except Exception as exc:
            st.state, st.error = "interrupted", f"profiler stop: {type(exc).__name__}: {exc}"

    def slmstudy_anatomy_collect(self, write: bool = True) -> dict[str, Any]:
        """Write the armed window's trace (if it completed and ``write``) and say what happened."""
        st = getattr(self, "_slmstudy_anatomy", None)
        if st is None:
            return {"state": "not armed"}
        self._slmstudy_anatomy = None
        out = {"state": st.state, "error": st.error, "decode_steps_seen": st.seen, "annotated": st.annotated,
               "trace_path": None, "device": "cuda" if st.profiler is not None and _cuda() else "cpu",
               "unprofiled_steps": len(st.unprofiled),
               "unprofiled_step_us": 1e6 * statistics.fmean(st.unprofiled) if st.unprofiled else None,
               "unprofiled_step_us_median": 1e6 * statistics.median(st.unprofiled) if st.unprofiled else None}
        if st.state == "armed":
            out["error"] = f"the window never began: {st.seen} decode steps of batch {st.batch}, {st.skip + 1} needed"
        if st.state == "on":
            self._slmstudy_profiler_stop(st)
            out["state"] = "interrupted"
            out["error"] = f"the batch ended after {st.annotated} of {st.steps + 1} annotated steps"
        # With tensor parallelism every rank profiles its own share; rank 0's trace is
        # the one read (the others would overwrite the same file).
        write = write and not getattr(self, "rank", 0)
        if st.state == "done" and st.profiler is not None and write:
            try:
                st.profiler.export_chrome_trace(st.trace_path)
                out["trace_path"] = st.trace_path
            except Exception as exc:
                out["state"], out["error"] = "interrupted", f"trace export: {type(exc).__name__}: {exc}"
        return out

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
