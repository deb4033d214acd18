"""``python -m slmstudy``: the whole study from one command, and its pieces.

    python -m slmstudy run [NOTEBOOK ...] [--profile auto|cpu|gpu] [-f params.yaml ...]
    python -m slmstudy check [NOTEBOOK ...] [--profile ...] [-f ...]   # validate only
    python -m slmstudy list
    python -m slmstudy compare RUN_A RUN_B                             # is a re-run the same?

``run`` validates every notebook's parameters first, then runs the study plan
(each engine once, with the points of every notebook that asks for it), then
executes the notebooks with papermill (they find their measurements done and
analyse them), the reports last. Each executed notebook is saved into its run
folder with an HTML rendering; the summary says what passed and what failed,
with the recorded root cause, and the exit code is non-zero if anything failed.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import Any

from . import paths
from .errors import ParamsError, SlmstudyError

EXIT_PARAMS = 2
EXIT_FAILED = 1


class Interrupted(BaseException):
    """SIGTERM (``timeout``, a scheduler) or SIGINT, turned into an exception so the
    summary is printed and every engine of this run is stopped."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(signal.Signals(signum).name)


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signum)


def _check(notebooks: list[str], profile: str, files: list[str], machine: bool = True) -> dict[str, Any]:
    from .experiments import registry

    resolved, problems = {}, []
    for nb in notebooks:
        try:
            resolved[nb] = registry.resolve(nb, profile, files or None, machine=machine)
        except ParamsError as exc:
            problems += [f"{nb}: {p}" for p in exc.problems]
    if problems:
        raise ParamsError(problems)
    return resolved


def _select(names: list[str], files: list[str]) -> list[str]:
    """Notebook names (or paths) asked for, else all; a -f file applies only to the
    notebooks whose parameters it can set (its parent folder names one), when no
    notebook is named."""
    from .experiments import registry

    if names:
        return [registry.notebook_name(n) for n in names]
    notebooks = registry.available()
    scoped = {Path(f).resolve().parent.name for f in files}
    if files and scoped <= set(notebooks):
        return [nb for nb in notebooks if nb in scoped]
    return notebooks


