"""One unit of a study spread over a host's devices, in a process of its own.

    python -m slmstudy.measure.slot_runner UNIT_JSON

The study process (``executor``) starts one per unit with the slot's environment
(``devices.slot_env``: the GPUs it may see) or, on the CPU engine, the slot's
cores (``cores`` in the unit file, set as this process's affinity, which every
engine process it starts inherits). Here the unit's jobs run exactly as in a
serial study (``executor.execute``: the same pool entries, journals, failure
records and status files); the outcomes go to the file the unit names.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from pathlib import Path

from ..atomic import write_json
from ..jobs import job_from_dict
from ..results.pool import Pool
from . import executor


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) != 1:
        print("usage: python -m slmstudy.measure.slot_runner UNIT_JSON", file=sys.stderr)
        return 2
    unit = json.loads(Path(argv[0]).read_text())
    if unit.get("cores"):
        os.sched_setaffinity(0, unit["cores"])
    jobs = [job_from_dict(j) for j in unit["jobs"]]
    outcomes = executor.execute(jobs, Pool(Path(unit["pool"])), unit["reuse_older"], prefetch=False)
    write_json(Path(unit["outcomes"]), [{**dataclasses.asdict(o), "entry": str(o.entry)} for o in outcomes])
    return 0


if __name__ == "__main__":
    sys.exit(main())
