"""Driving vLLM: one engine configuration per child process (``runner``), the
code that runs inside that process (``worker``), and what it measures."""
