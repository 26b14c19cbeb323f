// A real MCP client (the official TypeScript SDK, `@modelcontextprotocol/sdk` on npm)
// against a live Plexus server, protocol 2025-11-25 (the newest this SDK speaks).
//
// Run by the Rust test `clients::typescript_*`:  node ts_client.mjs URL
// Prints one JSON object per line, one per step, and reads a line on stdin where
// the test must act first; the steps are those of python_client.py in legacy mode.
import readline from 'node:readline';

let sdk;
try {
  const { Client } = await import('@modelcontextprotocol/sdk/client/index.js');
  const { StreamableHTTPClientTransport } = await import('@modelcontextprotocol/sdk/client/streamableHttp.js');
  const { ToolListChangedNotificationSchema } = await import('@modelcontextprotocol/sdk/types.js');
  sdk = { Client, StreamableHTTPClientTransport, ToolListChangedNotificationSchema };
} catch (e) {
  console.log(JSON.stringify({ step: 'missing', error: `the npm package @modelcontextprotocol/sdk is not installed (npm ci --prefix crates/mcp/tests/clients): ${e}` }));
  process.exit(3);
}

const TIMEOUT_MS = 10_000;
const emit = (fields) => console.log(JSON.stringify(fields));
const lines = readline.createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const names = (result) => result.tools.map((t) => t.name).sort();
const within = (promise, what) => Promise.race([
  promise,
  new Promise((_, reject) => setTimeout(() => reject(new Error(`timed out waiting for ${what}`)), TIMEOUT_MS)),
]);

const url = new URL(process.argv[2]);
const client = new sdk.Client({ name: 'plexus-ts-test', version: '0.0.0' });
let changed;
const listChanged = new Promise((resolve) => { changed = resolve; });
client.setNotificationHandler(sdk.ToolListChangedNotificationSchema, () => changed());
const transport = new sdk.StreamableHTTPClientTransport(url);
await client.connect(transport);

const tools = await client.listTools();
const result = await client.callTool({ name: 'echo.say', arguments: { text: 'from typescript' } });
const bad = await client.callTool({ name: 'echo.say', arguments: { text: 1 } });
emit({
  step: 'listed',
  protocol: transport.protocolVersion ?? null,
  session: transport.sessionId ?? null,
  tools: names(tools),
  structured: result.structuredContent ?? null,
  is_error: result.isError ?? false,
  bad_is_error: bad.isError ?? false,
  bad_text: bad.content?.[0]?.text ?? null,
});

emit({ step: 'ready' });
await within(listChanged, 'notifications/tools/list_changed');
emit({ step: 'changed', tools: names(await client.listTools()) });

emit({ step: 'idle' });
await lines.next();
try {
  await client.listTools();
  emit({ step: 'expired', error: null });
} catch (e) {
  emit({ step: 'expired', error: `${e?.name ?? 'Error'}: ${e?.message ?? e}`, code: e?.code ?? null });
}
process.exit(0);
