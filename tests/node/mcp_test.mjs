// mcp_test.mjs -- drives `convbi mcp` (stdio) and `/mcp` on `convbi serve`
// (Streamable HTTP) with the official MCP TypeScript SDKs, pinned by
// package-lock.json: @modelcontextprotocol/sdk (v1, protocol 2025-11-25,
// the initialize handshake) and @modelcontextprotocol/client (v2, protocol
// 2026-07-28: it probes with server/discover and then speaks statelessly).
// For each client and transport: the version it settled on, the four tools
// and their readOnlyHint, ask (text + structuredContent with rows, SQL and
// chart; with today and candidates, the vote), a follow-up in the returned conversation, end_conversation, run_sql (and the gate
// refusing a write), schema, list_databases.  Usage:
//   node mcp_test.mjs CONVBI CONFIG DB URL TOKEN
// Prints "ok - ..." lines and "N passed, N failed"; exits 1 on a failure.
import { Client as ClientV1 } from '@modelcontextprotocol/sdk/client/index.js';
import { LATEST_PROTOCOL_VERSION as LATEST_V1 } from '@modelcontextprotocol/sdk/types.js';
import { StdioClientTransport as StdioV1 } from '@modelcontextprotocol/sdk/client/stdio.js';
import { StreamableHTTPClientTransport as HttpV1 } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { Client as ClientV2, StreamableHTTPClientTransport as HttpV2 } from '@modelcontextprotocol/client';
import { StdioClientTransport as StdioV2 } from '@modelcontextprotocol/client/stdio';

const [convbi, config, db, url, token] = process.argv.slice(2);
let passed = 0, failed = 0;
const check = (what, cond, detail) => {
  if (cond) { passed++; console.log(`ok - ${what}`); }
  else { failed++; console.log(`FAIL - ${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail).slice(0, 400)}`); }
};

