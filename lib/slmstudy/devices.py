"""The devices a process was given: one slot of a host that runs several jobs at once.

A study spread over a host's GPUs (``measure.slots``) runs each job under a slot
runner whose environment names its devices; every process of the job inherits it:

* on a GPU host, ``CUDA_VISIBLE_DEVICES`` (in PCI bus order, the order NVML counts
  in) so the engine sees its GPUs as 0, 1, ...; and ``SLMSTUDY_NVML_INDICES``, the
  same GPUs for NVML, which ignores ``CUDA_VISIBLE_DEVICES``: a sampler asked for
  GPU ``i`` (``telemetry.gpu_index``, relative to the job's devices) reads NVML's
  ``SLMSTUDY_NVML_INDICES[i]``;
* on the CPU engine, the slot's cores as the process's CPU affinity, which every
  child inherits and the engine's thread binding follows (``engine.args``).

``SLMSTUDY_SLOT`` names the slot's devices for the job's records.
"""

from __future__ import annotations

import os

NVML_INDICES = "SLMSTUDY_NVML_INDICES"
SLOT = "SLMSTUDY_SLOT"


def slot_env(kind: str, devices: tuple[int, ...]) -> dict[str, str]:
    """The environment of a slot runner on ``devices`` (GPU indices, or CPU cores)."""
    ids = ",".join(map(str, devices))
    env = {SLOT: f"{kind}:{ids}"}
    if kind == "cuda":
        env.update(CUDA_VISIBLE_DEVICES=ids, CUDA_DEVICE_ORDER="PCI_BUS_ID", **{NVML_INDICES: ids})
    return env


def nvml_index(gpu_index: int) -> int:
    """NVML's index of the job's GPU ``gpu_index`` (counted among the devices it was given)."""
    given = os.environ.get(NVML_INDICES)
    if not given:
        return gpu_index
    ids = [int(x) for x in given.split(",")]
    if gpu_index >= len(ids):
        raise ValueError(f"telemetry.gpu_index {gpu_index}: this job was given {len(ids)} GPU(s) ({given})")
    return ids[gpu_index]


def slot_label() -> str | None:
    """``cuda:0,1`` or ``cpu:1`` when this process runs in a slot, else None."""
    return os.environ.get(SLOT) or None


def parse(text: str, kind: str, gpus: int, cores: int) -> tuple[int, ...] | None:
    """The devices a study may spread over (``run --devices``): ``auto`` (every GPU
    of a GPU host; one slot, i.e. a serial study, on the CPU engine), a count (the
    first N GPUs, or N cores on the CPU engine) or a list of ids (``0,2``). None
    means one slot: the serial study. Raises ValueError naming what is allowed."""
    have, what = (gpus, "GPU") if kind == "cuda" else (cores, "core")
    text = text.strip()
    if text == "auto":
        ids: tuple[int, ...] = tuple(range(gpus)) if kind == "cuda" else ()
    elif text.isdigit():
        n = int(text)
        if not 1 <= n <= have:
            raise ValueError(f"--devices {text}: this machine has {have} {what}(s); allowed: auto or 1 to {have}, "
                             f"or a list of {what} ids from 0 to {have - 1}")
        ids = tuple(range(n))
    else:
        try:
            ids = tuple(int(x) for x in text.split(","))
        except ValueError:
            ids = ()
        bad = [i for i in ids if not 0 <= i < have]
        if not ids or bad or len(set(ids)) != len(ids):
            raise ValueError(f"--devices {text}: allowed: auto, a count from 1 to {have}, or distinct {what} ids "
                             f"from 0 to {have - 1} separated by commas")
    return ids if len(ids) > 1 else None
