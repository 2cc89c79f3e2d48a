// Drives a server behind mcp-hub with the TypeScript SDK v2 client
// (@modelcontextprotocol/client) pinned to MCP 2026-07-28, and prints what it
// saw as JSON. Usage: node ts_modern_client.mjs <url> <token>
//
// The pin means no fallback: connect() must find 2026-07-28 through
// server/discover, every request carries the stateless _meta envelope, and a
// question the server asks during a call comes back as input_required, which
// the client answers through its elicitation handler and retries (MRTR).
import { Client, StreamableHTTPClientTransport } from "@modelcontextprotocol/client";

const [url, token] = process.argv.slice(2);
// Every request the client sends, as the hub saw it: method, headers, status.
const wire = [];
const recordingFetch = async (input, init) => {
  const res = await fetch(input, init);
  const h = new Headers(init?.headers ?? {});
  let body;
  try {
    body = JSON.parse(init?.body ?? "null");
  } catch {
    body = undefined;
  }
  wire.push({
    httpMethod: init?.method ?? "GET",
    method: body?.method,
    // An MRTR retry echoes the hub's handle and carries the answers.
    retry: typeof body?.params?.requestState === "string" && body?.params?.inputResponses !== undefined,
    protocolVersion: h.get("mcp-protocol-version"),
    mcpMethod: h.get("mcp-method"),
    mcpName: h.get("mcp-name"),
    sessionId: h.get("mcp-session-id") ?? res.headers.get("mcp-session-id"),
    status: res.status,
  });
  return res;
};
const transport = new StreamableHTTPClientTransport(new URL(url), {
  requestInit: { headers: { Authorization: `Bearer ${token}` } },
  fetch: recordingFetch,
});
const client = new Client(
  { name: "ts-v2-interop", version: "1.0.0" },
  { capabilities: { elicitation: { form: {} } }, versionNegotiation: { mode: { pin: "2026-07-28" } } },
);
const elicitations = [];
client.setRequestHandler("elicitation/create", async (request) => {
  elicitations.push(request.params.message);
  return { action: "accept", content: { name: "ts v2 client" } };
});
const text = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("");
const out = {};
await client.connect(transport);
out.era = client.getProtocolEra();
out.version = client.getNegotiatedProtocolVersion();
out.serverName = client.getServerVersion()?.name;
out.tools = (await client.listTools()).tools.map((t) => t.name);
out.echo = text(await client.callTool({ name: "echo", arguments: { message: "from the ts v2 client" } }));
const elicited = await client.callTool({ name: "trigger-elicitation-request", arguments: {} });
out.elicited = text(elicited);
out.elicitedIsError = elicited.isError ?? false;
out.elicitations = elicitations;
await client.close();
out.wire = wire;
console.log(JSON.stringify(out));
