"""Several official Python-SDK clients on one server-everything at the same
time, each calling `trigger-sampling-request` and `trigger-elicitation-request`
concurrently for several rounds.

A server→client request must reach the client whose call caused it, or no
client at all. In shared mode (one upstream for every client) the hub routes it
only when exactly one client has a request in flight on that server; otherwise
it answers the server with the documented error, "ambiguous in shared mode; use
per-client", and the call fails with it. No prompt may reach another client, and
no client's answer may appear in another client's result. In per-client mode
(one upstream per client) every call must complete with its own answer."""

import asyncio
import uuid

import mcp.types as types
import pytest
from mcp.shared.exceptions import MCPError

from test_python_sdk import TRANSPORTS, connect, run, text_of

CLIENTS = ["alpha", "bravo", "charlie", "delta"]
ROUNDS = 5
AMBIGUOUS = "ambiguous in shared mode; use per-client"


class Client:
    """One client's callbacks and what they saw."""

    def __init__(self, name: str):
        self.name = name
        self.prompts: list[str] = []
        self.elicitations = 0

    def answer(self) -> str:
        return f"answer from {self.name}"

    def form_name(self) -> str:
        return f"name of {self.name}"

    async def sampling(self, context, params: types.CreateMessageRequestParams):
        self.prompts.append(params.messages[0].content.text)
        return types.CreateMessageResult(role="assistant", model="multiclient",
                                         content=types.TextContent(type="text", text=self.answer()))

    async def elicitation(self, context, params):
        self.elicitations += 1
        return types.ElicitResult(action="accept", content={"name": self.form_name()})


async def outcome(call) -> tuple[bool, str]:
    """(completed, text): a tool error or an MCP error is a failure with its message."""
    try:
        result = await call
    except MCPError as e:
        return False, e.error.message
    return not result.is_error, text_of(result)


def check(client: Client, kind: str, ok: bool, text: str, shared: bool, own: str, foreign: list[str]):
    if not ok:
        assert shared, f"{client.name} {kind}: per-client calls must complete: {text}"
        assert AMBIGUOUS in text, f"{client.name} {kind}: fails only with the documented error: {text}"
        return
    assert own in text, f"{client.name} {kind}: its own answer is missing: {text}"
    for f in foreign:
        assert f not in text, f"{client.name} {kind}: another client's answer leaked in: {text}"


async def rounds(hub, server: str, transport: str, shared: bool):
    clients = [Client(n) for n in CLIENTS]
    tags = {c.name: f"{c.name}-{uuid.uuid4().hex[:8]}" for c in clients}
    completed = {"sampling": 0, "elicitation": 0}
    async with connect(hub, server, transport, sampling_callback=clients[0].sampling,
                       elicitation_callback=clients[0].elicitation) as s0, \
            connect(hub, server, transport, sampling_callback=clients[1].sampling,
                    elicitation_callback=clients[1].elicitation) as s1, \
            connect(hub, server, transport, sampling_callback=clients[2].sampling,
                    elicitation_callback=clients[2].elicitation) as s2, \
            connect(hub, server, transport, sampling_callback=clients[3].sampling,
                    elicitation_callback=clients[3].elicitation) as s3:
        sessions = [s0, s1, s2, s3]
        outcomes = []
        for r in range(ROUNDS):
            calls = []
            for c, s in zip(clients, sessions):
                prompt = f"{tags[c.name]} round {r}"
                calls.append(outcome(s.call_tool("trigger-sampling-request", {"prompt": prompt})))
                calls.append(outcome(s.call_tool("trigger-elicitation-request", {})))
            outcomes.append(await asyncio.gather(*calls))
    # Judged after the sessions closed, so a failure reads plainly.
    elicited_ok = {c.name: 0 for c in clients}
    for results in outcomes:
        for i, c in enumerate(clients):
            others = [o for o in clients if o is not c]
            ok, text = results[2 * i]
            check(c, "sampling", ok, text, shared, c.answer(), [o.answer() for o in others])
            completed["sampling"] += ok
            ok, text = results[2 * i + 1]
            check(c, "elicitation", ok, text, shared, c.form_name(), [o.form_name() for o in others])
            completed["elicitation"] += ok
            elicited_ok[c.name] += ok
    for c in clients:
        foreign = [p for p in c.prompts if tags[c.name] not in p]
        assert not foreign, f"{c.name} was shown other clients' prompts: {foreign}"
        assert len(c.prompts) <= ROUNDS, f"{c.name}: {c.prompts}"
        # Every elicitation this client answered belonged to one of its own calls that completed.
        assert c.elicitations == elicited_ok[c.name], \
            f"{c.name} answered {c.elicitations} elicitations, {elicited_ok[c.name]} of its calls completed"
    return completed


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_shared_mode_routes_exactly_or_refuses(hub, transport):
    completed = run(rounds(hub, "everything", transport, shared=True))
    print(f"shared mode over {transport}: completed {completed} of {len(CLIENTS) * ROUNDS} each")
    assert completed == {"sampling": len(CLIENTS) * ROUNDS, "elicitation": len(CLIENTS) * ROUNDS} or \
        hub.wait_log(lambda line: "ambiguous" in line and "everything" in line, timeout=2), \
        "a refused server→client request is logged, naming the server"


@pytest.mark.parametrize("transport", TRANSPORTS)
def test_per_client_mode_routes_every_call(hub, transport):
    completed = run(rounds(hub, "everything-pc", transport, shared=False))
    assert completed == {"sampling": len(CLIENTS) * ROUNDS, "elicitation": len(CLIENTS) * ROUNDS}
