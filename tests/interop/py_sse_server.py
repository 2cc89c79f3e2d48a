"""A small MCP server made with the official Python SDK and served with its SSE
transport: the flavour of SSE that postgres-mcp speaks. Usage: py_sse_server.py PORT"""

import sys

import anyio
from mcp.server.mcpserver import MCPServer

app = MCPServer("py-sse-upstream")


@app.tool()
def add(a: int, b: int) -> str:
    """Adds two numbers."""
    return str(a + b)


@app.tool()
async def slow(seconds: float) -> str:
    """Sleeps, then answers."""
    await anyio.sleep(seconds)
    return "done"


if __name__ == "__main__":
    app.run(transport="sse", host="127.0.0.1", port=int(sys.argv[1]))
