// options_test.mjs -- REST and MCP take a question's options (and db, sql)
// by one rule, and say so: every value in the table below is sent both to
// the REST route (a question, POST /v1/sql, POST /v1/sessions) and to its
// MCP tool (ask, run_sql) over /mcp; both must accept it or both refuse it
// (a refusal is 400/413 in the JSON error shape, or a tool result with
// isError), with the same message.  And each schema the server publishes
// -- the request body in GET /v1/openapi.json, the tool's inputSchema in
// tools/list, checked with Ajv (JSON Schema 2020-12) -- gives the verdict
// the server gives, except for the cases a schema cannot state (a date that
// does not exist, a length in bytes), which both schemas then accept.
// Usage: node options_test.mjs BASE_URL
import Ajv2020 from 'ajv/dist/2020.js';

const [base] = process.argv.slice(2);
let passed = 0, failed = 0;
const check = (what, cond, detail) => {
  if (cond) { passed++; console.log(`ok - ${what}`); }
  else { failed++; console.log(`FAIL - ${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail).slice(0, 400)}`); }
};
const post = (path, body, headers) => fetch(base + path, { method: 'POST', body: JSON.stringify(body),
  headers: { 'Content-Type': 'application/json', ...(headers || {}) } });
let rpcId = 0;
const mcp = async (method, params) => {
  const r = await post('/mcp', { jsonrpc: '2.0', id: ++rpcId, method, params },
    { Accept: 'application/json, text/event-stream' });
  return (await r.json()).result;
};

const ajv = new Ajv2020({ strict: false, allErrors: true });
const doc = await (await fetch(base + '/v1/openapi.json')).json();
const bodySchema = (path) => doc.paths[path].post.requestBody.content['application/json'].schema;
const tools = Object.fromEntries((await mcp('tools/list', {})).tools.map(t => [t.name, t.inputSchema]));
const validator = {
  question: ajv.compile(bodySchema('/v1/sessions/{id}/questions')), ask: ajv.compile(tools.ask),
  sql: ajv.compile(bodySchema('/v1/sql')), run_sql: ajv.compile(tools.run_sql),
  session: ajv.compile(bodySchema('/v1/sessions')),
};

// What the REST route and the MCP tool say to one set of fields.
async function rest(kind, fields) {
  let r;
  if (kind === 'sql') r = await post('/v1/sql', fields);
  else if (kind === 'session') r = await post('/v1/sessions', fields);
  else {
    const s = (await (await post('/v1/sessions', {})).json()).session;
    r = await post(`/v1/sessions/${s}/questions`, fields);
  }
  const body = await r.json();
  return { ok: r.status < 300, status: r.status, message: body.error ? body.error.message : '' };
}
async function tool(kind, fields) {
  const name = kind === 'sql' ? 'run_sql' : 'ask';
  const args = kind === 'session' ? { question: 'How many customers are there?', ...fields } : fields;
  const r = await mcp('tools/call', { name, arguments: args });
  return { ok: r.isError === false, message: r.isError ? r.content[0].text : '' };
}

const Q = 'How many customers are there?';
const long = 'x'.repeat(16385), accents = 'é'.repeat(8193); // 16,386 bytes in 8,193 characters
// [kind, fields, what a schema can say about it: true = the same verdict as
// the server, false = the server refuses what the schema lets through]
const cases = [
  ['question', { question: Q }, true],
  ['question', { question: Q, today: '2024-02-29' }, true],
  ['question', { question: Q, today: null }, true],
  ['question', { question: Q, today: 20240229 }, true],
  ['question', { question: Q, today: '2024-2-29' }, true],
  ['question', { question: Q, today: '2024-02-29T00:00' }, true],
  ['question', { question: Q, today: '2023-02-29' }, false],
  ['question', { question: Q, today: '0000-01-01' }, false],
  ['question', { question: Q, today: '2024-13-01' }, false],
  ['question', { question: Q, candidates: 2 }, true],
  ['question', { question: Q, candidates: 2.0 }, true],
  ['question', { question: Q, candidates: null }, true],
  ['question', { question: Q, candidates: 0 }, true],
  ['question', { question: Q, candidates: 17 }, true],
  ['question', { question: Q, candidates: 2.5 }, true],
  ['question', { question: Q, candidates: '2' }, true],
  ['question', { question: Q, candidates: true }, true],
  ['question', { question: Q, hint: 'customers are rows of customers' }, true],
  ['question', { question: Q, hint: null }, true],
  ['question', { question: Q, hint: 7 }, true],
  ['question', { question: null }, true],
  ['question', { question: '' }, true],
  ['question', { question: 5 }, true],
  ['question', { question: ['a'] }, true],
  ['question', {}, true],
  ['question', { question: long }, true],
  ['question', { question: accents }, false],
  ['question', { question: Q, hint: long }, true],
  ['question', { question: Q, other: 1 }, true],
  ['sql', { sql: 'SELECT 1 AS one' }, true],
  ['sql', { sql: 'SELECT 1 AS one', db: 'shop' }, true],
  ['sql', { sql: 'SELECT 1 AS one', db: null }, true],
  ['sql', { sql: 'SELECT 1 AS one', db: 5 }, true],
  ['sql', { sql: null }, true],
  ['sql', { sql: '' }, true],
  ['sql', { sql: 'SELECT 1 AS one', other: 1 }, true],
  ['session', { db: 'shop' }, true],
  ['session', { db: null }, true],
  ['session', { db: {} }, true],
];

for (const [kind, fields, stated] of cases) {
  const shown = `${kind} ${JSON.stringify(fields).slice(0, 70)}`;
  const [r, m] = [await rest(kind, fields), await tool(kind, fields)];
  check(`${shown}: REST and MCP agree (REST ${r.status}, MCP ${m.ok ? 'ok' : 'isError'})`, r.ok === m.ok, { r, m });
  if (!r.ok && !m.ok && !/^unknown (field|argument)/.test(r.message))
    check(`${shown}: with the same message`, r.message === m.message, { r: r.message, m: m.message });
  if (!r.ok) check(`${shown}: the REST refusal is a 400 or 413`, r.status === 400 || r.status === 413, r);
  const restSchema = kind === 'sql' ? validator.sql : kind === 'session' ? validator.session : validator.question;
  const mcpFields = kind === 'session' ? { question: Q, ...fields } : fields;
  const mcpSchema = kind === 'sql' ? validator.run_sql : validator.ask;
  const [rs, ms] = [restSchema(fields), mcpSchema(mcpFields)];
  if (stated) {
    check(`${shown}: the OpenAPI schema says what REST does`, rs === r.ok, { schema: rs, server: r });
    check(`${shown}: the inputSchema says what MCP does`, ms === m.ok, { schema: ms, server: m });
  } else {
    check(`${shown}: both schemas let it through (they cannot state it) and the server refuses it`,
      rs && ms && !r.ok, { rs, ms, r });
  }
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
