"""`mcp-hub client-config --write` for each client, then the real client from npm
reads the file it wrote and (where it can run offline) connects through the hub.

- Claude Code: `claude mcp list` shows Connected (and Failed with a wrong token,
  so the `${MCP_HUB_TOKEN}` reference is what carries the token).
- Gemini CLI: `gemini mcp list` shows Connected for the http and the sse entry.
- Codex: `codex mcp list --json` shows the entry as written (Codex connects to
  servers only inside a session, which needs a model: not offline).
- VS Code: not on npm; its file is checked as JSON with a top-level `servers`.
- Cursor: its CLI is not on npm; its file is checked as JSON.
"""

import json
import os
import subprocess

import pytest

from conftest import NODE_MODULES, TOKEN, Hub, hub_binary, node22

BIN = NODE_MODULES / ".bin"


@pytest.fixture(scope="module")
def chub(tmp_path_factory):
    everything = [str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"]
    h = Hub({"everything": {"command": "node", "args": everything}}, tmp=tmp_path_factory.mktemp("clients-hub"))
    yield h
    h.stop()


def client_env(home, token=TOKEN):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MCP_HUB_", "CODEX_", "GEMINI_", "CLAUDE_"))}
    env.update({
        "HOME": str(home),
        "MCP_HUB_TOKEN": token,
        # Offline: no update checks or telemetry.
        "DISABLE_AUTOUPDATER": "1",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "GEMINI_CLI_NO_RELAUNCH": "1",
    })
    return env


def write_config(hub, home, client, *extra):
    out = subprocess.run(
        [hub_binary(), "--config", str(hub.config), "client-config", client, "--write",
         "--url-base", hub.base, *extra],
        env=client_env(home), cwd=home, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "wrote " in out.stdout, out.stdout


def run(cmd, home, token=TOKEN, timeout=120):
    out = subprocess.run(cmd, env=client_env(home, token), cwd=home, capture_output=True, text=True,
                         timeout=timeout)
    return out.returncode, out.stdout + out.stderr


def test_claude_code_connects(chub, tmp_path):
    write_config(chub, tmp_path, "claude-code")
    cfg = json.loads((tmp_path / ".claude.json").read_text())
    assert cfg["mcpServers"]["everything"]["url"] == chub.url("/everything/mcp")
    code, out = run([str(BIN / "claude"), "mcp", "list"], tmp_path)
    print(out)
    line = next(l for l in out.splitlines() if l.startswith("everything:"))
    assert "Connected" in line and chub.url("/everything/mcp") in line, out
    code, out = run([str(BIN / "claude"), "mcp", "list"], tmp_path, token="wrong-token")
    line = next(l for l in out.splitlines() if l.startswith("everything:"))
    assert "Connected" not in line, out


@pytest.mark.parametrize("transport,route", [("http", "/everything/mcp"), ("sse", "/everything/sse")])
def test_gemini_connects_over_both_transports(chub, tmp_path, transport, route):
    write_config(chub, tmp_path, "gemini", "--transport", transport)
    entry = json.loads((tmp_path / ".gemini" / "settings.json").read_text())["mcpServers"]["everything"]
    if transport == "http":
        assert entry["httpUrl"] == chub.url(route)
    else:
        assert entry["url"] == chub.url(route) and entry["type"] == "sse"
    # Gemini CLI ignores MCP servers in folders the user has not trusted.
    (tmp_path / ".gemini" / "trustedFolders.json").write_text(json.dumps({str(tmp_path): "TRUST_FOLDER"}))
    gemini = [node22(), str(BIN / "gemini"), "mcp", "list"]
    code, out = run(gemini, tmp_path)
    print(out)
    line = next(l for l in out.splitlines() if "everything:" in l)
    assert "- Connected" in line and chub.url(route) in line, out
    code, out = run(gemini, tmp_path, token="wrong-token")
    line = next(l for l in out.splitlines() if "everything:" in l)
    assert "- Connected" not in line, out


def test_codex_reads_the_entry(chub, tmp_path):
    write_config(chub, tmp_path, "codex")
    out = subprocess.run([str(BIN / "codex"), "mcp", "list", "--json"], env=client_env(tmp_path), cwd=tmp_path,
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    print("NOTE: codex connects to MCP servers only inside a model session; offline, only its parse of the file is tested")
    listed = json.loads(out.stdout)
    entry = next(e for e in listed if e["name"] == "everything")
    assert entry["enabled"] is True
    assert entry["transport"]["type"] == "streamable_http"
    assert entry["transport"]["url"] == chub.url("/everything/mcp")
    assert entry["transport"]["bearer_token_env_var"] == "MCP_HUB_TOKEN"


def test_vscode_and_cursor_files(chub, tmp_path):
    print("NOTE: VS Code and Cursor are not on npm and do not run here; their files are checked, not the clients")
    write_config(chub, tmp_path, "vscode", "--scope", "project")
    v = json.loads((tmp_path / ".vscode" / "mcp.json").read_text())
    assert v["servers"]["everything"] == {
        "type": "http", "url": chub.url("/everything/mcp"),
        "headers": {"Authorization": "Bearer ${input:mcp-hub-token}"}}
    assert v["inputs"] == [{"type": "promptString", "id": "mcp-hub-token",
                            "description": "mcp-hub token", "password": True}]
    write_config(chub, tmp_path, "cursor")
    c = json.loads((tmp_path / ".cursor" / "mcp.json").read_text())
    assert c["mcpServers"]["everything"]["headers"]["Authorization"] == "Bearer ${env:MCP_HUB_TOKEN}"
