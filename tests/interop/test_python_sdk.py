"""The official Python SDK client (`mcp` on PyPI) through the hub, over both
transports, against real servers: server-everything and server-filesystem (npm)
and mcp-server-time (PyPI)."""

import asyncio
from contextlib import asynccontextmanager

import mcp.types as types
import pytest
from mcp import ClientSession
from mcp.client.sse import sse_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp.shared._httpx_utils import create_mcp_http_client

from conftest import TOKEN

TRANSPORTS = ["sse", "streamable-http"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@asynccontextmanager
async def connect(hub, server, transport, token=None, **session_kw):
    """A Python SDK session on `server` (or `g/<group>`); its initialize result is `s.init_result`."""
    auth = AUTH if token is None else {"Authorization": f"Bearer {token}"}
    if transport == "sse":
        ctx = sse_client(hub.url(f"/{server}/sse"), headers=auth, timeout=30)
    else:
        ctx = streamable_http_client(hub.url(f"/{server}/mcp"), http_client=create_mcp_http_client(headers=auth))
    async with ctx as streams:
        async with ClientSession(streams[0], streams[1], **session_kw) as s:
            s.init_result = await s.initialize()
            yield s


def text_of(result) -> str:
    return "".join(c.text for c in result.content if isinstance(c, types.TextContent))


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 120))


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_everything_tools_resources_prompts(hub, transport):
    async def go():
        async with connect(hub, "everything", transport) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert {"echo", "get-sum", "trigger-long-running-operation"} <= names
            assert text_of(await s.call_tool("echo", {"message": "through the hub"})) == "Echo: through the hub"
            assert "5" in text_of(await s.call_tool("get-sum", {"a": 2, "b": 3}))
            resources = (await s.list_resources()).resources
            assert resources
            read = await s.read_resource(resources[0].uri)
            assert read.contents and (getattr(read.contents[0], "text", None) or getattr(read.contents[0], "blob", None))
            prompts = {p.name for p in (await s.list_prompts()).prompts}
            assert "simple-prompt" in prompts
            got = await s.get_prompt("simple-prompt")
            assert got.messages
            await s.send_ping()
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_everything_progress(hub, transport):
    async def go():
        seen = []

        async def on_progress(progress, total, message):
            seen.append((progress, total))

        async with connect(hub, "everything", transport) as s:
            r = await s.call_tool("trigger-long-running-operation", {"duration": 1, "steps": 3}, progress_callback=on_progress)
            assert "completed" in text_of(r).lower()
        assert len(seen) == 3, seen
        assert seen[-1][0] == 3
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_everything_sampling_reaches_the_client(hub, transport):
    async def go():
        asked = []

        async def sampling(context, params: types.CreateMessageRequestParams):
            asked.append(params.messages[0].content.text)
            return types.CreateMessageResult(role="assistant", model="hub-test",
                                             content=types.TextContent(type="text", text="forty-two"))

        async with connect(hub, "everything", transport, sampling_callback=sampling) as s:
            r = await s.call_tool("trigger-sampling-request", {"prompt": "meaning of life?"})
            assert "forty-two" in text_of(r)
        assert len(asked) == 1 and asked[0].endswith("meaning of life?"), asked
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_everything_per_client_sessions(hub, transport):
    async def go():
        async with connect(hub, "everything-pc", transport) as a, connect(hub, "everything-pc", transport) as b:
            ra, rb = await asyncio.gather(a.call_tool("echo", {"message": "a"}), b.call_tool("echo", {"message": "b"}))
            assert (text_of(ra), text_of(rb)) == ("Echo: a", "Echo: b")
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_filesystem_reads_inside_and_refuses_outside(hub, workspace, transport):
    async def go():
        async with connect(hub, "filesystem", transport) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert "read_text_file" in names
            assert "write_file" not in names, "toolFilter hides blocked tools"
            r = await s.call_tool("read_text_file", {"path": str(workspace / "notes.txt")})
            assert "hello from the hub's interop test" in text_of(r)
            listing = await s.call_tool("list_directory", {"path": str(workspace)})
            assert "notes.txt" in text_of(listing) and "sub" in text_of(listing)
            outside = await s.call_tool("read_text_file", {"path": "/etc/hostname"})
            assert outside.is_error
            with pytest.raises(MCPError, match="Unknown tool: write_file"):
                await s.call_tool("write_file", {"path": str(workspace / "x"), "content": "no"})
            assert not (workspace / "x").exists()
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_time_server_from_pypi(hub, transport):
    async def go():
        async with connect(hub, "time", transport) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert names == {"get_current_time", "convert_time"}
            r = await s.call_tool("get_current_time", {"timezone": "UTC"})
            assert '"timezone": "UTC"' in text_of(r) or "UTC" in text_of(r)
            r = await s.call_tool("convert_time", {"source_timezone": "UTC", "time": "12:00", "target_timezone": "Asia/Tokyo"})
            assert "21:00" in text_of(r)
    run(go())
