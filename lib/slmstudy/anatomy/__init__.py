"""Where a decode step's time goes: a profiled window of decode steps, every GPU
kernel (or, on a CPU engine, every top-level torch op) in it classified, the
time the device sat idle waiting for the host, and each class against its own
roofline bound.

* ``trace``: a torch-profiler chrome trace -> the window's device events and
  step boundaries (pure).
* ``classify``: a kernel or op name -> its class; GEMMs -> their layer role (pure).
* ``bounds``: each class's bytes / FLOPs lower bound for one decode step (pure).
* ``table``: per point, ms per step and share per class, idle, the sum check and
  the gap to the bound split into kernels above their bound and host idle (pure).

The measuring happens in the engine worker (``engine.worker.step_anatomy`` and the
worker extension's ``slmstudy_anatomy_*``); everything here reads what it recorded.
"""
