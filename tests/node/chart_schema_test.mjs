// chart_schema_test.mjs -- validates chart specs against the Vega-Lite v5
// JSON schema shipped in the pinned `vega-lite` npm package (ajv, draft-07),
// and checks the whitelist: only the allowed marks, channels and keys, data
// inline, title and description plain strings, never url/transform/params/expr.  Usage: node chart_schema_test.mjs
// FILE, where FILE holds one line per case: `NAME<TAB>SPEC-JSON`.
// Prints "ok - ..." lines and "N passed, N failed"; exits 1 on a failure.
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import Ajv from 'ajv';

const require = createRequire(import.meta.url);
const schema = JSON.parse(readFileSync(require.resolve('vega-lite/build/vega-lite-schema.json'), 'utf8'));
const ajv = new Ajv({ strict: false, allErrors: true });
const validate = ajv.compile(schema);

const MARKS = ['bar', 'line', 'area', 'arc', 'point'];
const CHANNELS = ['x', 'y', 'color', 'theta', 'xOffset'];
const CHANNEL_KEYS = ['field', 'type', 'timeUnit', 'aggregate', 'sort', 'title'];
const TIME_UNITS = ['year', 'yearmonth', 'yearmonthdate'];
const AGGREGATES = ['sum'];
const TOP = ['$schema', 'data', 'mark', 'encoding', 'title', 'description'];

let passed = 0, failed = 0;
const check = (what, cond, detail) => {
  if (cond) { passed++; console.log(`ok - ${what}`); }
  else { failed++; console.log(`FAIL - ${what}: ${JSON.stringify(detail).slice(0, 600)}`); }
};
const forbidden = (v) => v && typeof v === 'object' &&
  Object.entries(v).some(([k, x]) => ['url', 'transform', 'params', 'expr', 'signal'].includes(k) || forbidden(x));

for (const line of readFileSync(process.argv[2], 'utf8').split('\n').filter(Boolean)) {
  const [name, json] = line.split('\t');
  const spec = JSON.parse(json);
  check(`${name}: valid Vega-Lite v5`, validate(spec), validate.errors);
  check(`${name}: v5 $schema`, spec.$schema === 'https://vega.github.io/schema/vega-lite/v5.json', spec.$schema);
  check(`${name}: only whitelisted top-level keys`, Object.keys(spec).every(k => TOP.includes(k)), Object.keys(spec));
  for (const k of ['title', 'description'])
    if (k in spec) check(`${name}: ${k} is plain text`, typeof spec[k] === 'string', spec[k]);
  check(`${name}: inline data only`, Object.keys(spec.data).join() === 'values' && Array.isArray(spec.data.values), spec.data);
  check(`${name}: a whitelisted mark`, MARKS.includes(spec.mark.type), spec.mark);
  const enc = spec.encoding;
  check(`${name}: whitelisted channels`, Object.keys(enc).every(c => CHANNELS.includes(c)), Object.keys(enc));
  const cols = new Set(Object.keys(spec.data.values[0] || {}));
  for (const [c, def] of Object.entries(enc)) {
    check(`${name}: ${c} keys are whitelisted`, Object.keys(def).every(k => CHANNEL_KEYS.includes(k)), def);
    check(`${name}: ${c} names a result column`, cols.has(def.field.replace(/\\(.)/g, '$1')), def.field);
    if (def.timeUnit) check(`${name}: ${c} timeUnit from the list`, TIME_UNITS.includes(def.timeUnit), def.timeUnit);
    if (def.aggregate) check(`${name}: ${c} aggregate from the list`, AGGREGATES.includes(def.aggregate), def.aggregate);
  }
  check(`${name}: no url, transform, params, expr or signal anywhere`, !forbidden(spec), spec);
}
console.log(`${passed} passed, ${failed} failed`);
process.exit(failed || passed === 0 ? 1 : 0);
