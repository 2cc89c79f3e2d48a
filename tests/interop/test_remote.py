"""Remote upstreams through the hub, with real software: server-postgres bridged
to SSE by supergateway (the bridge-container pattern the hub replaces) on a real
PostgreSQL, dbhub over streamable HTTP, a Python-SDK SSE server (the flavour
postgres-mcp speaks), server-everything in its sse and streamableHttp modes, and
another mcp-hub. Driven by the official Python SDK client over both of the hub's
transports."""

import asyncio
import json
import time
import urllib.error
import urllib.request

import pytest
from mcp.shared.exceptions import MCPError

from conftest import HERE, NODE_MODULES, TOKEN, Hub, Proc, free_port
from test_conformance import fixture_binary
from test_python_sdk import TRANSPORTS, connect, run, text_of

MCP = NODE_MODULES / "@modelcontextprotocol"


@pytest.fixture(scope="module")
def remote(postgres, tmp_path_factory):
    logs = tmp_path_factory.mktemp("remote")
    ports = {k: free_port() for k in ["pg_main", "pg_ts", "dbhub", "pysse", "ev_sse", "ev_http"]}
    pg_server = str(MCP / "server-postgres" / "dist" / "index.js")
    sg = str(NODE_MODULES / "supergateway" / "dist" / "index.js")
    dsn = f"postgresql://postgres@127.0.0.1:{postgres}"
    procs = {
        "pg_main": Proc("sg-maindb", ["node", sg, "--stdio", f"node {pg_server} {dsn}/maindb", "--port", str(ports["pg_main"]),
                                      "--outputTransport", "sse"], ports["pg_main"], logs),
        "pg_ts": Proc("sg-tsdb", ["node", sg, "--stdio", f"node {pg_server} {dsn}/tsdb", "--port", str(ports["pg_ts"]),
                                  "--outputTransport", "sse"], ports["pg_ts"], logs),
        "dbhub": Proc("dbhub", ["node", str(NODE_MODULES / "@bytebase" / "dbhub" / "dist" / "index.js"), "--transport", "http",
                                "--port", str(ports["dbhub"]), "--dsn", f"{dsn}/maindb?sslmode=disable"], ports["dbhub"], logs),
        "pysse": Proc("py-sse", [str(HERE / ".venv" / "bin" / "python"), str(HERE / "py_sse_server.py"), str(ports["pysse"])],
                      ports["pysse"], logs),
        "ev_sse": Proc("everything-sse", ["node", str(MCP / "server-everything" / "dist" / "index.js"), "sse"], ports["ev_sse"],
                       logs, env={"PORT": str(ports["ev_sse"])}),
        "ev_http": Proc("everything-http", ["node", str(MCP / "server-everything" / "dist" / "index.js"), "streamableHttp"],
                        ports["ev_http"], logs, env={"PORT": str(ports["ev_http"])}),
    }
    upstream_hub = Hub({"fx": {"command": fixture_binary()}}, tmp=tmp_path_factory.mktemp("hub-a"))
    url = lambda k, path: f"http://127.0.0.1:{ports[k]}{path}"
    servers = {
        "postgres": {"url": url("pg_main", "/sse")},
        "timescale": {"url": url("pg_ts", "/sse")},
        "dbhub": {"url": url("dbhub", "/mcp"), "transportType": "streamable-http"},
        "pysse": {"url": url("pysse", "/sse"), "timeout": 20_000_000_000},
        "everything-sse": {"url": url("ev_sse", "/sse")},
        "everything-http": {"url": url("ev_http", "/mcp"), "transportType": "streamable-http"},
        "everything-http-pc": {"url": url("ev_http", "/mcp"), "transportType": "streamable-http", "session": "per-client"},
        "chained": {"url": upstream_hub.url("/fx/mcp"), "transportType": "streamable-http",
                    "headers": {"Authorization": "Bearer ${CHAIN_TOKEN}"}},
        "down": {"url": f"http://127.0.0.1:{free_port()}/mcp", "transportType": "streamable-http", "initTimeout": "3s"},
    }
    hub = Hub(servers, tmp=tmp_path_factory.mktemp("hub-b"), env={"CHAIN_TOKEN": TOKEN})
    yield hub, procs
    hub.stop()
    upstream_hub.stop()
    for p in procs.values():
        p.stop()


