"""Telemetry: sample the GPU (NVML, GPM on Hopper and newer) or, without one,
the CPU and memory of the engine's process tree, in a separate process, and
line the trace up with the phases of the work."""