async function exercise(label, client, wantVersion) {
  // v1 has no accessor: it offers its LATEST_PROTOCOL_VERSION and fails the
  // handshake unless the server answers with a version it supports
  const version = client.getNegotiatedProtocolVersion ? client.getNegotiatedProtocolVersion() : LATEST_V1;
  if (wantVersion) check(`${label}: speaks ${wantVersion}`, version === wantVersion, version);
  const { tools } = await client.listTools();
  const names = tools.map(t => t.name).sort();
  check(`${label}: five tools`, JSON.stringify(names) === '["ask","end_conversation","list_databases","run_sql","schema"]', names);
  check(`${label}: every tool is readOnlyHint`, tools.every(t => t.annotations && t.annotations.readOnlyHint === true), tools.map(t => t.annotations));

  const dbs = await client.callTool({ name: 'list_databases', arguments: {} });
  check(`${label}: list_databases`, dbs.structuredContent && dbs.structuredContent.databases.some(d => d.name === 'shop'), dbs);

  const a = await client.callTool({ name: 'ask', arguments: { question: 'customers per country?' } });
  const sc = a.structuredContent || {};
  check(`${label}: ask is not an error`, a.isError === false, a);
  check(`${label}: ask text has the answer and the SQL`, a.content[0].type === 'text' && a.content[0].text.includes('Most customers') && a.content[0].text.includes('SELECT country_code'), a.content);
  check(`${label}: structuredContent has the rows`, Array.isArray(sc.rows) && sc.rows.length === 8 && sc.columns[0] === 'country_code', sc);
  check(`${label}: structuredContent has the SQL`, typeof sc.sql === 'string' && sc.sql.startsWith('SELECT'), sc.sql);
  check(`${label}: structuredContent has the chart`, sc.chart && sc.chart.mark && sc.chart.mark.type === 'bar', sc.chart);
  check(`${label}: ask mints a conversation`, typeof sc.conversation === 'string' && sc.conversation.length === 32, sc.conversation);

  const askTool = tools.find(t => t.name === 'ask');
  const props = (askTool && askTool.inputSchema && askTool.inputSchema.properties) || {};
  check(`${label}: ask takes today and candidates`, props.today && props.today.type === 'string' &&
        props.candidates && props.candidates.type === 'integer' && props.candidates.maximum === 16, props);
  const d = await client.callTool({ name: 'ask', arguments: { question: 'customers per country, dated', today: '2031-02-03', candidates: 2 } });
  check(`${label}: ask with today and candidates votes over two`, d.isError === false && d.structuredContent.vote &&
        d.structuredContent.vote.candidates === 2, d.structuredContent);
  const f = await client.callTool({ name: 'ask', arguments: { question: 'and by country?', conversation: sc.conversation } });
  check(`${label}: the follow-up continues the conversation`, f.isError === false && f.structuredContent.conversation === sc.conversation &&
        f.structuredContent.standalone_question === 'How many customers per country?', f.structuredContent);
  const e = await client.callTool({ name: 'end_conversation', arguments: { conversation: sc.conversation } });
  check(`${label}: end_conversation ends it`, e.isError === false && e.structuredContent.ended === true, e);
  const h = await client.callTool({ name: 'ask', arguments: { question: 'and by country?', conversation: sc.conversation } });
  check(`${label}: an ended conversation does not continue`, h.isError === true, h);
  const g = await client.callTool({ name: 'ask', arguments: { question: 'hi', conversation: '0123456789abcdef0123456789abcdef' } });
  check(`${label}: an unknown conversation is a tool error`, g.isError === true, g);

  const r = await client.callTool({ name: 'run_sql', arguments: { sql: 'SELECT count(*) AS n FROM customers' } });
  check(`${label}: run_sql`, r.isError === false && JSON.stringify(r.structuredContent.rows) === '[[200]]', r.structuredContent);
  const w = await client.callTool({ name: 'run_sql', arguments: { sql: 'DELETE FROM customers' } });
  check(`${label}: run_sql refuses a write`, w.isError === true && /only SELECT/.test(w.content[0].text), w);
  const t = await client.callTool({ name: 'run_sql', arguments: { sql: 'SELECT 1 AS x', db: 5 } });
  check(`${label}: a wrongly typed argument is a tool error naming it`, t.isError === true && /"db" must be a string/.test(t.content[0].text), t);
  const u = await client.callTool({ name: 'schema', arguments: { db: 'shop', extra: 1 } });
  check(`${label}: an undeclared argument is a tool error naming it`, u.isError === true && /unknown argument "extra"/.test(u.content[0].text), u);
  const s = await client.callTool({ name: 'schema', arguments: { db: 'shop' } });
  check(`${label}: schema`, s.isError === false && s.content[0].text.includes('customers'), s.content);
}

async function run(label, make, wantVersion) {
  const { client, transport } = make();
  try {
    await client.connect(transport);
    await exercise(label, client, wantVersion);
  } catch (e) {
    check(`${label}: no exception`, false, String(e && e.stack || e));
  } finally {
    await client.close().catch(() => {});
  }
}

const info = { name: 'convbi-test', version: '1.0.0' };
const stdioParams = { command: convbi, args: ['mcp', '--config', config, '--db', `shop=${db}`], stderr: 'ignore' };
const headers = token ? { Authorization: `Bearer ${token}` } : {};

await run('v1 stdio', () => ({ client: new ClientV1(info), transport: new StdioV1(stdioParams) }), '2025-11-25');
await run('v1 http', () => ({ client: new ClientV1(info), transport: new HttpV1(new URL(url), { requestInit: { headers } }) }), '2025-11-25');
// v2 probes with server/discover only in 'auto' mode (its default is legacy)
const auto = { versionNegotiation: { mode: 'auto' } };
await run('v2 stdio', () => ({ client: new ClientV2(info, auto), transport: new StdioV2(stdioParams) }), '2026-07-28');
await run('v2 http', () => ({ client: new ClientV2(info, auto), transport: new HttpV2(new URL(url), { requestInit: { headers } }) }), '2026-07-28');

// Without the token, /mcp is refused like every other route.
const res = await fetch(url, { method: 'POST', headers: { 'Content-Type': 'application/json', Accept: 'application/json, text/event-stream' },
  body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'tools/list', params: {} }) });
check('http without a token: 401', !token || res.status === 401, res.status);

console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
