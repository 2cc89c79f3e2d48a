"""MCP 2026-07-28 through the hub: the official Python SDK client pinned to the
stateless era, and in auto mode (it must negotiate 2026-07-28 through the hub),
against server-everything, a 2025-era stdio server, in shared and per-client
mode. Questions the server asks during a call (sampling, elicitation) reach
the modern client as input_required and the hub holds the call until the
client's retry (MRTR); the raw HTTP checks the headers and caching hints."""

import asyncio
import json
import urllib.request

import mcp.types as types
import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import TOKEN
from test_python_sdk import run, text_of

AUTH = {"Authorization": f"Bearer {TOKEN}"}
SERVERS = ["everything", "everything-pc"]


def client(hub, server, mode, **kw):
    transport = streamable_http_client(hub.url(f"/{server}/mcp"), http_client=create_mcp_http_client(headers=AUTH))
    return Client(transport, mode=mode, **kw)


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("mode", ["2026-07-28", "auto"])
def test_modern_client_calls_a_legacy_server(hub, server, mode):
    async def go():
        async with client(hub, server, mode) as c:
            assert c.protocol_version == "2026-07-28", f"negotiated {c.protocol_version}"
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"echo", "get-sum"} <= names
            assert text_of(await c.call_tool("echo", {"message": "modern"})) == "Echo: modern"
            prompts = {p.name for p in (await c.list_prompts()).prompts}
            assert "simple-prompt" in prompts
    run(go())


@pytest.mark.parametrize("server", SERVERS)
def test_elicitation_and_sampling_become_input_required(hub, server):
    asked = {"elicitation": 0, "sampling": 0}

    async def elicit(context, params):
        asked["elicitation"] += 1
        return types.ElicitResult(action="accept", content={"name": "modern client"})

    async def sample(context, params: types.CreateMessageRequestParams):
        asked["sampling"] += 1
        return types.CreateMessageResult(role="assistant", model="modern",
                                         content=types.TextContent(type="text", text="sampled by the modern client"))

    async def go():
        async with client(hub, server, "2026-07-28", elicitation_callback=elicit, sampling_callback=sample) as c:
            r = await c.call_tool("trigger-elicitation-request", {})
            assert not r.is_error, text_of(r)
            assert "modern client" in text_of(r)
            r = await c.call_tool("trigger-sampling-request", {"prompt": "say hi"})
            assert not r.is_error, text_of(r)
            assert "sampled by the modern client" in text_of(r)
    run(go())
    assert asked == {"elicitation": 1, "sampling": 1}


def post(hub, server, body, headers):
    req = urllib.request.Request(hub.url(f"/{server}/mcp"), data=json.dumps(body).encode(), method="POST",
                                 headers={"Content-Type": "application/json",
                                          "Accept": "application/json, text/event-stream", **AUTH, **headers})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"null")


def modern(method, params=None, **meta):
    p = dict(params or {})
    p["_meta"] = {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                  "io.modelcontextprotocol/clientCapabilities": {}, **meta}
    return {"jsonrpc": "2.0", "id": 1, "method": method, "params": p}


H = {"MCP-Protocol-Version": "2026-07-28"}


def test_discover_and_cache_hints_from_a_legacy_server(hub):
    code, r = post(hub, "everything", modern("server/discover"), {**H, "Mcp-Method": "server/discover"})
    assert code == 200, r
    res = r["result"]
    assert res["resultType"] == "complete" and "2026-07-28" in res["supportedVersions"]
    assert res["ttlMs"] == 0 and res["cacheScope"] == "private"
    assert "tools" in res["capabilities"]
    assert res["_meta"]["io.modelcontextprotocol/serverInfo"]["name"]
    code, r = post(hub, "everything", modern("tools/list"), {**H, "Mcp-Method": "tools/list"})
    assert code == 200 and r["result"]["resultType"] == "complete" and r["result"]["ttlMs"] == 0
    # No session was made for any of it.
    code, r = post(hub, "everything", modern("tools/call", {"name": "echo", "arguments": {"message": "x"}}),
                   {**H, "Mcp-Method": "tools/call", "Mcp-Name": "echo"})
    assert code == 200 and r["result"]["resultType"] == "complete", r


# --- 2026-07-28 upstreams: a dual-era Python-SDK server over stdio and streamable HTTP ---

import pathlib

from conftest import HERE, Hub, Proc, free_port
from test_python_sdk import TRANSPORTS, connect


