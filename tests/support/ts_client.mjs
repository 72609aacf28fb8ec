// The official TypeScript SDK as a client of the gateway, both generations (installed by
// scripts/install-test-servers.sh into .test-servers/tssdk):
//   v1         @modelcontextprotocol/sdk 1.x (the handshake era)
//   v2-legacy  @modelcontextprotocol/client 2.x, versionNegotiation 'legacy' (its default)
//   v2-auto    @modelcontextprotocol/client 2.x, versionNegotiation 'auto' (server/discover, 2026-07-28)
// Usage: node ts_client.mjs MODE URL | node ts_client.mjs MODE -- COMMAND ARGS...
// Against server-everything behind the gateway (as `every`): lists tools, calls echo, calls with
// progress, reads a resource, gets a prompt, answers the server's elicitation and sampling; prints
// one JSON line of what it saw. Any error fails it (exit 1). Bounded: 60 s in all.
import { createRequire } from "node:module";
import path from "node:path";

const [mode, ...target] = process.argv.slice(2);
const root = process.env.TSSDK_DIR;
const require = createRequire(path.join(root, "package.json"));
setTimeout(() => {
  console.error("ts_client: over 60 s");
  process.exit(1);
}, 60000).unref();

async function main() {
  let client;
  let transport;
  const stdio = target[0] === "--";
  const capabilities = { elicitation: {}, sampling: {} };
  if (mode === "v1") {
    const { Client } = await import(require.resolve("@modelcontextprotocol/sdk/client/index.js"));
    const types = await import(require.resolve("@modelcontextprotocol/sdk/types.js"));
    client = new Client({ name: "ts-v1", version: "1.0.0" }, { capabilities });
    client.setRequestHandler(types.ElicitRequestSchema, async () => ({
      action: "accept",
      content: { name: "Ada", check: true },
    }));
    client.setRequestHandler(types.CreateMessageRequestSchema, async () => ({
      role: "assistant",
      content: { type: "text", text: "sampled-by-the-client" },
      model: "scripted",
    }));
    if (stdio) {
      const { StdioClientTransport } = await import(require.resolve("@modelcontextprotocol/sdk/client/stdio.js"));
      transport = new StdioClientTransport({ command: target[1], args: target.slice(2), stderr: "ignore" });
    } else {
      const { StreamableHTTPClientTransport } = await import(require.resolve("@modelcontextprotocol/sdk/client/streamableHttp.js"));
      transport = new StreamableHTTPClientTransport(new URL(target[0]));
    }
  } else {
    const sdk = await import(require.resolve("@modelcontextprotocol/client"));
    const negotiation = mode === "v2-auto" ? "auto" : "legacy";
    client = new sdk.Client(
      { name: "ts-v2", version: "2.0.0" },
      { capabilities, versionNegotiation: { mode: negotiation } },
    );
    client.setRequestHandler("elicitation/create", async () => ({
      action: "accept",
      content: { name: "Ada", check: true },
    }));
    client.setRequestHandler("sampling/createMessage", async () => ({
      role: "assistant",
      content: { type: "text", text: "sampled-by-the-client" },
      model: "scripted",
    }));
    if (stdio) {
      const { StdioClientTransport } = await import(require.resolve("@modelcontextprotocol/client/stdio"));
      transport = new StdioClientTransport({ command: target[1], args: target.slice(2), stderr: "ignore" });
    } else {
      transport = new sdk.StreamableHTTPClientTransport(new URL(target[0]));
    }
  }
  await client.connect(transport);
  const seen = {};
  seen.era = client.getProtocolEra ? client.getProtocolEra() ?? null : "legacy";
  seen.version = transport.protocolVersion ?? null;
  const tools = await client.listTools();
  seen.tools = tools.tools.map((t) => t.name);
  const echo = await client.callTool({ name: "every__echo", arguments: { message: "hi" } });
  seen.echo = echo.content[0].text;
  seen.echo_is_error = echo.isError ?? false;
  const progress = [];
  const params = { name: "every__trigger-long-running-operation", arguments: { duration: 1, steps: 3 } };
  const onprogress = (p) => progress.push(p.progress);
  // 1.x: callTool(params, resultSchema, options); 2.x: callTool(params, options).
  const long = mode === "v1"
    ? await client.callTool(params, undefined, { onprogress })
    : await client.callTool(params, { onprogress });
  seen.long_is_error = long.isError ?? false;
  seen.progress = progress;
  const resources = await client.listResources();
  const statics = resources.resources.filter((r) => String(r.uri).includes("static"));
  const read = await client.readResource({ uri: statics[0].uri });
  seen.read_uri = read.contents[0].uri;
  const prompt = await client.getPrompt({ name: "every__simple-prompt" });
  seen.prompt = prompt.messages[0].content.text;
  const elicited = await client.callTool({ name: "every__trigger-elicitation-request", arguments: {} });
  seen.elicited = elicited.content.map((c) => c.text ?? "").join("\n");
  const sampled = await client.callTool({
    name: "every__trigger-sampling-request",
    arguments: { prompt: "say hi", maxTokens: 10 },
  });
  seen.sampled = sampled.content.map((c) => c.text ?? "").join("\n");
  await client.close();
  console.log(JSON.stringify(seen));
}

main().then(
  () => process.exit(0),
  (e) => {
    console.error("ts_client failed:", e?.stack ?? e);
    process.exit(1);
  },
);
