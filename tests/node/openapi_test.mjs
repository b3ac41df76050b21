// openapi_test.mjs -- checks GET /v1/openapi.json against the routes the
// server really serves: it is OpenAPI 3.1; every documented operation,
// called with a minimal valid request, answers with one of its documented
// statuses (never 404/405 for a documented route); every path refuses the
// methods it does not document with 405; an undocumented path is 404; and
// every route the server counted in /metrics is documented.
// Usage: node openapi_test.mjs BASE_URL TOKEN
const [base, token] = process.argv.slice(2);
let passed = 0, failed = 0;
const check = (what, cond, detail) => {
  if (cond) { passed++; console.log(`ok - ${what}`); }
  else { failed++; console.log(`FAIL - ${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail).slice(0, 300)}`); }
};
const auth = token ? { Authorization: `Bearer ${token}` } : {};
const call = (method, path, body, headers) => fetch(base + path, { method, headers: { ...auth, 'Content-Type': 'application/json', ...(headers || {}) },
  body: body === undefined ? undefined : JSON.stringify(body) });

const doc = await (await call('GET', '/v1/openapi.json')).json();
check('the document is OpenAPI 3.1', doc.openapi === '3.1.0', doc.openapi);
check('it has info and paths', doc.info && doc.info.title && doc.paths && Object.keys(doc.paths).length >= 10, Object.keys(doc.paths || {}));
const session = (await (await call('POST', '/v1/sessions', {})).json()).session;
const bodies = {
  createSession: {}, ask: { question: 'customers per country?' }, runSql: { sql: 'SELECT 1 AS one' },
  mcp: { jsonrpc: '2.0', id: 1, method: 'ping', params: {} },
};
const METHODS = ['get', 'post', 'delete', 'put', 'patch'];
const ordered = Object.entries(doc.paths).flatMap(([p, item]) => Object.entries(item).filter(([m]) => METHODS.includes(m)).map(([m, op]) => [p, m, op]))
  .sort((a, b) => (a[1] === 'delete') - (b[1] === 'delete'));  // close the session last
for (const [path, method, op] of ordered) {
  const url = path.replace('{id}', session).replace('{name}', 'app.js');
  const r = await call(method.toUpperCase(), url, bodies[op.operationId]);
  await r.arrayBuffer();
  check(`${method.toUpperCase()} ${path} (${op.operationId}) answers a documented status`, String(r.status) in op.responses, r.status);
  check(`${method.toUpperCase()} ${path} is served`, r.status !== 404 && r.status !== 405, r.status);
  for (const other of ['get', 'post', 'delete'].filter(m => !(m in doc.paths[path]))) {
    const o = await call(other.toUpperCase(), url, other === 'get' ? undefined : {});
    await o.arrayBuffer();
    check(`${other.toUpperCase()} ${path} is refused with 405`, o.status === 405, o.status);
  }
}
const nope = await call('GET', '/v1/nope');
check('an undocumented path is 404', nope.status === 404, nope.status);
const metrics = await (await call('GET', '/metrics')).text();
const routes = new Set([...metrics.matchAll(/convbi_http_requests_total\{route="([^"]+)"/g)].map(m => m[1]));
for (const r of routes) if (r !== 'other' && r !== 'preflight') check(`served route ${r} is documented`, r in doc.paths, [...routes]);
check('the served routes were seen', routes.size >= 10, [...routes]);
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed ? 1 : 0);
