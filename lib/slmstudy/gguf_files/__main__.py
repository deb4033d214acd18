"""Build one GGUF file and measure it, in a process of its own (a study job):

    python -m slmstudy.gguf_files OUT_JSON --model KEY --file-type Q4_K_M [--seed 0]

Writes OUT_JSON (atomically) with the file's measured size and what it holds;
exits non-zero with the cause on stderr when the build fails.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from ..atomic import write_json
from .writer import build


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slmstudy.gguf_files")
    ap.add_argument("out")
    ap.add_argument("--model", required=True)
    ap.add_argument("--file-type", required=True)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    try:
        f = build(args.model, args.file_type, args.seed)
    except Exception as exc:
        print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    record = {k: (str(v) if isinstance(v, Path) else v) for k, v in dataclasses.asdict(f).items()}
    # build_s: the build, or only the lookup when the file was in the cache already
    write_json(Path(args.out), {**record, "build_s": time.perf_counter() - t0})
    return 0


if __name__ == "__main__":
    sys.exit(main())
