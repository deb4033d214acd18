"""The library's shape: imports run one way (parameters -> engine -> results ->
measurement -> experiments -> CLI and notebooks), with no cycle and no
function-local import that hides one; no module outgrows one job."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from slmstudy import paths

LIB = paths.PACKAGE_DIR

# Lower ranks may not import higher ones. Parts of one package import each other
# freely as long as there is no cycle (checked below).
RANK = {
    "errors": 0, "paths": 0, "atomic": 0, "stats": 0, "quality": 0, "devices": 0,
    "platform": 1, "catalog": 1, "hardware": 1,
    "analytic": 2, "modeldir": 2, "gguf_files": 2,
    "params": 3, "roofline": 3,
    "claims": 4, "telemetry": 4, "anatomy": 4,
    "engine": 5, "edge": 5,
    "serving": 6,
    "jobs": 7,
    "results": 8,
    "measure": 9, "figures": 9,
    "experiments": 10, "display": 10,
    "study_run": 11, "notebook_files": 11,
    "cli": 12, "readme": 11,
    "__main__": 13,
}
MAX_LINES = 500


def _modules() -> dict[str, Path]:
    out = {}
    for path in LIB.rglob("*.py"):
        rel = path.relative_to(LIB).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(["slmstudy", *parts])] = path
    return out


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """Every slmstudy module imported anywhere in the file (functions included)."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("slmstudy"):
                out.append((target, node.lineno))
                for alias in node.names:  # "from . import catalog" imports a module
                    out.append((f"{target}.{alias.name}", node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("slmstudy")]
    return out


def _group(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def _graph() -> dict[str, set[str]]:
    mods = _modules()
    graph: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        for target, _ in _imports(name, path):
            while target not in mods and "." in target:
                target = target.rsplit(".", 1)[0]  # "from x import name": the module x
            if target in mods and target != name:
                graph[name].add(target)
    return graph


def test_every_module_has_a_rank():
    groups = {_group(m) for m in _modules()} - {""}
    assert groups <= set(RANK), f"rank these in tests/test_structure.py: {sorted(groups - set(RANK))}"


def test_imports_run_one_way():
    problems = []
    for name, targets in _graph().items():
        if name == "slmstudy":  # the package's lazy entry points (open_study) sit above everything
            continue
        for target in targets:
            a, b = _group(name), _group(target)
            if a != b and b and RANK[b] > RANK[a]:
                problems.append(f"{name} ({a}, rank {RANK[a]}) imports {target} ({b}, rank {RANK[b]})")
    assert not problems, "\n".join(sorted(problems))


def test_no_import_cycles():
    graph = _graph()
    graph.pop("slmstudy", None)
    state: dict[str, int] = {}
    cycles = []

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        for nxt in sorted(graph.get(node, ())):
            if nxt == "slmstudy":
                continue
            if state.get(nxt) == 1:
                cycles.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(cycles)


@pytest.mark.parametrize("name", sorted(_modules()))
def test_modules_stay_small(name):
    lines = len(_modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines: does it still have one job?"
