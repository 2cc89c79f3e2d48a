"""@modelcontextprotocol/conformance, server suite, against the fixture server
through the hub and against the same fixture serving HTTP by itself. The hub
must pass exactly what the server passes on its own."""

import re
import subprocess
import threading

from conftest import HERE, ROOT, Hub, node22

CONFORMANCE = HERE / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"


def fixture_binary() -> str:
    import os
    return os.environ.get("MCP_FIXTURE_BIN", str(ROOT / "target" / "debug" / "mcp-fixture"))


def run_suite(url: str, cwd) -> tuple[int, int, str]:
    p = subprocess.run([node22(), str(CONFORMANCE), "server", "--suite", "all", "--url", url],
                       capture_output=True, text=True, timeout=600, cwd=cwd)
    out = p.stdout + p.stderr
    m = re.search(r"Total: (\d+) passed, (\d+) failed", out)
    assert m, f"no summary from the conformance suite:\n{out[-3000:]}"
    return int(m.group(1)), int(m.group(2)), out


def test_conformance_through_hub_equals_direct(tmp_path):
    direct = subprocess.Popen([fixture_binary(), "--http", "127.0.0.1:0"], stderr=subprocess.PIPE, text=True)
    try:
        line = direct.stderr.readline()
        m = re.search(r"listening on (\S+)", line)
        assert m, line
        threading.Thread(target=lambda: direct.stderr.read(), daemon=True).start()
        d_pass, d_fail, _ = run_suite(f"http://{m.group(1)}/mcp", tmp_path)
    finally:
        direct.kill()
    # The suite sends no token; this server opts out of auth explicitly.
    hub = Hub({"fixture": {"command": fixture_binary(), "options": {"authTokens": []}}}, tmp=tmp_path)
    try:
        h_pass, h_fail, out = run_suite(hub.url("/fixture/mcp"), tmp_path)
    finally:
        hub.stop()
    summary = f"conformance server suite: direct {d_pass} passed, {d_fail} failed; through mcp-hub {h_pass} passed, {h_fail} failed"
    print(summary)
    (tmp_path.parent / "conformance-summary.txt").write_text(summary + "\n")
    assert d_pass > 30, summary
    assert (h_pass, h_fail) == (d_pass, d_fail), summary + "\n" + out[-3000:]