@pytest.fixture(scope="module")
def modern_hub(tmp_path_factory):
    logs = tmp_path_factory.mktemp("modern-upstream")
    port = free_port()
    http = Proc("py-modern-http", [str(HERE / ".venv" / "bin" / "python"), str(HERE / "py_modern_server.py"),
                                   "http", str(port)], port, logs)
    server = [str(HERE / "py_modern_server.py"), "stdio"]
    py = str(HERE / ".venv" / "bin" / "python")
    h = Hub({
        "modern": {"command": py, "args": server, "sandbox": False},
        "modern-http": {"url": f"http://127.0.0.1:{port}/mcp", "transportType": "streamable-http"},
        "modern-pc": {"command": py, "args": server, "sandbox": False, "session": "per-client"},
        "pinned-legacy": {"command": py, "args": server, "sandbox": False, "protocol": "legacy"},
    }, tmp=tmp_path_factory.mktemp("hub-modern"))
    yield h
    h.stop()
    http.stop()


@pytest.mark.parametrize("server", ["modern", "modern-http", "modern-pc"])
@pytest.mark.parametrize("transport", TRANSPORTS)
def test_legacy_client_on_a_modern_upstream(modern_hub, server, transport):
    """The hub speaks 2026-07-28 upstream for a 2025 client, and drives the
    input_required loop with real elicitation requests on the client's stream."""
    asked = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "legacy client"})

    async def go():
        async with connect(modern_hub, server, transport, elicitation_callback=elicit) as s:
            # A per-client upstream gets the client's own initialize: a dual-era
            # server then speaks the 2025 era, which is what that client speaks.
            want = "2026-07-28" if server != "modern-pc" else "2025-11-25"
            assert text_of(await s.call_tool("era", {})) == want
            assert text_of(await s.call_tool("add", {"a": 2, "b": 3})) == "5"
            r = await s.call_tool("greet", {})
            assert not r.is_error, text_of(r)
            assert text_of(r) == "hello legacy client"
    run(go())
    assert asked == ["What is your name?"]


@pytest.mark.parametrize("server", ["modern", "modern-http", "modern-pc"])
def test_modern_client_on_a_modern_upstream(modern_hub, server):
    async def elicit(context, params):
        return types.ElicitResult(action="accept", content={"name": "modern client"})

    async def go():
        async with client(modern_hub, server, "auto", elicitation_callback=elicit) as c:
            assert c.protocol_version == "2026-07-28"
            if server != "modern-pc":
                assert text_of(await c.call_tool("era", {})) == "2026-07-28"
            assert text_of(await c.call_tool("greet", {})) == "hello modern client"
    run(go())


def test_protocol_legacy_keeps_a_dual_era_server_on_2025(modern_hub):
    async def go():
        async with connect(modern_hub, "pinned-legacy", "streamable-http") as s:
            assert text_of(await s.call_tool("era", {})) != "2026-07-28"
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_typescript_1x_client_on_a_modern_upstream(modern_hub, transport):
    from test_typescript_sdk import ts
    out = ts(modern_hub, "modern", transport, "modern")
    assert out["serverName"] == "py-modern-upstream"
    assert {"add", "era", "greet"} <= set(out["tools"])
    assert out["add"] == "5"
    assert out["era"] == "2026-07-28", "the hub speaks 2026-07-28 upstream for a 2025 client"


def test_claude_code_lists_a_modern_upstream(modern_hub, tmp_path):
    """Claude Code (2025 era) connects to a server that speaks 2026-07-28
    upstream: the hub answers its initialize from server/discover."""
    from test_clients import BIN, run, write_config
    write_config(modern_hub, tmp_path, "claude-code", "--server", "modern")
    code, out = run([str(BIN / "claude"), "mcp", "list"], tmp_path)
    print(out)
    line = next(l for l in out.splitlines() if l.startswith("modern:"))
    assert "Connected" in line, out


# --- First contact: the first 2026-07-28 request to a lazily started modern server ---

def _status(hub, name):
    req = urllib.request.Request(hub.url("/status"), headers=AUTH)
    with urllib.request.urlopen(req, timeout=10) as r:
        return next(s for s in json.loads(r.read())["servers"] if s["name"] == name)


def _wait(hub, name, pred, what, timeout=30):
    import time
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        s = _status(hub, name)
        if pred(s):
            return s
        time.sleep(0.1)
    raise AssertionError(f"{name}: {what} did not happen within {timeout}s: {s}")


