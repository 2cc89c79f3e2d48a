"""Groups through the hub with real components: server-everything (npm) and the
repository's fixture server both have a tool named `echo`; in one group
(`/g/both/…`) the official Python SDK client sees both, prefixed, over both
transports, and each call reaches its own server. A member that goes down
leaves the list and comes back, with list_changed; a server request
(sampling) during a call reaches the client through the group; and the
group's own token sees only the members that accept it and opens nothing
outside the group."""

import asyncio
import os
import time

import mcp.types as types
import pytest
from mcp.shared._httpx_utils import create_mcp_http_client
from mcp.shared.exceptions import MCPError

from conftest import NODE_MODULES, ROOT, TOKEN, Hub
from test_python_sdk import connect as sdk_connect, run, text_of

TRANSPORTS = ["sse", "streamable-http"]
AUTH = {"Authorization": f"Bearer {TOKEN}"}
GROUP_TOKEN = "group-only-token"


def fixture_binary() -> str:
    path = os.environ.get("MCP_FIXTURE_BIN", str(ROOT / "target" / "debug" / "mcp-fixture"))
    if not os.path.exists(path):
        pytest.fail(f"{path} is missing: build it with `cargo build --bin mcp-fixture`")
    return path


@pytest.fixture(scope="module")
def group_hub(tmp_path_factory):
    everything = [str(NODE_MODULES / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"), "stdio"]
    servers = {
        # No sandbox: this test is about routing (the sandbox has its own tests).
        "everything": {"command": "node", "args": everything, "sandbox": False},
        "fx": {"command": fixture_binary(), "sandbox": False,
               "options": {"authTokens": [TOKEN, GROUP_TOKEN]}},
        # Outside the group, on the global token only.
        "outside": {"command": fixture_binary(), "sandbox": False},
    }
    # everything takes only the global token: a client with the group's token
    # does not see it in the group.
    proxy = {"options": {"groups": {"both": {"servers": ["everything", "fx"],
                                             "authTokens": [TOKEN, GROUP_TOKEN]}}}}
    h = Hub(servers, proxy=proxy, tmp=tmp_path_factory.mktemp("group-hub"))
    yield h
    h.stop()


def connect(hub, transport, token=TOKEN, **session_kw):
    return sdk_connect(hub, "g/both", transport, token=token, **session_kw)


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_group_lists_both_echo_tools_and_routes_each_call(group_hub, transport):
    async def go():
        async with connect(group_hub, transport) as s:
            init = s.init_result
            assert '"everything", "fx"' in init.instructions, init.instructions
            assert init.capabilities.tools and init.capabilities.tools.list_changed
            names = {t.name for t in (await s.list_tools()).tools}
            assert {"everything__echo", "fx__echo", "everything__get-sum"} <= names, names
            assert "echo" not in names
            assert text_of(await s.call_tool("everything__echo", {"message": "to everything"})) == "Echo: to everything"
            assert text_of(await s.call_tool("fx__echo", {"text": "to the fixture"})) == "to the fixture"
            with pytest.raises(MCPError, match="Unknown tool: echo"):
                await s.call_tool("echo", {"message": "no prefix"})
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_group_resources_and_prompts_are_namespaced(group_hub, transport):
    async def go():
        async with connect(group_hub, transport) as s:
            resources = (await s.list_resources()).resources
            uris = [str(r.uri) for r in resources]
            assert any(u.startswith("mcp-hub://everything/") for u in uris), uris
            assert "mcp-hub://fx/test%3A%2F%2Fstatic-text" in uris, uris
            read = await s.read_resource("mcp-hub://fx/test%3A%2F%2Fstatic-text")
            assert read.contents and read.contents[0].text
            mine = next(r for r in resources if str(r.uri).startswith("mcp-hub://everything/"))
            read = await s.read_resource(mine.uri)
            assert read.contents
            prompts = {p.name for p in (await s.list_prompts()).prompts}
            assert {"everything__simple-prompt", "fx__test_simple_prompt"} <= prompts, prompts
            got = await s.get_prompt("everything__simple-prompt")
            assert got.messages
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_group_sampling_reaches_the_client_on_the_call(group_hub, transport):
    async def go():
        asked = []

        async def sampling(context, params: types.CreateMessageRequestParams):
            asked.append(params.messages[0].content.text)
            return types.CreateMessageResult(role="assistant", model="hub-test",
                                             content=types.TextContent(type="text", text="forty-two"))

        async with connect(group_hub, transport, sampling_callback=sampling) as s:
            r = await s.call_tool("everything__trigger-sampling-request", {"prompt": "meaning of life?"})
            assert "forty-two" in text_of(r)
        assert len(asked) == 1 and asked[0].endswith("meaning of life?"), asked
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_group_member_down_is_dropped_and_comes_back(group_hub, transport):
    async def go():
        changed = []

        async def on_message(m):
            if isinstance(getattr(m, "root", m), types.ToolListChangedNotification):
                changed.append(time.monotonic())

        async with connect(group_hub, transport, message_handler=on_message) as s:
            assert "fx__echo" in {t.name for t in (await s.list_tools()).tools}
            with pytest.raises(MCPError):
                await s.call_tool("fx__crash", {})
            names = {t.name for t in (await s.list_tools()).tools}
            assert not any(n.startswith("fx__") for n in names), names
            assert "everything__echo" in names
            with pytest.raises(MCPError, match='server "fx"'):
                await s.call_tool("fx__echo", {"text": "while down"})
            assert text_of(await s.call_tool("everything__echo", {"message": "up"})) == "Echo: up"
            deadline = time.monotonic() + 20
            while "fx__echo" not in {t.name for t in (await s.list_tools()).tools}:
                assert time.monotonic() < deadline, "the fixture's tools never came back"
                await asyncio.sleep(0.3)
            assert text_of(await s.call_tool("fx__echo", {"text": "back"})) == "back"
            deadline = time.monotonic() + 10
            while len(changed) < 2:
                assert time.monotonic() < deadline, f"list_changed for down and back: {changed}"
                await asyncio.sleep(0.1)
        assert any("leaving out server \"fx\"" in line for line in group_hub.logs)
    run(go())


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_group_token_sees_its_members_and_nothing_outside(group_hub, transport):
    async def go():
        async with connect(group_hub, transport, token=GROUP_TOKEN) as s:
            names = {t.name for t in (await s.list_tools()).tools}
            assert "fx__echo" in names, names
            assert not any(n.startswith("everything__") for n in names), "everything does not take the token"
            assert text_of(await s.call_tool("fx__echo", {"text": "mine"})) == "mine"
            with pytest.raises(MCPError, match="Unknown tool"):
                await s.call_tool("everything__echo", {"message": "not mine"})
        init = {"jsonrpc": "2.0", "id": 1, "method": "initialize",
                "params": {"protocolVersion": "2025-11-25", "capabilities": {},
                           "clientInfo": {"name": "t", "version": "1"}}}
        headers = {"Authorization": f"Bearer {GROUP_TOKEN}", "Accept": "application/json, text/event-stream"}
        async with create_mcp_http_client(headers=headers) as http:
            for path in ["/outside/mcp", "/everything/mcp"]:
                r = await http.post(group_hub.url(path), json=init)
                assert r.status_code == 401, (path, r.status_code)
            r = await http.get(group_hub.url("/outside/sse"))
            assert r.status_code == 401
    run(go())
