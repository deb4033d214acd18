"""The device's limits: what its datasheet promises, and what it achieves here.

Two ceilings bound LLM inference: memory bandwidth (decoding reads every weight
and the KV cache each step) and dense tensor-core throughput (prefill is matrix
multiplication). Datasheet numbers are leads; the probe measures both on the
machine at hand, once per run folder, in a process of its own:

    python -m slmstudy.hardware OUT_JSON

* bandwidth: a large device-to-device copy, counting bytes read plus written;
* throughput: large square matrix products per dtype on random data (bf16,
  fp16, tf32 and fp32, int8 via ``torch._int_mm``, fp8 e4m3 via
  ``torch._scaled_mm``), median of timed repetitions after warm-up.

Without a GPU the same probe measures the CPU (memory copy and matmul through
torch), so the roofline view exists on every machine.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

# Dense (no sparsity) datasheet peaks, TFLOP/s (TOP/s for int8), and memory
# bandwidth in TB/s. Source: NVIDIA H100 / H200 / A100 / L4 / T4 datasheets.
DATASHEET: dict[str, dict[str, float]] = {
    "H100 80GB HBM3": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9, "int8": 1978.9, "fp8": 1978.9, "bandwidth_tbs": 3.35},
    "H200": {"bf16": 989.4, "fp16": 989.4, "tf32": 494.7, "fp32": 66.9, "int8": 1978.9, "fp8": 1978.9, "bandwidth_tbs": 4.8},
    "A100-SXM4-80GB": {"bf16": 312.0, "fp16": 312.0, "tf32": 156.0, "fp32": 19.5, "int8": 624.0, "bandwidth_tbs": 2.039},
    "L4": {"bf16": 121.0, "fp16": 121.0, "tf32": 60.0, "fp32": 30.3, "int8": 242.5, "fp8": 242.5, "bandwidth_tbs": 0.3},
    "Tesla T4": {"fp16": 65.0, "fp32": 8.1, "int8": 130.0, "bandwidth_tbs": 0.32},
    "GeForce RTX 3060": {"fp16": 51.0, "bf16": 51.0, "fp32": 12.7, "int8": 102.0, "bandwidth_tbs": 0.36},
}

# The dtype whose tensor-core peak bounds each precision's matrix products.
# W4A16 (int4, awq) and GGUF unpack their weights and multiply in bf16.
PRECISION_COMPUTE = {"fp32": "fp32", "bf16": "bf16", "fp16": "fp16", "int8": "int8", "fp8": "fp8", "int4": "bf16",
                     "awq": "bf16", "gguf-q4_k_m": "bf16"}


def datasheet_for(device_name: str | None) -> dict[str, float]:
    """Match NVML's device name ("NVIDIA H100 80GB HBM3") to a datasheet entry."""
    if not device_name:
        return {}
    for key, values in DATASHEET.items():
        if key.lower() in device_name.lower():
            return dict(values, datasheet=key)
    return {}


def _median_time(fn: Any, sync: Any, warmup: int = 3, reps: int = 10) -> float:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    times.sort()
    return times[len(times) // 2]


def _copy_bandwidth_tbs(torch: Any, dev: str, sync: Any, n_bytes: int) -> float:
    """Device-to-device copy of ``n_bytes``, counting bytes read plus written."""
    src = torch.empty(n_bytes // 4, dtype=torch.float32, device=dev).uniform_()
    dst = torch.empty_like(src)
    return 2 * n_bytes / _median_time(lambda: dst.copy_(src), sync) / 1e12


def probe() -> dict[str, Any]:
    import torch

    cuda = torch.cuda.is_available()
    dev = "cuda" if cuda else "cpu"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    out: dict[str, Any] = {"device": torch.cuda.get_device_name(0) if cuda else "cpu", "torch": torch.__version__}

    # Bandwidth: copy a buffer much larger than any cache (H100 L2 is 50 MB).
    out["bandwidth_tbs"] = _copy_bandwidth_tbs(torch, dev, sync, (2 << 30) if cuda else (256 << 20))

    # Large enough to fill an H100; on a CPU (where bf16 is emulated on AVX2
    # machines and runs at ~1 GFLOP/s) small enough to finish in seconds.
    n = 8192 if cuda else 512
    flops = 2 * n**3
    results: dict[str, float] = {}

    def bench(name: str, fn: Any) -> None:
        try:
            results[name] = flops / _median_time(fn, sync) / 1e12
        except Exception as exc:  # dtype unsupported on this device: say so, do not guess
            results[name] = float("nan")
            out.setdefault("unsupported", {})[name] = f"{type(exc).__name__}: {exc}"[:200]

    for name, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16), ("fp32", torch.float32)):
        a = torch.randn(n, n, device=dev, dtype=dtype)
        b = torch.randn(n, n, device=dev, dtype=dtype)
        if name == "fp32" and cuda:
            torch.backends.cuda.matmul.allow_tf32 = False
        bench(name, lambda a=a, b=b: a @ b)
        if name == "fp32" and cuda:
            torch.backends.cuda.matmul.allow_tf32 = True
            bench("tf32", lambda a=a, b=b: a @ b)
            torch.backends.cuda.matmul.allow_tf32 = False
        del a, b
    if cuda:
        a8 = torch.randint(-128, 127, (n, n), device=dev, dtype=torch.int8)
        b8 = torch.randint(-128, 127, (n, n), device=dev, dtype=torch.int8).t().contiguous().t()
        bench("int8", lambda: torch._int_mm(a8, b8))
        af = torch.randn(n, n, device=dev).to(torch.float8_e4m3fn)
        bf = torch.randn(n, n, device=dev).to(torch.float8_e4m3fn).t().contiguous().t()
        one = torch.tensor(1.0, device=dev)
        bench("fp8", lambda: torch._scaled_mm(af, bf, scale_a=one, scale_b=one, out_dtype=torch.bfloat16))
    out["tflops"] = results
    out["matmul_n"] = n
    return out


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    result = probe()
    result["datasheet"] = datasheet_for(result["device"])
    text = json.dumps(result, indent=2)
    if argv:
        Path(argv[0]).write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
