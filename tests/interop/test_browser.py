"""A browser in the sandbox: @playwright/mcp driving Debian's chromium through
the hub, one browser per client session, over both transports. The profile says
`"browser": true`; the same server without it is the control that fails.

The test navigates to a page served on 127.0.0.1, takes a snapshot, clicks a
button, checks the page changed, and takes a screenshot (saved under
MCP_HUB_TEST_ARTIFACTS, default /tmp, to be looked at: the fonts must render).
"""

import asyncio
import base64
import functools
import http.server
import os
import pathlib
import re
import threading
from contextlib import asynccontextmanager

import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import NODE_MODULES, TOKEN, Hub

AUTH = {"Authorization": f"Bearer {TOKEN}"}
CHROMIUM = "/usr/bin/chromium"
PAGE = """<!doctype html><html><head><title>mcp-hub browser test</title>
<style>body{font-family:sans-serif;font-size:28px;margin:40px} code{font-family:monospace}</style></head>
<body><h1>Hello from mcp-hub</h1><p>Sans <b>bold</b> <i>italic</i> <code>mono 0O1lI</code></p>
<p id="state">not clicked</p>
<button onclick="document.getElementById('state').textContent='clicked!'">Click me</button>
</body></html>"""


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    root = tmp_path_factory.mktemp("www")
    (root / "index.html").write_text(PAGE)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/index.html"
    srv.shutdown()


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    assert os.path.exists(CHROMIUM), "Debian's chromium is not installed (scripts/test installs it)"
    state = tmp_path_factory.mktemp("state")
    os.chmod(state, 0o755)
    cli = str(NODE_MODULES / "@playwright" / "mcp" / "cli.js")
    args = [cli, "--headless", "--isolated", "--executable-path", CHROMIUM]
    servers = {
        "browser": {"command": "node", "args": args, "session": "per-client",
                    "sandbox": {"browser": True}, "initTimeout": "120s"},
        "no-browser-profile": {"command": "node", "args": args, "session": "per-client",
                               "initTimeout": "120s"},
    }
    h = Hub(servers, proxy={"options": {"stateDir": str(state)}}, tmp=tmp_path_factory.mktemp("hub"))
    yield h
    h.stop()


@asynccontextmanager
async def connect(hub, server, transport):
    if transport == "sse":
        ctx = sse_client(hub.url(f"/{server}/sse"), headers=AUTH, timeout=30, sse_read_timeout=300)
    else:
        client = create_mcp_http_client(headers=AUTH)
        client.timeout = 300
        ctx = streamable_http_client(hub.url(f"/{server}/mcp"), http_client=client)
    async with ctx as streams:
        async with ClientSession(streams[0], streams[1]) as s:
            await s.initialize()
            yield s


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 240))


@pytest.mark.parametrize("transport", ["sse", "streamable-http"])
def test_playwright_with_debian_chromium(hub, page, transport):
    async def go():
        async with connect(hub, "browser", transport) as s:
            nav = await s.call_tool("browser_navigate", {"url": page})
            assert not nav.is_error, text_of(nav)
            assert "mcp-hub browser test" in text_of(nav), text_of(nav)
            snap = text_of(await s.call_tool("browser_snapshot", {}))
            assert "not clicked" in snap, snap
            ref = re.search(r'button "Click me" \[ref=(\w+)\]', snap)
            assert ref, snap
            click = await s.call_tool("browser_click", {"element": "Click me button", "target": ref.group(1)})
            assert not click.is_error, text_of(click)
            snap = text_of(await s.call_tool("browser_snapshot", {}))
            assert "clicked!" in snap, snap
            # Fonts: three generic families resolve to three different fonts.
            widths = await s.call_tool("browser_evaluate", {"function": """() => {
                const c = document.createElement('canvas').getContext('2d');
                return ['sans-serif', 'serif', 'monospace'].map(f => {
                    c.font = '40px ' + f; return c.measureText('Hamburgefonstiv 0123').width; });
            }"""})
            found = re.search(r"\[([\d.,\s]+)\]", text_of(widths))
            assert found, text_of(widths)
            w = [float(x) for x in found.group(1).split(",")]
            assert len(w) == 3 and min(w) > 100 and len(set(w)) == 3, text_of(widths)
            shot = await s.call_tool("browser_take_screenshot", {"type": "png"})
            images = [c for c in shot.content if isinstance(c, types.ImageContent)]
            assert images, text_of(shot)
            png = base64.b64decode(images[0].data)
            assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000, len(png)
            out = pathlib.Path(os.environ.get("MCP_HUB_TEST_ARTIFACTS", "/tmp")) / f"mcp-hub-browser-{transport}.png"
            out.write_bytes(png)
            print(f"screenshot: {out} ({len(png)} bytes), font widths {w}")
    run(go())


def test_each_client_session_gets_its_own_browser(hub, page):
    async def go():
        async with connect(hub, "browser", "streamable-http") as a, connect(hub, "browser", "sse") as b:
            nav = await a.call_tool("browser_navigate", {"url": page})
            assert not nav.is_error, text_of(nav)
            other = text_of(await b.call_tool("browser_snapshot", {}))
            assert "Hello from mcp-hub" not in other, other
    run(go())


def test_without_the_browser_profile_chromium_does_not_start(hub, page):
    async def go():
        async with connect(hub, "no-browser-profile", "streamable-http") as s:
            nav = await s.call_tool("browser_navigate", {"url": page})
            assert nav.is_error, text_of(nav)
            print("control:", text_of(nav)[:300])
    run(go())
