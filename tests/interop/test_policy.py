"""Named clients against the real server-everything (npm): what each client
sees and may call on every front end (streamable HTTP, legacy SSE,
2026-07-28, the OpenAPI view and a group), the refusal naming the rule, the
audit line and metrics naming the client, a client's rate and session cap
against another client at the same time."""

import hashlib
import json
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import pytest
from mcp.client.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from conftest import NODE_MODULES, TOKEN, Hub
from test_python_sdk import connect, run, text_of

LAPTOP = "laptop-token-0123456789"
DESKTOP = "desktop-token-0123456789"
LIMITED = "limited-token-0123456789"
CROWD = "crowd-token-0123456789"
ALLOWED = {"echo", "get-sum"}
RULE = "mcpProxy.options.clients.laptop.tools.everything"


def sha(t: str) -> str:
    return hashlib.sha256(t.encode()).hexdigest()


@pytest.fixture(scope="module")
def policy_hub(tmp_path_factory):
    everything = [str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"]
    servers = {
        "everything": {"command": "node", "args": everything, "sandbox": False,
                       "options": {"logEnabled": True}},
        "other": {"command": "node", "args": everything, "sandbox": False},
    }
    clients = {
        "laptop": {"tokenSha256": sha(LAPTOP), "servers": ["everything"], "groups": ["all"],
                   "tools": {"everything": {"mode": "allow", "list": sorted(ALLOWED)}}},
        "crowd": {"tokenSha256": sha(CROWD), "maxSessions": 8},
        "desktop": {"token": DESKTOP, "groups": ["*"]},
        "limited": {"tokenSha256": sha(LIMITED), "rate": "5/s"},
    }
    proxy = {"options": {"clients": clients,
                         "groups": {"all": {"servers": ["everything"]}}}}
    h = Hub(servers, proxy=proxy, tmp=tmp_path_factory.mktemp("policy-hub"))
    yield h
    h.stop()


def http(hub, method, path, token, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(hub.url(path), data=data, method=method)
    req.add_header("Authorization", f"Bearer {token}")
    if data is not None:
        req.add_header("Content-Type", "application/json")
        req.add_header("Accept", "application/json, text/event-stream")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            return r.status, r.read().decode(), r.headers
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), e.headers


def modern(hub, route, token):
    transport = streamable_http_client(
        hub.url(f"/{route}/mcp"),
        http_client=create_mcp_http_client(headers={"Authorization": f"Bearer {token}"}))
    return Client(transport, mode="2026-07-28")


@pytest.mark.parametrize("transport", ["streamable-http", "sse"])
def test_laptop_sees_and_calls_only_its_tools_on_2025_sessions(policy_hub, transport):
    async def go():
        async with connect(policy_hub, "everything", transport, token=LAPTOP) as s:
            assert {t.name for t in (await s.list_tools()).tools} == ALLOWED
            assert text_of(await s.call_tool("echo", {"message": "hi"})) == "Echo: hi"
            with pytest.raises(MCPError, match=RULE.replace(".", r"\.")):
                await s.call_tool("get-tiny-image", {})
        async with connect(policy_hub, "everything", transport, token=DESKTOP) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert ALLOWED < names and "get-tiny-image" in names
    run(go())


def test_laptop_sees_and_calls_only_its_tools_in_2026_07_28(policy_hub):
    async def go():
        async with modern(policy_hub, "everything", LAPTOP) as c:
            assert c.protocol_version == "2026-07-28"
            assert {t.name for t in (await c.list_tools()).tools} == ALLOWED
            assert text_of(await c.call_tool("get-sum", {"a": 2, "b": 3})) in ("5", "The sum of 2 and 3 is 5.")
            with pytest.raises(MCPError, match="clients\\.laptop\\.tools\\.everything"):
                await c.call_tool("get-tiny-image", {})
        async with modern(policy_hub, "everything", DESKTOP) as c:
            assert "get-tiny-image" in {t.name for t in (await c.list_tools()).tools}
    run(go())


def test_laptop_sees_and_calls_only_its_tools_in_a_group(policy_hub):
    want = {f"everything__{t}" for t in ALLOWED}
    async def go():
        async with connect(policy_hub, "g/all", "streamable-http", token=LAPTOP) as s:
            assert {t.name for t in (await s.list_tools()).tools} == want
            with pytest.raises(MCPError, match=RULE.replace(".", r"\.")):
                await s.call_tool("everything__get-tiny-image", {})
        async with modern(policy_hub, "g/all", LAPTOP) as c:
            assert {t.name for t in (await c.list_tools()).tools} == want
        async with connect(policy_hub, "g/all", "sse", token=DESKTOP) as s:
            assert "everything__get-tiny-image" in {t.name for t in (await s.list_tools()).tools}
    run(go())


def test_laptop_sees_and_calls_only_its_tools_in_the_openapi_view(policy_hub):
    status, doc, _ = http(policy_hub, "GET", "/everything/openapi.json", LAPTOP)
    assert status == 200, doc
    ops = {p.rsplit("/", 1)[-1] for p in json.loads(doc)["paths"] if "/tools/" in p}
    assert ops == ALLOWED, ops
    status, body, _ = http(policy_hub, "POST", "/everything/tools/echo", LAPTOP, {"message": "api"})
    assert status == 200 and "api" in body, body
    status, body, _ = http(policy_hub, "POST", "/everything/tools/get-tiny-image", LAPTOP, {})
    assert status in (403, 404), (status, body)
    status, doc, _ = http(policy_hub, "GET", "/everything/openapi.json", DESKTOP)
    assert "get-tiny-image" in doc


def test_a_route_a_client_may_not_reach_is_an_unknown_one(policy_hub):
    # laptop's servers are ["everything"]: "other" and a group it lacks are 404, like a typo.
    for path in ("/other/mcp", "/other/openapi.json"):
        status, body, _ = http(policy_hub, "GET" if path.endswith("json") else "POST", path, LAPTOP,
                               None if path.endswith("json") else {"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert status == 404, (path, status, body)
        assert "laptop" not in body
    # limited has no groups.
    status, _, _ = http(policy_hub, "GET", "/g/all/openapi.json", LIMITED)
    assert status == 404
    status, _, _ = http(policy_hub, "GET", "/g/all/openapi.json", DESKTOP)
    assert status == 200
    status, _, _ = http(policy_hub, "GET", "/everything/openapi.json", "not-a-token")
    assert status == 401


def raw_2026_list(hub, token):
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list",
            "params": {"_meta": {"io.modelcontextprotocol/protocolVersion": "2026-07-28",
                                 "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"},
                                 "io.modelcontextprotocol/clientCapabilities": {}}}}
    return http(hub, "POST", "/everything/mcp", token, body,
                {"MCP-Protocol-Version": "2026-07-28", "Mcp-Method": "tools/list"})


def test_a_client_over_its_rate_gets_429_and_another_is_unaffected(policy_hub):
    # Warm the server so the burst measures the bucket, not a start.
    assert raw_2026_list(policy_hub, DESKTOP)[0] == 200
    with ThreadPoolExecutor(8) as pool:
        limited = list(pool.map(lambda _: raw_2026_list(policy_hub, LIMITED), range(6)))
        desktop = list(pool.map(lambda _: raw_2026_list(policy_hub, DESKTOP), range(6)))
    codes = sorted(s for s, _, _ in limited)
    assert codes == [200] * 5 + [429], codes
    refused = next(r for r in limited if r[0] == 429)
    assert int(refused[2]["Retry-After"]) >= 1
    assert "clients.limited.rate" in json.loads(refused[1])["error"]["message"]
    assert [s for s, _, _ in desktop] == [200] * 6


def test_a_client_at_its_session_cap_never_locks_another_out(policy_hub):
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                       "clientInfo": {"name": "t", "version": "1"}}}
    # crowd (maxSessions 8) opens 20: each past the 8th closes crowd's own
    # least recently used idle session, so all are served.
    crowd = [http(policy_hub, "POST", "/everything/mcp", CROWD, init) for _ in range(20)]
    assert [c for c, _, _ in crowd] == [200] * 20
    first, last = crowd[0][2]["Mcp-Session-Id"], crowd[-1][2]["Mcp-Session-Id"]
    ping = {"jsonrpc": "2.0", "id": 2, "method": "ping"}
    hdr = lambda sid: {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-06-18"}
    assert http(policy_hub, "POST", "/everything/mcp", CROWD, ping, hdr(first))[0] == 404
    assert http(policy_hub, "POST", "/everything/mcp", CROWD, ping, hdr(last))[0] == 200
    assert http(policy_hub, "POST", "/everything/mcp", DESKTOP, init)[0] == 200


def test_audit_lines_and_metrics_name_the_client(policy_hub):
    async def go():
        async with connect(policy_hub, "everything", "streamable-http", token=LAPTOP) as s:
            await s.call_tool("echo", {"message": "audited"})
            with pytest.raises(MCPError):
                await s.call_tool("get-tiny-image", {})
    run(go())
    assert policy_hub.wait_log(lambda l: "mcp_hub::audit" in l and "client laptop" in l and "echo" in l), \
        "\n".join(policy_hub.logs[-30:])
    assert policy_hub.wait_log(lambda l: "mcp_hub::audit" in l and "denied" in l and "client laptop" in l
                               and "get-tiny-image" in l), "\n".join(policy_hub.logs[-30:])
    status, text, _ = http(policy_hub, "GET", "/metrics", TOKEN)
    assert status == 200, text
    assert 'mcphub_client_requests_total{client="laptop",outcome="admitted"}' in text
    assert 'mcphub_client_requests_total{client="laptop",outcome="denied"}' in text
    labels = {l.split('client="')[1].split('"')[0] for l in text.splitlines()
              if l.startswith("mcphub_client_requests_total{")}
    assert labels <= {"laptop", "desktop", "limited", "crowd"}, labels
