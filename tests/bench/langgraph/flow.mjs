// flow.mjs -- convbi's four-node flow written with LangGraph.js, measured the
// way tests/bench/bench_engine.c measures convbi: per Spider dev question,
// the CPU time and wall time of one graph.invoke against a zero-latency fake
// Azure OpenAI server (tests/fake_aoai), then median / p95 and peak RSS.
//
//   intent --(data_question|follow_up)--> sql --> validate --(ok)--> answer
//      \--(other intents)--> END                 |  ^
//                                 (error, repairs left)  (repairs exhausted --> END)
//
// - intent: prompts/intent.txt, AzureChatOpenAI, JSON reply read leniently
//   (fallback data_question, like convbi's agent_intent).
// - sql: prompts/sql.txt (schema = the database's CREATE statements; on a
//   repair, previous_sql and error filled), SQL taken from the ```sql fence.
// - validate: better-sqlite3 (opened readonly) prepare + statement.readonly
//   + statement.reader checks, then the read-only execution capped at 1000
//   rows; any error goes back to sql with its message, at most 3 repairs.
// - answer: prompts/answer.txt with the rows as a Markdown table (<= 50 rows),
//   streamed like convbi streams the answer by default.
// The prompts are the files convbi loads (../../../prompts), filled with a
// small {{slot}} / {{#slot}}...{{/slot}} renderer.
//
// Per question: process.cpuUsage() delta (user + system) around
// graph.invoke -- this includes Node's HTTP client work, as convbi's thread
// CPU includes libcurl's -- and the wall time.  As in bench_engine, one
// database connection per database, opened (and its schema read) outside the
// timing and closed before the next database; questions run one at a time.
// Peak RSS: process.resourceUsage().maxRSS at the end.
//
// --sqlite-extension FILE is loaded into every connection; the runner passes
// one that re-enables double-quoted string literals, which better-sqlite3's
// SQLite (SQLITE_DQS=0) refuses but convbi's SQLite accepts -- without it,
// the Spider gold SQL that uses them fails here only and runs the repair loop.
//
// Usage:
//   node flow.mjs --port PORT | --port-file FILE  [--endpoint NAME]
//                 [--deployment gpt-4o] [--api-key KEY] [--limit N]
//                 [--out FILE] [--spider DIR] [--prompts DIR] [--questions FILE]
//                 [--sqlite-extension FILE]
//   node flow.mjs --write-scenario DIR [--limit N] [--spider DIR]
//       writes DIR/scenario.json and DIR/map.json -- the same scenario
//       bench_engine.c writes for itself (zero latency), for fake_aoai -- and
//       DIR/questions.json (question, db, gold of the first N questions),
//       which --questions reads instead of parsing dev.json in the measured
//       process.
import { readFileSync, writeFileSync, existsSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { performance } from "node:perf_hooks";
import { createRequire } from "node:module";

import Database from "better-sqlite3";
import { Annotation, StateGraph, START, END } from "@langchain/langgraph";
import { AzureChatOpenAI } from "@langchain/openai";

const HERE = dirname(fileURLToPath(import.meta.url));
const require = createRequire(import.meta.url);

const MAX_REPAIRS = 3;     // convbi's default max_repairs
const ROW_CAP = 1000;      // convbi's default row_cap
const ANSWER_ROWS = 50;    // rows the answer prompt shows (agent_answer.c)
const SCENARIO_API_KEY = "k-local-5c2e8a1f";
const SCENARIO_DEPLOYMENT = "gpt-4o";

// ---- arguments -------------------------------------------------------------

function parseArgs(argv) {
	const a = {
		port: null, portFile: null, endpoint: "local", deployment: SCENARIO_DEPLOYMENT,
		apiKey: SCENARIO_API_KEY, limit: -1, out: "bench_langgraph.json",
		spider: process.env.SPIDER_DIR || "/work/shared/data/spider-dev",
		prompts: resolve(HERE, "../../../prompts"), writeScenario: null, questions: null, extension: null,
	};
	const need = (i) => {
		if (i + 1 >= argv.length) usage();
		return argv[i + 1];
	};
	for (let i = 0; i < argv.length; i++) {
		switch (argv[i]) {
		case "--port": a.port = Number(need(i)); i++; break;
		case "--port-file": a.portFile = need(i); i++; break;
		case "--endpoint": a.endpoint = need(i); i++; break;
		case "--deployment": a.deployment = need(i); i++; break;
		case "--api-key": a.apiKey = need(i); i++; break;
		case "--limit": a.limit = Number(need(i)); i++; break;
		case "--out": a.out = need(i); i++; break;
		case "--spider": a.spider = need(i); i++; break;
		case "--prompts": a.prompts = need(i); i++; break;
		case "--write-scenario": a.writeScenario = need(i); i++; break;
		case "--questions": a.questions = need(i); i++; break;
		case "--sqlite-extension": a.extension = need(i); i++; break;
		default: usage();
		}
	}
	if (!a.writeScenario && !a.port && !a.portFile) usage();
	return a;
}

function usage() {
	process.stderr.write(
		"usage: node flow.mjs --port PORT | --port-file FILE [--endpoint NAME] [--deployment D] [--api-key K]\n" +
		"                     [--limit N] [--out FILE] [--spider DIR] [--prompts DIR] [--questions FILE]\n" +
		"                     [--sqlite-extension FILE]\n" +
		"       node flow.mjs --write-scenario DIR [--limit N] [--spider DIR]\n");
	process.exit(2);
}

// ---- Spider questions (same order and pairing as bench_engine.c) ----------

function loadQuestions(spider, limit) {
	const dev = JSON.parse(readFileSync(join(spider, "dev.json"), "utf8"));
	const gold = readFileSync(join(spider, "dev_gold.sql"), "utf8").split("\n");
	const n = limit >= 0 && limit < dev.length ? limit : dev.length;
	const qs = [];
	for (let i = 0; i < n; i++) {
		if (i >= gold.length || gold[i] === "") throw new Error("dev_gold.sql has fewer lines than dev.json");
		let line = gold[i];
		const tab = line.lastIndexOf("\t");
		if (tab >= 0) {
			if (line.slice(tab + 1) !== dev[i].db_id)
				process.stderr.write(`warning: gold line ${i + 1} is for ${line.slice(tab + 1)}, question for ${dev[i].db_id}\n`);
			line = line.slice(0, tab);
		}
		qs.push({ index: i, question: dev[i].question, db: dev[i].db_id, gold: line });
	}
	return qs;
}

function writeScenario(dir, qs) {
	const map = {};
	let collisions = 0;
	for (const q of qs) {
		const v = "```sql\n" + q.gold + "\n```";
		if (Object.prototype.hasOwnProperty.call(map, q.question)) collisions += map[q.question] !== v;
		else map[q.question] = v;
	}
	writeFileSync(join(dir, "map.json"), JSON.stringify(map));
	const scenario = {
		endpoints: [{ name: "local", api_key: SCENARIO_API_KEY, deployment: SCENARIO_DEPLOYMENT, latency_ms: 0 }],
		rules: [
			{ match: "You are the intent classifier", reply: '{"intent":"data_question"}' },
			{ match: "(?s)You are the SQL writer.*\\nQuestion: ([^\\n]*)", map_file: "map.json",
			  default: "```sql\nSELECT 'no gold for this question'\n```" },
			{ match: "You are the answer writer", reply: "Here is what the data says." },
		],
		default_reply: "OK",
	};
	writeFileSync(join(dir, "scenario.json"), JSON.stringify(scenario));
	writeFileSync(join(dir, "questions.json"), JSON.stringify(qs));
	return collisions;
}

// ---- prompts ----------------------------------------------------------------

// {{#slot}}...{{/slot}} kept when the slot is non-empty, {{slot}} replaced,
// {{{{ a literal {{ -- the syntax of prompts/README.md, simply.
function render(template, slots) {
	const LIT = "\u0000LBRACE\u0000";
	let s = template.replaceAll("{{{{", LIT);
	s = s.replace(/\{\{#(\w+)\}\}([\s\S]*?)\{\{\/\1\}\}/g, (_, name, body) => (slots[name] ? body : ""));
	s = s.replace(/\{\{(\w+)\}\}/g, (_, name) => (slots[name] == null ? "" : String(slots[name])));
	return s.replaceAll(LIT, "{{");
}

function loadPrompts(dir) {
	const p = {};
	for (const name of ["intent", "sql", "answer", "refuse", "help"]) p[name] = readFileSync(join(dir, `${name}.txt`), "utf8");
	return p;
}

// ---- reading the model's replies (lenient, like convbi's extract.c) --------

const INTENTS = ["data_question", "follow_up", "chitchat", "out_of_scope"];

function parseIntent(text) {
	const a = text.indexOf("{"), b = text.lastIndexOf("}");
	if (a >= 0 && b > a) {
		try {
			const o = JSON.parse(text.slice(a, b + 1));
			if (INTENTS.includes(o.intent)) return { intent: o.intent, standalone: o.standalone_question || "", reply: o.reply || "" };
		} catch { /* fall through to the label search */ }
	}
	const label = INTENTS.find((l) => text.includes(l));
	return { intent: label || "data_question", standalone: "", reply: "" };
}

function extractSql(text) {
	let m = /```sql[ \t]*\n([\s\S]*?)```/i.exec(text) || /```[^\n]*\n([\s\S]*?)```/.exec(text);
	let sql = m ? m[1] : text;
	if (!m) {
		try {
			const o = JSON.parse(text);
			if (typeof o.sql === "string") sql = o.sql;
		} catch { /* bare SQL */ }
		const at = sql.search(/SQL:/);
		if (at >= 0) sql = sql.slice(at + 4);
	}
	sql = sql.trim().replace(/;+\s*$/, "").trim();
	return /^(select|with)\b/i.test(sql) ? sql : null;
}

function markdown(columns, rows, max) {
	const cell = (v) => (v === null ? "NULL" : Buffer.isBuffer(v) ? `<${v.length} bytes>` : String(v))
		.replace(/\n/g, "\\n").replace(/\|/g, "\\|");
	const out = ["| " + columns.join(" | ") + " |", "|" + columns.map(() => "---").join("|") + "|"];
	for (const r of rows.slice(0, max)) out.push("| " + r.map(cell).join(" | ") + " |");
	return out.join("\n");
}

// ---- the graph ------------------------------------------------------------

const State = Annotation.Root({
	question: Annotation(),
	label: Annotation(),          // the intent (state keys may not reuse node names)
	standalone: Annotation(),
	query: Annotation(),          // the candidate SQL
	error: Annotation(),          // the gate's / SQLite's message for a repair
	previousSql: Annotation(),
	repairs: Annotation({ reducer: (_, b) => b, default: () => 0 }),
	columns: Annotation(),
	rows: Annotation(),
	truncated: Annotation(),
	reply: Annotation(),          // the answer text
	status: Annotation(),         // "ok" | "reply" | "repair_exhausted"
});

function buildGraph(models, prompts) {
	const text = (msg) => (typeof msg.content === "string" ? msg.content : msg.content.map((p) => p.text || "").join(""));

	async function intent(state, config) {
		const { db } = config.configurable;
		const prompt = render(prompts.intent, { tables: db.tables, history: "", question: state.question });
		const got = parseIntent(text(await models.intent.invoke([{ role: "user", content: prompt }])));
		if (got.intent === "data_question" || got.intent === "follow_up")
			return { label: got.intent, standalone: state.question };  // no history: keep the user's words
		const reply = got.reply || render(got.intent === "chitchat" ? prompts.help : prompts.refuse, { question: state.question }).trimEnd();
		return { label: got.intent, reply, status: "reply" };
	}

	async function sql(state, config) {
		const { db } = config.configurable;
		const repair = state.error != null;
		const prompt = render(prompts.sql, {
			schema: db.schema, history: "", hint: "", question: state.standalone,
			previous_sql: repair ? state.previousSql : "", error: repair ? state.error : "",
		});
		const reply = text(await models.sql.invoke([{ role: "user", content: prompt }]));
		const s = extractSql(reply);
		return s ? { query: s, error: null } : { query: reply, error: "the reply holds no SELECT statement" };
	}

	function validate(state, config) {
		const { db } = config.configurable;
		let error = state.error;
		if (error == null) {
			try {
				const stmt = db.conn.prepare(state.query);            // one statement, or it throws
				if (!stmt.readonly || !stmt.reader) throw new Error("only a read-only SELECT is allowed");
				stmt.raw(true);
				const columns = stmt.columns().map((c) => c.name);
				const rows = [];
				let truncated = false;
				for (const r of stmt.iterate()) {
					if (rows.length === ROW_CAP) { truncated = true; break; }
					rows.push(r);
				}
				return { columns, rows, truncated, error: null };
			} catch (e) {
				error = e.message;
			}
		}
		if (state.repairs < MAX_REPAIRS)
			return { error, previousSql: state.query, repairs: state.repairs + 1 };
		return { error, status: "repair_exhausted" };
	}

	async function answer(state) {
		const nulls = state.rows.some((r) => r.includes(null));
		const notes = (state.truncated ? "Say that the result was cut by the row cap. " : "") +
			(nulls ? "Some values are NULL (unknown); say so where it matters." : "");
		const truncated = state.truncated ? `cut at ${state.rows.length} rows by the row cap; more rows exist`
			: state.rows.length > ANSWER_ROWS ? `only the first ${ANSWER_ROWS} shown` : "";
		const prompt = render(prompts.answer, {
			question: state.standalone, sql: state.query, rows: markdown(state.columns, state.rows, ANSWER_ROWS),
			row_count: state.rows.length, truncated, notes,
		});
		let out = "";
		for await (const chunk of await models.answer.stream([{ role: "user", content: prompt }])) out += text(chunk);
		return { reply: out, status: "ok" };
	}

	return new StateGraph(State)
		.addNode("intent", intent)
		.addNode("sql", sql)
		.addNode("validate", validate)
		.addNode("answer", answer)
		.addEdge(START, "intent")
		.addConditionalEdges("intent", (s) => (s.status === "reply" ? END : "sql"), ["sql", END])
		.addEdge("sql", "validate")
		.addConditionalEdges("validate", (s) => (s.status === "repair_exhausted" ? END : s.error != null ? "sql" : "answer"),
			["sql", "answer", END])
		.addEdge("answer", END)
		.compile();
}

// ---- measurement ---------------------------------------------------------

function pct(sorted, p) {
	if (!sorted.length) return NaN;
	const i = Math.ceil((p / 100) * sorted.length) - 1;
	return sorted[Math.min(Math.max(i, 0), sorted.length - 1)];
}

function openDb(spider, name, extension) {
	const path = join(spider, "database", name, `${name}.sqlite`);
	if (!existsSync(path)) throw new Error(`database \`${path}\` does not exist`);
	const conn = new Database(path, { readonly: true, fileMustExist: true });
	if (extension) conn.loadExtension(extension);
	const objs = conn.prepare("SELECT type, name, sql FROM sqlite_master WHERE sql IS NOT NULL AND name NOT LIKE 'sqlite_%' ORDER BY rowid").all();
	return {
		conn,
		tables: objs.filter((o) => o.type === "table").map((o) => o.name).join(", "),
		schema: objs.map((o) => o.sql.trim() + ";").join("\n"),
	};
}

async function fakeRequests(port) {
	try {
		const r = await fetch(`http://127.0.0.1:${port}/_fake/stats`);
		return (await r.json()).requests;
	} catch {
		return -1;
	}
}

function versionOf(pkg) {
	try {
		return require(`${pkg}/package.json`).version;
	} catch {
		return JSON.parse(readFileSync(join(HERE, "node_modules", pkg, "package.json"), "utf8")).version;
	}
}

async function main() {
	const args = parseArgs(process.argv.slice(2));
	// dev.json is 3.6 MB; parsing it here would put the bench's own data into
	// the peak RSS (bench_engine parses it in a child for the same reason), so
	// the runner passes the compact questions.json that --write-scenario wrote.
	const qs = args.questions ? JSON.parse(readFileSync(args.questions, "utf8")) : loadQuestions(args.spider, args.limit);
	if (args.questions && args.limit >= 0) qs.length = Math.min(qs.length, args.limit);
	if (args.writeScenario) {
		const collisions = writeScenario(args.writeScenario, qs);
		console.log(`scenario: ${join(args.writeScenario, "scenario.json")} (${qs.length} questions, ${collisions} map collisions)`);
		return;
	}
	let port = args.port;
	if (!port) {
		const line = readFileSync(args.portFile, "utf8").split("\n").find((l) => l.split(" ")[0] === args.endpoint);
		if (!line) throw new Error(`no endpoint ${args.endpoint} in ${args.portFile}`);
		port = Number(line.split(" ")[1]);
	}
	const prompts = loadPrompts(args.prompts);
	const common = {
		azureOpenAIApiKey: args.apiKey,
		azureOpenAIBasePath: `http://127.0.0.1:${port}/openai/deployments`,
		azureOpenAIApiDeploymentName: args.deployment,
		azureOpenAIApiVersion: "2024-10-21",
		model: args.deployment,
		temperature: 0,
		maxRetries: 6,
	};
	const models = {   // convbi's max_tokens per agent: intent 400, sql 1000, answer 500
		intent: new AzureChatOpenAI({ ...common, maxTokens: 400 }),
		sql: new AzureChatOpenAI({ ...common, maxTokens: 1000 }),
		answer: new AzureChatOpenAI({ ...common, maxTokens: 500, streaming: true }),
	};
	const graph = buildGraph(models, prompts);

	const cpu = [], wall = [];
	const done = new Array(qs.length).fill(false);
	let ok = 0, openFail = 0, sqlGold = 0, mapMiss = 0, repairsTotal = 0, diffShown = 0;
	const statusCount = {};
	const norm = (s) => (s || "").trim().replace(/;+\s*$/, "").trim();
	for (let i = 0; i < qs.length; i++) {
		if (done[i]) continue;
		const name = qs[i].db;
		let db;
		try {
			db = openDb(args.spider, name, args.extension);
		} catch (e) {
			process.stderr.write(`engine ${name}: ${e.message}\n`);
			for (let j = i; j < qs.length; j++) if (!done[j] && qs[j].db === name) { done[j] = true; openFail++; }
			continue;
		}
		const config = { configurable: { db } };
		for (let j = i; j < qs.length; j++) {
			if (done[j] || qs[j].db !== name) continue;
			done[j] = true;
			const q = qs[j];
			let result, err;
			const c0 = process.cpuUsage();
			const w0 = performance.now();
			try {
				result = await graph.invoke({ question: q.question }, config);
			} catch (e) {
				err = e;
			}
			const w1 = performance.now();
			const c = process.cpuUsage(c0);
			cpu.push((c.user + c.system) / 1e3);
			wall.push(w1 - w0);
			const status = err ? "exception" : result.status || "none";
			statusCount[status] = (statusCount[status] || 0) + 1;
			if (status === "ok") ok++;
			else if (statusCount[status] <= 3)
				process.stderr.write(`q${j} [${name}] ${q.question}: ${status} ${err ? err.message : result.error || ""}\n`);
			if (result) repairsTotal += result.repairs || 0;
			const sql = result && result.query;
			if (sql && norm(sql) === norm(q.gold)) sqlGold++;
			else if (sql && sql.includes("no gold for this question")) mapMiss++;
			else if (diffShown++ < 3) process.stderr.write(`sql differs q${j}: gold [${q.gold}] got [${sql}]\n`);
		}
		db.conn.close();
	}
	const requests = await fakeRequests(port);
	const rssKib = process.resourceUsage().maxRSS;
	const cs = [...cpu].sort((a, b) => a - b), ws = [...wall].sort((a, b) => a - b);
	const mean = cs.length ? cs.reduce((a, b) => a + b, 0) / cs.length : NaN;
	const n = cpu.length;
	console.log(`langgraph flow: ${qs.length} Spider dev questions (${n} asked), zero-latency fake server on port ${port}`);
	console.log(`  answered OK ${ok}, failed ${n - ok}, engine open failures ${openFail}; SQL = gold ${sqlGold}; map misses ${mapMiss}; repairs ${repairsTotal}; fake requests ${requests}`);
	for (const [k, v] of Object.entries(statusCount)) if (k !== "ok") console.log(`  status ${k.padEnd(12)} ${v}`);
	const f = (x) => x.toFixed(3).padStart(10);
	console.log(`\n${"per question".padEnd(28)} ${"median".padStart(10)} ${"p95".padStart(10)} ${"p99".padStart(10)} ${"max".padStart(10)} ${"mean".padStart(10)}`);
	console.log(`${"process CPU (ms)".padEnd(28)} ${f(pct(cs, 50))} ${f(pct(cs, 95))} ${f(pct(cs, 99))} ${f(cs[n - 1] ?? NaN)} ${f(mean)}`);
	console.log(`${"wall (ms, incl. fake server)".padEnd(28)} ${f(pct(ws, 50))} ${f(pct(ws, 95))} ${f(pct(ws, 99))} ${f(ws[n - 1] ?? NaN)}`);
	console.log(`peak RSS: ${(rssKib / 1024).toFixed(1)} MiB (maxRSS ${rssKib} KiB)`);
	const json = {
		questions: qs.length, asked: n, ok, failed: n - ok, engine_open_failures: openFail,
		sql_equals_gold: sqlGold, map_misses: mapMiss, repairs: repairsTotal, fake_requests: requests,
		status: statusCount,
		cpu_ms_median: pct(cs, 50), cpu_ms_p95: pct(cs, 95), cpu_ms_p99: pct(cs, 99),
		cpu_ms_max: cs[n - 1] ?? 0, cpu_ms_mean: n ? mean : 0,
		wall_ms_median: pct(ws, 50), wall_ms_p95: pct(ws, 95),
		peak_rss_kib: rssKib,
		runtime: {
			node: process.version,
			"@langchain/langgraph": versionOf("@langchain/langgraph"),
			"@langchain/openai": versionOf("@langchain/openai"),
			"@langchain/core": versionOf("@langchain/core"),
			openai: versionOf("openai"),
			"better-sqlite3": versionOf("better-sqlite3"),
		},
	};
	writeFileSync(args.out, JSON.stringify(json, null, 2) + "\n");
	console.log(`JSON: ${args.out}`);
}

main().catch((e) => {
	process.stderr.write(`flow.mjs: ${e.stack || e}\n`);
	process.exit(1);
});
