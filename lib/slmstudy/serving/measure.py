"""Measuring a running server: telemetry of its process tree and GPU, a journal of
load phases, the sweeps, and the tables that join them.

The telemetry sampler (``slmstudy.telemetry.sampler``) watches the server's
process group from outside (``root_pid`` = the API server), as the offline
worker's sampler watches its engine. Every load level is a ``load`` phase in the
journal (``events.jsonl``, wall-clock times on the sampler's clock), so a
level's energy is the energy counter's rise over it and its utilisation the
mean of the samples inside it (``results.tables.window_telemetry``), exactly as
the offline tables compute them per repetition.

Layout of ``out_dir``: ``events.jsonl`` (server, telemetry, phase, level and
request records), ``telemetry.jsonl`` (the trace), the server's log wherever the
server was told to write it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from ..atomic import write_table
from ..engine import journal as journal_mod
from ..engine.journal import Journal
from ..results.tables import energy_between, label_by_phases, load_telemetry, window_telemetry
from ..telemetry.sampler import Sampler
from .client import StreamingClient
from .load import Mode, Slo, SweepResult, Workload, run_sync, sweep
from .server import VllmServer


@dataclass(frozen=True)
class SweepSpec:
    """One sweep: a load mode, its levels and what each request asks for."""

    mode: Mode
    levels: tuple[float, ...]
    requests_per_level: int
    workload: Workload = Workload()
    warmup_requests: int = 0
    slo: Slo = Slo()
    labels: dict[str, Any] = field(default_factory=dict)


class Measurement:
    """``with Measurement(server, out_dir) as m: m.run(spec); tables = m.tables()``"""

    def __init__(self, server: VllmServer, out_dir: Path, telemetry: bool = True, interval_ms: float = 50,
                 gpu_index: int = 0, request_timeout_s: float = 600.0, labels: dict[str, Any] | None = None):
        if not server.alive() or server.pid is None:
            raise RuntimeError("start the server before measuring it")
        self.server = server
        self.out_dir = Path(out_dir)
        self.telemetry = telemetry
        self.interval_ms = interval_ms
        self.gpu_index = gpu_index
        self.request_timeout_s = request_timeout_s
        # every level and request row says what was served and with which tokenizer
        self.labels = {**server.facts, **(labels or {})}
        self.journal: Journal | None = None
        self.sampler: Sampler | None = None
        self.results: list[SweepResult] = []
        self._next_index = 0  # prompt indices already used on this server

    def __enter__(self) -> "Measurement":
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self.journal = Journal(self.out_dir / "events.jsonl")
        self.journal.write("server", **{**self.server.info(), **self.labels})
        if self.telemetry:
            self.sampler = Sampler(self.out_dir / "telemetry.jsonl", self.interval_ms, self.gpu_index,
                                   root_pid=self.server.pid)
            self.journal.write("telemetry", **self.sampler.start())
        else:
            self.journal.write("telemetry", backend="none", fallback_reason="disabled")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.sampler:
            self.sampler.stop()
        if self.journal:
            self.journal.close()

    def run(self, spec: SweepSpec) -> SweepResult:
        """Run one sweep to its end (or its first failed level); usable from a notebook."""
        if self.journal is None:
            raise RuntimeError("use Measurement as a context manager")

        async def go() -> SweepResult:
            async with StreamingClient(self.server.base_url, self.server.served_model_name,
                                       timeout_s=self.request_timeout_s) as client:
                return await sweep(client, spec.workload, spec.mode, spec.levels, spec.requests_per_level,
                                   slo=spec.slo, warmup_requests=spec.warmup_requests, journal=self.journal,
                                   labels={**self.labels, **spec.labels}, first_index=first)

        first = self._next_index
        self._next_index += len(spec.levels) * spec.requests_per_level + spec.warmup_requests
        result = run_sync(go)
        self.results.append(result)
        return result

    def write_tables(self, tables_dir: Path | None = None) -> dict[str, pd.DataFrame]:
        """``tables()`` as Parquet (+ CSV for the small ones) under ``tables_dir``
        (default ``out_dir/tables``)."""
        tables = self.tables()
        target = Path(tables_dir) if tables_dir else self.out_dir / "tables"
        for name, df in tables.items():
            if not df.empty:
                write_table(df, target / name, csv=name in ("levels", "phases"))
        return tables

    def tables(self) -> dict[str, pd.DataFrame]:
        """``levels`` (with energy and utilisation per level), ``requests``, ``telemetry``
        (each sample labelled with its phase and level) and ``phases``."""
        records = journal_mod.read(self.out_dir / "events.jsonl")
        tel = load_telemetry(self.out_dir / "telemetry.jsonl")
        levels = pd.DataFrame([{k: v for k, v in r.items() if k not in ("type", "t")}
                               for r in records if r["type"] == "level"])
        requests = pd.DataFrame([
            {**{k: v for k, v in r.items() if k not in ("type", "t", "rows")}, **row}
            for r in records if r["type"] == "requests" for row in sorted(r["rows"], key=lambda x: x["index"])
        ])
        phases = pd.DataFrame([{k: v for k, v in r.items() if k != "type"} for r in records if r["type"] == "phase"])
        if not phases.empty:
            phases["duration_s"] = phases["t1"] - phases["t0"]
            phases["energy_j"] = [energy_between(tel, a, b) for a, b in zip(phases["t0"], phases["t1"])]
        return {
            "levels": with_telemetry(levels, tel),
            "requests": requests,
            "telemetry": label_by_phases(tel, records, ("mode", "level")),
            "phases": phases,
        }


def with_telemetry(levels: pd.DataFrame, tel: pd.DataFrame) -> pd.DataFrame:
    """Energy (J, J per output token) and mean utilisation over each level's [t0, t1].

    Energy is NaN where the trace has no energy counter or power (CPU backend)."""
    if levels.empty:
        return levels
    rows = [window_telemetry(tel, lv["t0"], lv["t1"], lv.get("output_tokens") or 0) for _, lv in levels.iterrows()]
    return pd.concat([levels.reset_index(drop=True), pd.DataFrame(rows)], axis=1)