@pytest.fixture(scope="module")
def lazy_hub(tmp_path_factory):
    py = str(HERE / ".venv" / "bin" / "python")
    server = [str(HERE / "py_modern_server.py"), "stdio"]
    h = Hub({"lazy": {"command": py, "args": server, "sandbox": False, "protocol": "auto",
                      "idleTimeout": "2s"}},
            tmp=tmp_path_factory.mktemp("hub-lazy"))
    yield h
    h.stop()


def test_the_first_modern_request_to_a_lazy_modern_server_keeps_its_meta(lazy_hub):
    """The upstream's era is known only once it is up: the first request after
    the hub starts, after an idle stop and after a crash restart must reach
    the modern server with the client's `_meta` envelope, like every other."""
    import os
    import signal

    async def first_list():
        async with client(lazy_hub, "lazy", "2026-07-28") as c:
            tools = await c.list_tools()
            assert {"add", "era", "greet"} <= {t.name for t in tools.tools}
            assert text_of(await c.call_tool("era", {})) == "2026-07-28"

    assert _status(lazy_hub, "lazy")["state"] == "stopped", "the server starts on first use"
    run(first_list())
    # After an idle stop.
    _wait(lazy_hub, "lazy", lambda s: s["state"] == "stopped", "the idle stop")
    run(first_list())
    # After a crash restart: the next request starts it again.
    pid = _wait(lazy_hub, "lazy", lambda s: s["pid"], "a running child")["pid"]
    os.kill(pid, signal.SIGKILL)
    # Once the crash is noticed and the backoff is over (during it, a request
    # is refused at once with a 503, by design), the next request is the
    # first to the restarted server.
    _wait(lazy_hub, "lazy", lambda s: s["pid"] != pid and s["state"] in ("ready", "stopped"),
          "the restart after the crash")
    run(first_list())


# --- Groups in the new era: a legacy member (server-everything) and a modern one ---

@pytest.fixture(scope="module")
def era_group_hub(tmp_path_factory):
    from conftest import NODE_MODULES
    everything = [str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"]
    py = str(HERE / ".venv" / "bin" / "python")
    servers = {
        "everything": {"command": "node", "args": everything, "sandbox": False},
        "modern": {"command": py, "args": [str(HERE / "py_modern_server.py"), "stdio"], "sandbox": False},
    }
    proxy = {"options": {"groups": {"eras": {"servers": ["everything", "modern"]}}}}
    h = Hub(servers, proxy=proxy, tmp=tmp_path_factory.mktemp("hub-era-group"))
    yield h
    h.stop()


@pytest.mark.parametrize("mode", ["2026-07-28", "auto"])
def test_a_group_serves_the_new_era(era_group_hub, mode):
    """The Python SDK pinned to 2026-07-28 and in auto mode lists the group
    and calls both members' prefixed tools; the legacy member's elicitation
    reaches the client through input_required and back."""
    asked = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "group client"})

    async def go():
        async with client(era_group_hub, "g/eras", mode, elicitation_callback=elicit) as c:
            assert c.protocol_version == "2026-07-28", f"negotiated {c.protocol_version}"
            names = {t.name for t in (await c.list_tools()).tools}
            assert {"everything__echo", "modern__add", "modern__greet"} <= names, names
            assert text_of(await c.call_tool("modern__add", {"a": 2, "b": 3})) == "5"
            assert "hi" in text_of(await c.call_tool("everything__echo", {"message": "hi"}))
            r = await c.call_tool("everything__trigger-elicitation-request", {})
            assert not r.is_error, text_of(r)
            assert "group client" in text_of(r)
            # The modern member asks through its own input_required: the hub
            # turns it into a question on the group's call, and back.
            r = await c.call_tool("modern__greet", {})
            assert not r.is_error, text_of(r)
            assert text_of(r) == "hello group client"
    run(go())
    assert len(asked) == 2, asked


def test_a_raw_2026_tools_list_on_a_group_is_served(era_group_hub):
    code, r = post(era_group_hub, "g/eras", modern("tools/list", {}), {**H, "Mcp-Method": "tools/list"})
    assert code == 200, r
    assert r["result"]["resultType"] == "complete", r
    names = {t["name"] for t in r["result"]["tools"]}
    assert {"everything__echo", "modern__add"} <= names, names
