"""Two hubs behind a real HAProxy running the packaged example config
(packaging/haproxy/mcp-hub.cfg, only its addresses changed): modern requests
are balanced round-robin over both hubs; a legacy streamable session and a
legacy SSE session stay on the hub that holds them; an MRTR retry reaches the
hub holding its call, found by the hubId prefix of its requestState. Each
affinity is also shown to matter: the same request sent straight to the other
hub is refused."""

import json
import re
import shutil
import subprocess
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

import mcp.types as types
import pytest

from conftest import NODE_MODULES, ROOT, TOKEN, Hub, Proc, free_port, settle
from test_modern import H, client, modern
from test_python_sdk import connect, run, text_of

PACKAGED = ROOT / "packaging" / "haproxy" / "mcp-hub.cfg"
# The example's placeholder addresses, in the order of its servers.
EXAMPLE_HUBS = {"hub-a": "192.0.2.11:9090", "hub-b": "192.0.2.12:9090"}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ACCEPT = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
CALLS = 200


def haproxy() -> str:
    found = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin:/sbin")
    if not found:
        pytest.fail("haproxy is not installed (scripts/test installs Debian's haproxy package)")
    return found


class Lb:
    """HAProxy, addressed like a Hub so the SDK helpers take it."""

    def __init__(self, port: int):
        self.base = f"http://127.0.0.1:{port}"

    def url(self, path: str) -> str:
        return self.base + path


