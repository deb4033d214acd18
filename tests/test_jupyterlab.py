"""JupyterLab out of the box: the notebooks are committed in the form JupyterLab saves
them (opening and saving leaves git clean), and a headless JupyterLab server started
from the venv finds the project's kernel, opens a notebook, runs its imports cell in
a kernel session and saves it back unchanged."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import time
import uuid

import httpx
import nbformat
import pytest

from slmstudy import notebook_files, paths

NOTEBOOKS = sorted(paths.notebooks_dir().glob("*.ipynb"))
TOKEN = "slmstudy-test"


def _kernel_language_info() -> dict:
    from jupyter_client.manager import start_new_kernel

    km, kc = start_new_kernel(kernel_name=notebook_files.KERNEL_NAME)
    try:
        kc.kernel_info()
        return kc.get_shell_msg(timeout=60)["content"]["language_info"]
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_is_saved_as_jupyterlab_saves_it(path):
    text = path.read_text()
    nb = nbformat.read(str(path), as_version=4)
    nbformat.validate(nb)
    assert (nb.nbformat, nb.nbformat_minor) == (4, 5) and all(c.get("id") for c in nb.cells)
    assert all(not c.get("outputs") and c.get("execution_count") is None for c in nb.cells if c.cell_type == "code")
    again = nbformat.writes(notebook_files.canonical(nb, path))
    assert again + ("" if again.endswith("\n") else "\n") == text, "run `python -m slmstudy docs` to normalise"
    params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(params) == 1 and "profile = " in params[0].source


def test_committed_language_info_is_what_the_kernel_reports():
    info = _kernel_language_info()
    for path in NOTEBOOKS:
        assert nbformat.read(str(path), as_version=4).metadata.language_info == info, path.name


@pytest.fixture(scope="module")
def lab():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", f"--ServerApp.port={port}",
                             "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={TOKEN}", "--allow-root",
                             f"--ServerApp.root_dir={paths.project_root()}", "--ServerApp.open_browser=False"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, headers={"Authorization": f"token {TOKEN}"}, trust_env=False, timeout=30)
    deadline = time.monotonic() + 90
    while True:
        try:
            if client.get("/api/status").status_code == 200:
                break
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline and proc.poll() is None, "JupyterLab did not start"
        time.sleep(0.5)
    yield client, port
    client.close()
    proc.terminate()
    proc.wait(timeout=30)


def test_lab_serves_the_project_kernel_and_the_notebooks(lab):
    client, _ = lab
    specs = client.get("/api/kernelspecs").json()["kernelspecs"]
    assert specs[notebook_files.KERNEL_NAME]["spec"]["display_name"] == notebook_files.DISPLAY_NAME
    assert client.get("/lab").status_code == 200  # the JupyterLab page itself
    listing = {c["name"] for c in client.get("/api/contents/notebooks").json()["content"]}
    assert {p.name for p in NOTEBOOKS} <= listing


def _execute(port: int, kernel_id: str, code: str) -> dict:
    """Run ``code`` in the kernel over its websocket, as JupyterLab does; the reply's content."""
    from tornado.httpclient import HTTPRequest
    from tornado.websocket import websocket_connect

    async def go() -> dict:
        url = f"ws://127.0.0.1:{port}/api/kernels/{kernel_id}/channels"
        ws = await websocket_connect(HTTPRequest(url, headers={"Authorization": f"token {TOKEN}"}))
        msg_id = uuid.uuid4().hex
        await ws.write_message(json.dumps({
            "header": {"msg_id": msg_id, "username": "test", "session": uuid.uuid4().hex, "msg_type": "execute_request",
                       "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
            "content": {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                        "allow_stdin": False, "stop_on_error": True}}))
        while True:
            msg = json.loads(await asyncio.wait_for(ws.read_message(), 120))
            if msg.get("parent_header", {}).get("msg_id") == msg_id and msg["msg_type"] == "execute_reply":
                ws.close()
                return msg["content"]

    return asyncio.run(go())


def test_open_run_imports_and_save_leaves_git_clean(lab):
    client, port = lab
    rel = "notebooks/03_batch_scaling.ipynb"
    before = (paths.project_root() / rel).read_text()

    def git_status() -> str:
        return subprocess.run(["git", "status", "--porcelain", rel], cwd=paths.project_root(),
                              capture_output=True, text=True).stdout

    status_before = git_status()
    model = client.get(f"/api/contents/{rel}").json()
    assert model["content"]["metadata"]["kernelspec"]["name"] == notebook_files.KERNEL_NAME
    session = client.post("/api/sessions", json={"path": rel, "type": "notebook", "name": "",
                                                  "kernel": {"name": notebook_files.KERNEL_NAME}}).json()
    try:
        imports = next(c for c in model["content"]["cells"]
                       if c["cell_type"] == "code" and "import slmstudy" in "".join(c["source"]))
        reply = _execute(port, session["kernel"]["id"], "".join(imports["source"]))
        assert reply["status"] == "ok", reply
        # save, as JupyterLab does after opening: the same cells, the kernel's metadata
        put = client.put(f"/api/contents/{rel}", json={"type": "notebook", "format": "json",
                                                        "content": model["content"]})
        assert put.status_code == 200
        assert (paths.project_root() / rel).read_text() == before
        assert git_status() == status_before  # saving changed nothing git sees
    finally:
        client.delete(f"/api/sessions/{session['id']}")
