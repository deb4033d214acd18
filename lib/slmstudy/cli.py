"""``python -m slmstudy``: run the study notebooks in batch with papermill.

    python -m slmstudy run [NOTEBOOK ...] [--profile auto|cpu|gpu] [-f params.yaml ...]
    python -m slmstudy check [NOTEBOOK ...] [--profile ...] [-f ...]   # validate only
    python -m slmstudy list

Every notebook's parameters are validated before the first engine starts; each
executed notebook is saved into its run folder; a summary says what passed and
what failed, and the exit code is non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from . import paths
from .errors import ParamsError
from .results.run_folder import folder_for
from .study import EXPERIMENTS, resolve

REPORT = "00_report"


def available() -> list[str]:
    """Notebooks in run order: the experiments, then the report that reads them."""
    names = sorted(p.stem for p in paths.notebooks_dir().glob("*.ipynb"))
    return [n for n in names if n != REPORT] + ([REPORT] if REPORT in names else [])


def _select(names: list[str]) -> list[str]:
    known = available()
    unknown = [n for n in names if n.removesuffix(".ipynb") not in known]
    if unknown:
        raise ParamsError([f"notebook(s) {', '.join(unknown)} not found; available: {', '.join(known)}"])
    return [n.removesuffix(".ipynb") for n in names] if names else known


def _check(notebooks: list[str], profile: str, files: list[str]) -> dict[str, Any]:
    resolved, problems = {}, []
    for nb in notebooks:
        if nb not in EXPERIMENTS:  # e.g. the report: parameters are its own cell only
            resolved[nb] = None
            continue
        try:
            resolved[nb] = resolve(nb, profile, files or None)
        except ParamsError as exc:
            problems += [f"{nb}: {p}" for p in exc.problems]
    if problems:
        raise ParamsError(problems)
    return resolved


def _execute(nb: str, resolved: Any, profile: str, files: list[str]) -> tuple[bool, Path, str]:
    import papermill as pm

    src = paths.notebooks_dir() / f"{nb}.ipynb"
    out_dir = folder_for(resolved) if resolved is not None else paths.runs_dir() / nb / time.strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    partial = out_dir / ".notebook.partial.ipynb"
    error = ""
    try:
        pm.execute_notebook(
            str(src), str(partial),
            parameters={"profile": profile, "params_file": files or None, "overrides": {}},
            cwd=str(paths.notebooks_dir()), progress_bar=sys.stderr.isatty(), log_output=False,
        )
        ok = True
    except Exception as exc:  # a failing notebook is reported; the others still run
        ok = False
        error = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    if partial.exists():
        os.replace(partial, out_dir / "notebook.ipynb")
    return ok, out_dir, error


def cmd_run(args: argparse.Namespace) -> int:
    notebooks = _select(args.notebooks)
    resolved = _check(notebooks, args.profile, args.file)
    results = []
    for i, nb in enumerate(notebooks, 1):
        print(f"\n=== [{i}/{len(notebooks)}] {nb} (profile {args.profile}) ===", flush=True)
        t0 = time.monotonic()
        ok, out_dir, error = _execute(nb, resolved[nb], args.profile, args.file)
        results.append((nb, ok, time.monotonic() - t0, out_dir, error))
        print(f"{'passed' if ok else 'FAILED'} in {time.monotonic() - t0:.0f} s -> {out_dir}", flush=True)
    print("\nSummary")
    for nb, ok, secs, out_dir, error in results:
        line = f"  {'PASS' if ok else 'FAIL'}  {nb:<22} {secs:6.0f} s  {out_dir}"
        print(line + (f"\n        {error}" if error else ""))
    failed = [r for r in results if not r[1]]
    print(f"\n{len(results) - len(failed)} passed, {len(failed)} failed. Results: {paths.runs_dir()}")
    return 1 if failed else 0


def cmd_check(args: argparse.Namespace) -> int:
    resolved = _check(_select(args.notebooks), args.profile, args.file)
    for nb, r in resolved.items():
        where = folder_for(r) if r is not None else "(no parameters file)"
        print(f"ok  {nb}: profile {r.profile if r else args.profile} -> {where}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    root = paths.project_root()
    for nb in available():
        files = sorted((paths.params_dir() / nb).glob("*.yaml"))
        profiles = [f.stem for f in files if f.stem in ("cpu", "gpu")]
        # Other files there are layers for -f (a variant of a profile), not profiles.
        layers = [str(f.relative_to(root)) if f.is_relative_to(root) else str(f) for f in files
                  if f.stem not in profiles]
        line = f"{nb:<22} profiles: {', '.join(profiles) or '-'}"
        print(line + (f"   -f: {', '.join(layers)}" if layers else ""))
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slmstudy", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, fn, helptext in (("run", cmd_run, "execute notebooks with papermill"),
                               ("check", cmd_check, "validate parameters only")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("notebooks", nargs="*", help="notebook names (default: all, the report last)")
        p.add_argument("--profile", default="auto", choices=["auto", "cpu", "gpu"],
                       help="auto: gpu when an NVIDIA GPU is visible, else cpu")
        p.add_argument("-f", "--file", action="append", default=[],
                       help="YAML file of parameters overriding the profile's (repeatable; later wins)")
        p.set_defaults(fn=fn)
    sub.add_parser("list", help="list notebooks and their profiles").set_defaults(fn=cmd_list)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