def render(hubs: dict[str, Hub], port: int) -> str:
    """The packaged config with the example addresses replaced, nothing else."""
    text = PACKAGED.read_text()
    assert text.count("\n    bind :9090\n") == 1, "the example's bind line moved; update this test"
    text = text.replace("\n    bind :9090\n", f"\n    bind 127.0.0.1:{port}\n")
    for name, placeholder in EXAMPLE_HUBS.items():
        assert text.count(f"server {name} {placeholder} check") == 2, f"the example's {name} lines moved"
        text = text.replace(placeholder, hubs[name].base.removeprefix("http://"))
    assert "192.0.2." not in text
    return text


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    everything = [str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"]
    hubs = {}
    try:
        for name in EXAMPLE_HUBS:
            # logEnabled: each tools/call leaves an audit line naming its session, to count per hub.
            proxy = {"options": {"hubId": name, "logEnabled": True, "maxConnectionsPerIp": 4096}}
            hubs[name] = Hub({"everything": {"command": "node", "args": everything}}, proxy,
                             tmp=tmp_path_factory.mktemp(name))
        tmp = tmp_path_factory.mktemp("haproxy")
        port = free_port()
        cfg = tmp / "haproxy.cfg"
        cfg.write_text(render(hubs, port))
        lb = Proc("haproxy", [haproxy(), "-db", "-f", str(cfg)], port, tmp)
        try:
            yield Lb(port), hubs, lb
        finally:
            lb.stop()
    finally:
        for h in hubs.values():
            h.stop()


def post(base: str, body: dict, headers: dict | None = None, path: str = "/everything/mcp"):
    """POSTs one JSON-RPC message; returns (status, response headers, the JSON-RPC answer)."""
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={**ACCEPT, **AUTH, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=60) as r:
            status, hdrs, raw = r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        status, hdrs, raw = e.code, e.headers, e.read().decode()
    if "text/event-stream" in (hdrs.get("Content-Type") or ""):
        msgs = [json.loads(line[5:]) for line in raw.splitlines() if line.startswith("data:") and line[5:].strip()]
        answers = [m for m in msgs if m.get("id") == body.get("id") and ("result" in m or "error" in m)]
        return status, hdrs, answers[0] if answers else None
    try:
        return status, hdrs, json.loads(raw)
    except ValueError:
        return status, hdrs, raw  # a 202's "Accepted", a rejection's text


def audited(hub: Hub, tool: str) -> list[str]:
    """The hub's audit lines for calls of `tool`."""
    return [line for line in hub.logs if "mcp_hub::audit" in line and f"mcp_tool={tool} " in line]


def call(name: str, arguments: dict, caps: dict | None = None, **extra) -> dict:
    body = modern("tools/call", {"name": name, "arguments": arguments, **extra})
    if caps is not None:
        body["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"] = caps
    return body


def call_headers(name: str) -> dict:
    return {**H, "Mcp-Method": "tools/call", "Mcp-Name": name}


def test_packaged_config_is_valid():
    r = subprocess.run([haproxy(), "-c", "-f", str(PACKAGED)], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_modern_calls_are_balanced_round_robin(cluster):
    lb, hubs, _ = cluster
    before = {n: len(audited(h, "get-sum")) for n, h in hubs.items()}

    def one(i):
        code, _, r = post(lb.base, call("get-sum", {"a": i, "b": 1}), call_headers("get-sum"))
        ok = code == 200 and r and r.get("result", {}).get("resultType") == "complete" \
            and str(i + 1) in json.dumps(r["result"]["content"])
        return None if ok else (i, code, r)

    with ThreadPoolExecutor(8) as pool:
        failures = [f for f in pool.map(one, range(CALLS)) if f]
    assert failures == [], f"{len(failures)} of {CALLS} modern calls failed, e.g. {failures[:3]}"
    served = settle(lambda: {n: len(audited(h, "get-sum")) - before[n] for n, h in hubs.items()},
                    lambda v: sum(v.values()) >= CALLS)
    print(f"\n{CALLS} modern tools/call through HAProxy, served per hub: {served}")
    assert sum(served.values()) == CALLS, served
    # Round-robin: each hub takes half, give or take the calls in flight.
    assert all(n >= CALLS // 2 - 8 for n in served.values()), served


def test_legacy_streamable_sessions_stay_on_one_hub(cluster):
    lb, hubs, _ = cluster
    sessions = []
    for s in range(6):
        init = {"jsonrpc": "2.0", "id": 0, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "scaleout-test", "version": "1"}}}
        code, hdrs, r = post(lb.base, init)
        assert code == 200 and "result" in r, (code, r)
        sid = hdrs["Mcp-Session-Id"]
        session = {"Mcp-Session-Id": sid, "MCP-Protocol-Version": "2025-11-25"}
        code, _, _ = post(lb.base, {"jsonrpc": "2.0", "method": "notifications/initialized"}, session)
        assert code == 202, code
        for i in range(5):
            code, _, r = post(lb.base, {"jsonrpc": "2.0", "id": i + 1, "method": "tools/call",
                                        "params": {"name": "echo", "arguments": {"message": f"s{s}-{i}"}}}, session)
            assert code == 200 and r["result"]["content"][0]["text"] == f"Echo: s{s}-{i}", (s, i, code, r)
        sessions.append((sid, session))
    owners = {}
    for sid, _ in sessions:
        on = settle(lambda: [n for n, h in hubs.items()
                             if any(f"mcp_session={sid} " in line for line in audited(h, "echo"))],
                    lambda v: len(v) >= 1)
        assert len(on) == 1, f"session {sid} was served by {on}"
        owners[sid] = on[0]
    print(f"\nlegacy sessions per hub: { {n: list(owners.values()).count(n) for n in hubs} }")
    # Initializes are balanced too, so both hubs hold sessions.
    assert set(owners.values()) == set(hubs), owners
    # Affinity matters: the other hub does not know the session.
    sid, session = sessions[0]
    other = next(h for n, h in hubs.items() if n != owners[sid])
    code, _, r = post(other.base, {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                                   "params": {"name": "echo", "arguments": {"message": "x"}}}, session)
    assert code == 404, (code, r)


def test_legacy_sdk_client_over_streamable_http_and_sse(cluster):
    lb, hubs, _ = cluster

    async def go(transport):
        for s in range(3):
            async with connect(lb, "everything", transport) as c:
                for i in range(3):
                    got = text_of(await c.call_tool("echo", {"message": f"{transport}-{s}-{i}"}))
                    assert got == f"Echo: {transport}-{s}-{i}"

    for transport in ["streamable-http", "sse"]:
        run(go(transport))


def test_legacy_sse_posts_reach_the_hub_holding_the_stream(cluster):
    lb, hubs, _ = cluster
    # Open an SSE stream through HAProxy and read its endpoint event.
    req = urllib.request.Request(lb.url("/everything/sse"), headers={**AUTH, "Accept": "text/event-stream"})
    with urllib.request.urlopen(req, timeout=30) as stream:
        endpoint = None
        for raw in stream:
            line = raw.decode().strip()
            if line.startswith("data:") and "sessionId=" in line:
                endpoint = line[5:].strip()
                break
        assert endpoint, "no endpoint event"
        path = re.sub(r"^https?://[^/]+", "", endpoint)
        ping = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
        codes = [post(lb.base, ping, path=path)[0] for _ in range(6)]
        assert codes == [202] * 6, codes
        # Exactly one hub holds the stream: the other does not know the session.
        direct = {n: post(h.base, ping, path=path)[0] for n, h in hubs.items()}
        assert sorted(direct.values()) == [202, 404], direct


def test_mrtr_retries_reach_the_hub_holding_the_call(cluster):
    lb, hubs, _ = cluster
    asked = []

    async def elicit(context, params):
        asked.append(params.message)
        return types.ElicitResult(action="accept", content={"name": "scaled out"})

    async def go():
        for k in range(8):
            if k % 2:
                # One more request shifts round-robin, so the calls start on both hubs.
                assert post(lb.base, call("echo", {"message": "shift"}), call_headers("echo"))[0] == 200
            async with client(lb, "everything", "2026-07-28", elicitation_callback=elicit) as c:
                assert c.protocol_version == "2026-07-28"
                r = await c.call_tool("trigger-elicitation-request", {})
                assert not r.is_error, text_of(r)
                assert "scaled out" in text_of(r)

    before = {n: len(audited(h, "trigger-elicitation-request")) for n, h in hubs.items()}
    run(go())
    assert len(asked) == 8
    held = settle(lambda: {n: len(audited(h, "trigger-elicitation-request")) - before[n] for n, h in hubs.items()},
                  lambda v: sum(v.values()) >= 8)
    print(f"\nMRTR calls held and resumed per hub: {held}")
    assert sum(held.values()) == 8 and all(held.values()), held


def test_mrtr_affinity_matters(cluster):
    """Each call is held by a hub chosen here (a, a, b, b, ...), so round-robin
    alone would send about half of the retries to the wrong hub; every retry
    through HAProxy must succeed, and the same retry sent to the other hub
    first is refused."""
    lb, hubs, _ = cluster
    tool, caps = "trigger-elicitation-request", {"elicitation": {}}
    names = list(hubs)
    for k in range(8):
        issuer = names[(k // 2) % 2]
        other = names[1 - (k // 2) % 2]
        code, _, r = post(hubs[issuer].base, call(tool, {}, caps), call_headers(tool))
        assert code == 200 and r["result"]["resultType"] == "input_required", (code, r)
        state = r["result"]["requestState"]
        assert re.fullmatch(rf"mcp-hub/{issuer}\.[0-9a-f]{{32}}", state), state
        answers = {key: {"action": "accept", "content": {"name": f"retry {k}"}}
                   for key in r["result"]["inputRequests"]}
        retry = call(tool, {}, caps, requestState=state, inputResponses=answers)
        code, _, r = post(hubs[other].base, retry, call_headers(tool))
        assert r and "error" in r, (code, r)
        assert f"requestState was issued by another hub ({issuer})" in r["error"]["message"], r
        code, _, r = post(lb.base, retry, call_headers(tool))
        assert code == 200 and "result" in r, (k, code, r)
        assert r["result"]["resultType"] == "complete" and f"retry {k}" in json.dumps(r["result"]["content"]), r
