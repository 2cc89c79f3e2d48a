// Drives a server behind mcp-hub with the official TypeScript SDK client and
// prints what it saw as JSON. Usage: node ts_client.mjs <url> <sse|streamable-http> <token> <scenario>
import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { SSEClientTransport } from "@modelcontextprotocol/sdk/client/sse.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";
import { CreateMessageRequestSchema } from "@modelcontextprotocol/sdk/types.js";

const [url, transportName, token, scenario] = process.argv.slice(2);
const headers = { Authorization: `Bearer ${token}` };
const transport = transportName === "sse"
  ? new SSEClientTransport(new URL(url), {
      requestInit: { headers },
      eventSourceInit: { fetch: (u, init) => fetch(u, { ...init, headers: { ...(init?.headers ?? {}), ...headers } }) },
    })
  : new StreamableHTTPClientTransport(new URL(url), { requestInit: { headers } });

const client = new Client({ name: "ts-interop", version: "1.0.0" }, { capabilities: { sampling: {} } });
client.setRequestHandler(CreateMessageRequestSchema, async () => ({
  role: "assistant", model: "ts-test", content: { type: "text", text: "ts-sampled" },
}));
const text = (r) => r.content.filter((c) => c.type === "text").map((c) => c.text).join("");
const out = { scenario };
await client.connect(transport);
out.serverName = client.getServerVersion()?.name;
const tools = await client.listTools();
out.tools = tools.tools.map((t) => t.name);
if (scenario === "everything") {
  out.echo = text(await client.callTool({ name: "echo", arguments: { message: "from typescript" } }));
  out.sum = text(await client.callTool({ name: "get-sum", arguments: { a: 20, b: 22 } }));
  const resources = await client.listResources();
  const read = await client.readResource({ uri: resources.resources[0].uri });
  out.resourceRead = read.contents.length > 0;
  const prompt = await client.getPrompt({ name: "args-prompt", arguments: { city: "Berlin" } });
  out.prompt = JSON.stringify(prompt.messages);
  const progress = [];
  const r = await client.callTool({ name: "trigger-long-running-operation", arguments: { duration: 1, steps: 2 } },
    undefined, { onprogress: (p) => progress.push(p.progress) });
  out.progress = progress;
  out.longRunning = text(r);
  out.sampled = text(await client.callTool({ name: "trigger-sampling-request", arguments: { prompt: "hi" } }));
} else if (scenario === "modern") {
  // A 2026-07-28 server behind the hub: this 2025 client must not notice.
  out.add = text(await client.callTool({ name: "add", arguments: { a: 2, b: 3 } }));
  out.era = text(await client.callTool({ name: "era", arguments: {} }));
} else if (scenario === "time") {
  out.time = text(await client.callTool({ name: "convert_time", arguments: { source_timezone: "UTC", time: "08:30", target_timezone: "Asia/Kolkata" } }));
} else if (scenario.startsWith("filesystem:")) {
  out.file = text(await client.callTool({ name: "read_text_file", arguments: { path: scenario.slice("filesystem:".length) } }));
}
await client.close();
console.log(JSON.stringify(out));
