"""Serving mode: vLLM's OpenAI-compatible server in a process group of its own
(``server``, with a ``watchdog`` for a measuring process killed outright), a
tokenizer that makes dummy-weight prompts count exactly (``tokenizer``), a
streaming client that times every chunk (``client``), load sweeps with
per-level aggregates (``load``), and telemetry joined to the load levels
(``measure``)."""
