// app.js -- the page's behaviour: a session per database, the question
// posted with `Accept: text/event-stream` and the SSE events (stage, retry,
// sql, token, rows, done, error) read from the response stream, the SQL
// editable and re-run through /v1/sql, the rows as a table and the chart
// drawn by vega-embed from the spec the server built.  Text from the server
// is only ever inserted as text (textContent), never as HTML.
'use strict';
const $ = (id) => document.getElementById(id);
let session = null, sessionDb = null;

function headers(extra) {
  const h = Object.assign({ 'Content-Type': 'application/json' }, extra || {});
  const token = $('token').value.trim();
  if (token) h.Authorization = 'Bearer ' + token;
  return h;
}
function status(text, isError) {
  $('status').textContent = text;
  $('status').className = isError ? 'error' : '';
}
async function api(method, path, body) {
  const r = await fetch(path, { method, headers: headers(), body: body === undefined ? undefined : JSON.stringify(body) });
  const data = r.status === 204 ? null : await r.json();
  if (!r.ok) throw new Error((data && data.error && data.error.message) || ('HTTP ' + r.status));
  return data;
}
async function loadDatabases() {
  try {
    const { databases } = await api('GET', '/v1/databases');
    const sel = $('db');
    sel.textContent = '';
    for (const d of databases) {
      const o = document.createElement('option');
      o.value = o.textContent = d.name;
      sel.appendChild(o);
    }
  } catch (e) { status(e.message, true); }
}

function showTable(columns, rows) {
  const box = $('table');
  box.textContent = '';
  if (!columns || !columns.length) { $('table-box').hidden = true; return; }
  const t = document.createElement('table'), head = t.createTHead().insertRow();
  for (const c of columns) { const th = document.createElement('th'); th.textContent = c; head.appendChild(th); }
  const body = t.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    for (const v of row) {
      const td = tr.insertCell();
      td.textContent = v === null ? 'NULL' : String(v);
      if (typeof v === 'number') td.className = 'num';
    }
  }
  box.appendChild(t);
  $('table-box').hidden = false;
}
async function showChart(spec) {
  const box = $('chart');
  box.textContent = '';
  if (!spec) { $('chart-box').hidden = true; return; }
  $('chart-box').hidden = false;
  const width = Math.max(320, Math.min(1000, ($('chart-box').clientWidth || 900) - 120));
  spec = Object.assign({}, spec, { width, height: 300 });
  await vegaEmbed(box, spec, { actions: false, renderer: 'svg' });
}
async function showAnswer(a) {
  $('answer').textContent = a.answer || '';
  $('answer-box').hidden = !a.answer;
  if (a.sql) { $('sql').value = a.sql; $('sql-box').hidden = false; }
  showTable(a.columns, a.rows);
  await showChart(a.chart);
}

// Reads `event:`/`data:` blocks from the response body as they arrive.
async function readEvents(response, onEvent) {
  const reader = response.body.getReader(), decoder = new TextDecoder();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += decoder.decode(value, { stream: true });
    let end;
    while ((end = buf.indexOf('\n\n')) >= 0) {
      const block = buf.slice(0, end); buf = buf.slice(end + 2);
      let name = 'message', data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
      }
      if (data) await onEvent(name, JSON.parse(data));
    }
  }
}

async function ask(question) {
  const db = $('db').value;
  document.body.dataset.state = 'asking';
  $('answer').textContent = '';
  $('answer-box').hidden = false;
  try {
    if (!session || sessionDb !== db) {
      session = (await api('POST', '/v1/sessions', { db })).session;
      sessionDb = db;
    }
    status('asking…');
    const r = await fetch('/v1/sessions/' + session + '/questions', {
      method: 'POST', headers: headers({ Accept: 'text/event-stream' }), body: JSON.stringify({ question }) });
    if (!r.ok) {
      const e = await r.json().catch(() => null);
      if (r.status === 404) session = null;
      throw new Error((e && e.error && e.error.message) || ('HTTP ' + r.status));
    }
    await readEvents(r, async (name, data) => {
      if (name === 'stage') status(data.stage + '…');
      else if (name === 'retry') {
        status('retrying: ' + data.message);
        if (data.restarted) $('answer').textContent = ''; // the tokens so far are void: the answer starts over
      }
      else if (name === 'sql') { $('sql').value = data.sql; $('sql-box').hidden = false; }
      else if (name === 'token') $('answer').textContent += data.text;
      else if (name === 'rows') showTable(data.columns, data.rows);
      else if (name === 'done') { await showAnswer(data); status('answered in ' + data.elapsed_ms + ' ms'); document.body.dataset.state = 'done'; }
      else if (name === 'error') { status(data.error.message, true); document.body.dataset.state = 'error'; }
    });
  } catch (e) {
    status(e.message, true);
    document.body.dataset.state = 'error';
  }
}

async function rerun() {
  document.body.dataset.state = 'running';
  try {
    const a = await api('POST', '/v1/sql', { db: $('db').value, sql: $('sql').value });
    showTable(a.columns, a.rows);
    await showChart(a.chart);
    status(a.row_count + ' row' + (a.row_count === 1 ? '' : 's'));
    document.body.dataset.state = 'done';
  } catch (e) {
    status(e.message, true);
    document.body.dataset.state = 'error';
  }
}

window.addEventListener('DOMContentLoaded', async () => {
  $('token').value = sessionStorage.getItem('convbi-token') || '';
  $('token').addEventListener('change', () => { sessionStorage.setItem('convbi-token', $('token').value); loadDatabases(); });
  $('ask').addEventListener('submit', (e) => { e.preventDefault(); const q = $('question').value.trim(); if (q) ask(q); });
  $('rerun').addEventListener('click', rerun);
  await loadDatabases();
  const params = new URLSearchParams(location.search);
  if (params.get('db')) $('db').value = params.get('db');
  // ?q= only fills the box: a link from any site must not make the browser
  // ask (model calls, cost) without the user pressing Ask
  if (params.get('q')) $('question').value = params.get('q');
});
