"""A dual-era MCP server made with the official Python SDK (mcp 2.x): it answers
`server/discover` (2026-07-28) and `initialize` (2025), and asks its client for a
name through a resolver, which the SDK turns into `input_required` for a modern
client and into an `elicitation/create` request for a legacy one.

Usage: py_modern_server.py stdio | py_modern_server.py http PORT"""

import sys
from typing import Annotated

from pydantic import BaseModel

from mcp.server.mcpserver import Context, Elicit, MCPServer, Resolve

app = MCPServer("py-modern-upstream")


class Name(BaseModel):
    name: str


def ask_name() -> Elicit[Name]:
    return Elicit("What is your name?", Name)


@app.tool()
def add(a: int, b: int) -> str:
    """Adds two numbers."""
    return str(a + b)


@app.tool()
def era(ctx: Context) -> str:
    """Which protocol version this request speaks."""
    return str(ctx.protocol_version)


@app.tool()
def greet(who: Annotated[Name, Resolve(ask_name)]) -> str:
    """Greets whoever the client names."""
    return f"hello {who.name}"


if __name__ == "__main__":
    if sys.argv[1] == "http":
        app.run(transport="streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        app.run(transport="stdio")