def status(hub, name):
    req = urllib.request.Request(hub.url("/status"), headers={"Authorization": f"Bearer {TOKEN}"})
    body = json.load(urllib.request.urlopen(req, timeout=10))
    return next(s for s in body["servers"] if s["name"] == name)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_two_postgres_over_sse_side_by_side(remote, transport):
    hub, _ = remote

    async def go():
        async with connect(hub, "postgres", transport) as main, connect(hub, "timescale", transport) as ts:
            assert "query" in {t.name for t in (await main.list_tools()).tools}
            rows_main = json.loads(text_of(await main.call_tool("query", {"sql": "SELECT name FROM notes ORDER BY id"})))
            rows_ts = json.loads(text_of(await ts.call_tool("query", {"sql": "SELECT name FROM notes ORDER BY id"})))
            assert [r["name"] for r in rows_main] == ["main-first", "main-second"]
            assert [r["name"] for r in rows_ts] == ["ts-first", "ts-second"]
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_dbhub_over_streamable_http(remote, transport):
    hub, _ = remote

    async def go():
        async with connect(hub, "dbhub", transport) as s:
            assert "execute_sql" in {t.name for t in (await s.list_tools()).tools}
            out = text_of(await s.call_tool("execute_sql", {"sql": "SELECT name FROM notes WHERE id = 2"}))
            assert "main-second" in out and "ts-second" not in out
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
@pytest.mark.parametrize("server", ["everything-sse", "everything-http", "everything-http-pc"])
def test_everything_as_remote_upstream(remote, server, transport):
    hub, _ = remote

    async def go():
        seen = []

        async def on_progress(progress, total, message):
            seen.append(progress)

        async with connect(hub, server, transport) as s:
            assert text_of(await s.call_tool("echo", {"message": "remote"})) == "Echo: remote"
            resources = (await s.list_resources()).resources
            assert (await s.read_resource(resources[0].uri)).contents
            assert (await s.get_prompt("simple-prompt")).messages
            r = await s.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 2}, progress_callback=on_progress)
            assert "completed" in text_of(r).lower()
        assert seen == [1, 2]
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_python_sdk_sse_server_and_chained_hub(remote, transport):
    hub, _ = remote

    async def go():
        async with connect(hub, "pysse", transport) as s:
            assert text_of(await s.call_tool("add", {"a": 20, "b": 22})) == "42"
        async with connect(hub, "chained", transport) as s:
            assert text_of(await s.call_tool("echo", {"text": "two hubs"})) == "two hubs"
            r = await s.call_tool("slow", {"ms": 100}, progress_callback=lambda *a: asyncio.sleep(0))
            assert text_of(r) == "slept 100ms"
    run(go())
    assert status(hub, "chained")["kind"] == "streamable-http"


def test_down_upstream_answers_503_and_blocks_nothing(remote):
    hub, _ = remote
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                       "params": {"protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
    req = urllib.request.Request(hub.url("/down/mcp"), data=body.encode(), method="POST", headers={
        "Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", "Accept": "application/json, text/event-stream"})
    t = time.time()
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(req, timeout=30)
    assert e.value.code == 503
    err = json.load(e.value)["error"]
    assert "down" in err["message"] and "Connection refused" in err["message"], err
    assert time.time() - t < 10
    st = status(hub, "down")
    assert st["state"] in ("backoff", "failed") and "Connection refused" in st["lastError"]
    sse = urllib.request.Request(hub.url("/down/sse"), headers={"Authorization": f"Bearer {TOKEN}"})
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(sse, timeout=10)
    assert e.value.code == 503
    assert status(hub, "postgres")["state"] == "ready"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_upstream_killed_mid_call_then_back(remote, transport):
    hub, procs = remote

    async def go():
        async with connect(hub, "pysse", transport) as s:
            assert text_of(await s.call_tool("add", {"a": 1, "b": 1})) == "2"
            call = asyncio.create_task(s.call_tool("slow", {"seconds": 30}))
            await asyncio.sleep(0.5)
            t = time.time()
            procs["pysse"].stop()
            with pytest.raises(MCPError) as e:
                await call
            assert time.time() - t < 5, "the in-flight call fails promptly"
            assert "pysse" in str(e.value) and "lost" in str(e.value), str(e.value)
            st = status(hub, "pysse")
            assert st["state"] in ("backoff", "starting", "failed") and st["lastError"], st
            procs["pysse"].start()
            deadline = time.time() + 60
            while status(hub, "pysse")["state"] != "ready":
                assert time.time() < deadline, status(hub, "pysse")
                await asyncio.sleep(0.2)
            # The same client session, no new initialize.
            assert text_of(await s.call_tool("add", {"a": 2, "b": 3})) == "5"
            assert status(hub, "pysse")["restarts"] >= 1
    run(go())
