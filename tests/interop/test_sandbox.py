"""Real MCP servers in mcp-hub's sandbox, through the hub: server-filesystem
confined to one directory, server-everything by `npx -y` and mcp-server-fetch
by `uvx`, both with the default profile (no `sandbox` key at all), and
mcp-server-time by `pipx run` with `network: none`. The package runners'
packages are installed by the hub before their first start and pinned. The hub
runs as root here, so the servers run as nobody."""

import asyncio
import os
from contextlib import asynccontextmanager

import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import HERE, NODE_MODULES, TOKEN, Hub

AUTH = {"Authorization": f"Bearer {TOKEN}"}
EVERYTHING = "@modelcontextprotocol/server-everything@2026.8.31"
CA = "/etc/ssl/certs/ca-certificates.crt"


@asynccontextmanager
async def connect(hub, server):
    client = create_mcp_http_client(headers=AUTH)
    client.timeout = 300
    async with streamable_http_client(hub.url(f"/{server}/mcp"), http_client=client) as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            await s.initialize()
            yield s


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def run(coro, timeout=400):
    return asyncio.run(asyncio.wait_for(coro, timeout))


@pytest.fixture(scope="module")
def confined(tmp_path_factory):
    base = tmp_path_factory.mktemp("confined")
    os.chmod(base, 0o755)
    inside = base / "inside"
    inside.mkdir(mode=0o777)
    os.chmod(inside, 0o777)
    (inside / "notes.txt").write_text("inside the sandbox\n")
    (base / "outside.txt").write_text("must stay unseen\n")
    return base


@pytest.fixture(scope="module")
def hub(tmp_path_factory, confined):
    fs = str(NODE_MODULES / "@modelcontextprotocol" / "server-filesystem" / "dist" / "index.js")
    # What the registries need from the host, passed on explicitly: the sandbox
    # gives a server only its configured environment.
    npm_env = {"npm_config_cafile": CA, "NODE_EXTRA_CA_CERTS": CA, "npm_config_update_notifier": "false"}
    for k in ("npm_config_registry", "NPM_CONFIG_REGISTRY"):
        if os.environ.get(k):
            npm_env[k] = os.environ[k]
    uv_env = {"UV_PYTHON": "/usr/bin/python3", "UV_PYTHON_DOWNLOADS": "never", "UV_NATIVE_TLS": "1",
              "SSL_CERT_FILE": CA}
    for k in ("UV_INDEX_URL", "UV_DEFAULT_INDEX", "PIP_INDEX_URL"):
        if os.environ.get(k):
            uv_env[k] = os.environ[k]
    pip_env = {"PIPX_DEFAULT_PYTHON": "/usr/bin/python3", "SSL_CERT_FILE": CA}
    if os.environ.get("PIP_INDEX_URL"):
        pip_env["PIP_INDEX_URL"] = os.environ["PIP_INDEX_URL"]
    state = tmp_path_factory.mktemp("state")
    os.chmod(state, 0o755)
    servers = {
        "fs": {"command": "node", "args": [fs, str(confined / "inside")],
               "sandbox": {"write": [str(confined / "inside")], "network": "none"}},
        "everything": {"command": "npx", "args": ["-y", EVERYTHING, "stdio"], "env": npm_env,
                       "initTimeout": "300s"},
        "fetch": {"command": str(HERE / ".venv" / "bin" / "uvx"), "args": ["mcp-server-fetch"], "env": uv_env,
                  "initTimeout": "300s"},
        # pipx itself is not needed: the hub installs into a venv of this python.
        "time": {"command": "pipx", "args": ["run", "--spec", "mcp-server-time==2026.10.19", "mcp-server-time",
                                             "--local-timezone=UTC"],
                 "env": pip_env, "initTimeout": "300s", "sandbox": {"network": "none"}},
    }
    h = Hub(servers, proxy={"options": {"stateDir": str(state)}}, tmp=tmp_path_factory.mktemp("hub"))
    h.state = state
    yield h
    h.stop()


def test_filesystem_is_confined_to_its_directory(hub, confined):
    async def go():
        async with connect(hub, "fs") as s:
            inside = await s.call_tool("read_text_file", {"path": str(confined / "inside" / "notes.txt")})
            assert not inside.is_error, text_of(inside)
            assert "inside the sandbox" in text_of(inside)
            wrote = await s.call_tool("write_file", {"path": str(confined / "inside" / "new.txt"), "content": "hi"})
            assert not wrote.is_error, text_of(wrote)
            outside = await s.call_tool("read_text_file", {"path": str(confined / "outside.txt")})
            assert outside.is_error, text_of(outside)
            assert "must stay unseen" not in text_of(outside)
            shadow = await s.call_tool("read_text_file", {"path": "/etc/shadow"})
            assert shadow.is_error
    run(go())
    assert (confined / "inside" / "new.txt").read_text() == "hi"
    # Written by the sandboxed server, as the sandbox's user (nobody for a root hub).
    assert (confined / "inside" / "new.txt").stat().st_uid == (65534 if os.geteuid() == 0 else os.geteuid())


def test_everything_via_npx_with_the_default_profile(hub):
    async def go():
        async with connect(hub, "everything") as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            assert "echo" in tools, tools
            r = await s.call_tool("echo", {"message": "sandboxed npx"})
            assert "sandboxed npx" in text_of(r)
    run(go())
    st = hub_status(hub, "everything")
    assert st["sandbox"]["enabled"] is True, st


def test_fetch_via_uvx_with_the_default_profile(hub):
    async def go():
        async with connect(hub, "fetch") as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            assert "fetch" in tools, tools
    run(go())
    assert hub_status(hub, "fetch")["sandbox"]["enabled"] is True
    assert pinned(hub, "fetch")["package"] == "mcp-server-fetch"


def test_everything_was_installed_and_pinned(hub):
    # The npx package was installed before its first start, at the version asked.
    async def go():
        async with connect(hub, "everything") as s:
            await s.list_tools()
    run(go())
    rec = pinned(hub, "everything")
    assert rec["package"] == "@modelcontextprotocol/server-everything", rec
    assert rec["version"] == EVERYTHING.rsplit("@", 1)[1], rec
    assert rec["lockfile"].endswith("package-lock.json") and len(rec["lockfileSha256"]) == 64, rec


def test_pipx_run_installed_then_started_offline(hub):
    async def go():
        async with connect(hub, "time") as s:
            tools = {t.name for t in (await s.list_tools()).tools}
            assert "get_current_time" in tools, tools
            r = await s.call_tool("get_current_time", {"timezone": "UTC"})
            assert "UTC" in text_of(r), text_of(r)
    run(go())
    rec = pinned(hub, "time")
    assert (rec["package"], rec["version"]) == ("mcp-server-time", "2026.10.19"), rec
    assert rec["lockfile"].endswith("requirements.lock"), rec


def pinned(hub, name):
    """The current install from <stateDir>/<name>/pkg/.mcp-hub-install.json."""
    import json
    with open(os.path.join(hub.state, name, "pkg", ".mcp-hub-install.json")) as f:
        return json.load(f)["current"]


def hub_status(hub, name):
    import json
    import urllib.request
    req = urllib.request.Request(hub.url("/status"), headers=AUTH)
    with urllib.request.urlopen(req, timeout=10) as r:
        return next(s for s in json.load(r)["servers"] if s["name"] == name)
