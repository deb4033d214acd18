"""Corrects the commit a measurement pool records when the name given on the lent
host was mistyped (``SLMSTUDY_GIT_COMMIT``, which the package now refuses unless it is
a whole commit id).

    python tools/relabel_commit.py POOL --from 3663624a --to <40 hex digits> --reason "..."

Only entries whose identity was *named* (dirtiness unknown, as on the lent host) and
equals ``--from`` are touched: their ``environment.json`` and ``status.json`` get the new
commit and label, the manifest's byte count of ``environment.json`` follows, and
``status.json`` keeps the correction (``relabelled``: from, to, when, why), so the
rows' provenance shows it. Measured data (journals, tables) is not opened.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "lib"))

from slmstudy.atomic import write_json  # noqa: E402
from slmstudy.results.environment import identity_label  # noqa: E402


def relabel(pool: Path, old: str, new: str, reason: str) -> list[str]:
    if not re.fullmatch(r"[0-9a-f]{40}", new):
        raise SystemExit(f"--to {new!r}: give the whole commit id (40 lowercase hex digits)")
    # every entry is checked before any is written: a refusal leaves the pool as it was
    todo = []
    for status_path in sorted(pool.glob("*/status.json")):
        status = json.loads(status_path.read_text())
        ident = status.get("identity") or {}
        if ident.get("git_commit") != old:
            continue
        if ident.get("git_dirty") is not None:
            raise SystemExit(f"{status_path}: its commit came from git, not from a typed name; nothing relabelled")
        todo.append((status_path, status, ident))
    done = []
    for status_path, status, ident in todo:
        entry = status_path.parent
        ident = {**ident, "git_commit": new}
        env_path = entry / "environment.json"
        env = json.loads(env_path.read_text())
        env.update(git_commit=new, identity=identity_label(ident))
        write_json(env_path, env)
        manifest = status.get("manifest") or {}
        if "environment.json" in manifest:
            manifest["environment.json"]["bytes"] = env_path.stat().st_size
        status.update(identity=ident, identity_label=identity_label(ident))
        status.setdefault("relabelled", []).append(
            {"from": old, "to": new, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "reason": reason})
        write_json(status_path, status)
        done.append(entry.name)
    return done


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pool", type=Path)
    ap.add_argument("--from", dest="old", required=True)
    ap.add_argument("--to", dest="new", required=True)
    ap.add_argument("--reason", required=True)
    a = ap.parse_args()
    done = relabel(a.pool, a.old, a.new, a.reason)
    if not done:
        print(f"no entry of {a.pool} records commit {a.old!r}", file=sys.stderr)
        return 1
    print("\n".join(f"relabelled {name}" for name in done))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