def cmd_check(args: argparse.Namespace) -> int:
    from .platform import detect
    from .results.run_folder import folder_for

    # A GPU profile's files can be checked anywhere; whether this machine could
    # run them only where it has the GPU.
    machine = not (args.profile == "gpu" and detect().engine_kind != "cuda")
    resolved = _check(_select(args.notebooks, args.file), args.profile, args.file, machine)
    if not machine:
        print("no GPU here: the files were checked, not whether a GPU could run them "
              "(precision support, KV-cache capacity)")
    for nb, r in resolved.items():
        print(f"ok  {nb}: profile {r.profile} -> {folder_for(r)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from .experiments import registry

    root = paths.project_root()
    for nb in registry.available():
        files = sorted((paths.params_dir() / nb).glob("*.yaml"))
        profiles = [f.stem for f in files if f.stem in ("cpu", "gpu")]
        # Other files there are layers for -f (a variant of a profile), not profiles.
        layers = [str(f.relative_to(root)) if f.is_relative_to(root) else str(f) for f in files
                  if f.stem not in profiles]
        line = f"{nb:<22} profiles: {', '.join(profiles) or '-'}"
        print(line + (f"   -f: {', '.join(layers)}" if layers else ""))
    return 0


def _measured_on(path: str) -> None:
    """Plan and analyse as the machine that measured (its environment.json says what it
    was); the notebooks' kernels inherit it through the environment."""
    from . import platform

    plat = platform.measured_on(path)  # a bad file: one line, before anything runs
    os.environ[platform.MEASURED_ON_ENV] = str(Path(path).resolve())
    platform.detect.cache_clear()
    print(f"measuring nothing: analysing as measured on {plat.gpu_name or f'{plat.cpu_count} CPUs'} "
          f"({plat.vllm_dist} {plat.vllm_version}), from {path}", flush=True)


def cmd_run(args: argparse.Namespace) -> int:
    from . import devices, platform
    from .study_run import StudyRun

    if args.measured_on:
        _measured_on(args.measured_on)
    notebooks = _select(args.notebooks, args.file)
    if args.plan:  # a GPU's plan can be read anywhere, as `check` reads its files
        machine = not (args.profile == "gpu" and platform.detect().engine_kind != "cuda")
        plan_run = StudyRun(_check(notebooks, args.profile, args.file, machine), args.profile, args.file)
        return _print_plan(plan_run, args.reuse_older)
    resolved = _check(notebooks, args.profile, args.file)
    plat = platform.detect()
    try:
        spread = devices.parse(args.devices, plat.engine_kind, plat.gpu_count, plat.cpu_count)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    run = StudyRun(resolved, args.profile, args.file, reuse_older=args.reuse_older, jobs=args.jobs,
                   start_budget_s=args.start_budget, measure=not args.measured_on, devices=spread)
    previous = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        run.execute()
    except Interrupted as exc:
        run.interrupted(exc.signum)
        code = 128 + exc.signum
        run.report(code)
        return code
    finally:
        for s, h in previous.items():
            signal.signal(s, h)
    failed = run.failures()
    code = EXIT_FAILED if failed and not args.allow_partial else 0
    run.report(code)
    return code


def _print_plan(run: Any, reuse_older: bool) -> int:
    """``run --plan``: the jobs, what the pool holds for each, nothing measured or executed."""
    from .measure import preview
    from .params import show
    from .results.environment import identity, identity_label

    label = identity_label(identity())
    refs = paths.project_root() / "outputs" / "reference"  # a job's digest names its parameters exactly
    table = preview.rows(run.plan(), run.pool, label, reuse_older, preview.reference_times(refs))
    print(f"plan of {', '.join(run.resolved)} ({run.profile} profile), pool {show(run.pool.root)}, "
          f"this code {label}:")
    print(preview.render(table))
    print(preview.summary(table))
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    from .experiments import compare, compare_study

    # two studies (folders of notebooks' run folders) compare notebook by notebook
    result = compare_study.comparisons(args.run_a, args.run_b, vary=args.vary)
    print("\n\n".join(compare.render_text(c) for c in result.comparisons))
    if args.out:
        compare_study.write_all(result, Path(args.out))
        print(f"\nwritten: {args.out}")
    for nb, why in result.refused.items():
        print(f"error: {nb} not compared: {why}", file=sys.stderr)
    return 1 if result.refused else 0


def cmd_docs(args: argparse.Namespace) -> int:
    """Regenerate what is derived: the README's results, docs/claims.md and
    docs/columns.md from the references, and the notebooks' saved form."""
    from . import notebook_files, readme
    from .atomic import write_text

    changed = []
    for path, text in readme.files().items():
        if not path.exists() or path.read_text() != text:
            write_text(path, text)
            changed.append(path)
    changed += [p for p in sorted(paths.notebooks_dir().glob("*.ipynb")) if notebook_files.normalise(p)]
    for p in changed:
        print(f"updated {p.relative_to(paths.project_root())}")
    print(f"{len(changed)} file(s) updated")
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m slmstudy", description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="command", required=True)
    for name, fn, helptext in (("run", cmd_run, "run the study plan, then execute notebooks with papermill"),
                               ("check", cmd_check, "validate parameters only")):
        p = sub.add_parser(name, help=helptext)
        p.add_argument("notebooks", nargs="*", help="notebook names or paths (default: all, the reports last)")
        p.add_argument("--profile", default="auto", choices=["auto", "cpu", "gpu"],
                       help="auto: gpu when an NVIDIA GPU is visible, else cpu")
        p.add_argument("-f", "--file", action="append", default=[],
                       help="YAML file of parameters overriding the profile's (repeatable; later wins)")
        if name == "run":
            p.add_argument("--reuse-older", action="store_true",
                           help="reuse results measured by other code (another commit); tables say which")
            p.add_argument("--allow-partial", action="store_true",
                           help="exit 0 even when some configurations failed (they are still reported)")
            p.add_argument("--jobs", type=int, default=0,
                           help="notebooks analysed at once after the measurements (default: up to 4)")
            p.add_argument("--measured-on", metavar="ENVIRONMENT_JSON",
                           help="measure nothing: plan and analyse a pool measured on another machine (a "
                                "lent GPU) as that machine, whose environment.json (or a run folder or pool "
                                "entry holding one) is named; a job the pool lacks is an error")
            p.add_argument("--devices", default="auto", metavar="auto|N|IDS",
                           help="spread independent configurations over this machine's GPUs, one engine "
                                "per free GPU (auto: every GPU; 1: one at a time; 0,2: those GPUs); on the "
                                "CPU engine, over cores (auto: one at a time)")
            p.add_argument("--plan", action="store_true",
                           help="print the plan (every job in order, what the measurement pool holds for it and "
                                "how long its newest entry took) and exit: nothing is measured or executed")
            p.add_argument("--start-budget", type=float, default=None, metavar="SECONDS",
                           help="start no new measurement after this many seconds; the notebooks wait for a "
                                "later run to finish the plan (for machines lent by the call)")
        p.set_defaults(fn=fn)
    sub.add_parser("list", help="list notebooks and their profiles").set_defaults(fn=cmd_list)
    sub.add_parser("docs", help="regenerate the README's results and docs/ from the references").set_defaults(
        fn=cmd_docs)
    c = sub.add_parser("compare", help="compare two run folders of one notebook, metric by metric; or two "
                                       "studies (folders of notebooks' run folders), notebook by notebook")
    c.add_argument("run_a", help="a run folder, or a study such as outputs/reference/h100")
    c.add_argument("run_b", help="a run folder of the same notebook, or a study")
    c.add_argument("--out", help="folder to write the comparison tables into")
    c.add_argument("--vary", action="append", default=[], metavar="KEY",
                   help="a parameter the comparison is an experiment on (may differ; repeatable), "
                        "e.g. engine.tensor_parallel_size")
    c.set_defaults(fn=cmd_compare)
    args = ap.parse_args(argv)
    try:
        return args.fn(args)
    except ParamsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PARAMS
    except SlmstudyError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_PARAMS
    except OSError as exc:
        # A read-only or full disk: one line naming the path, not a traceback.
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return EXIT_FAILED

