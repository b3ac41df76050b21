// page_lib.mjs -- what the page tests share: a counting check() that prints
// TAP-like lines, headless Chromium through the pinned puppeteer-core, and
// the closing tally (exit 1 on a failure).
import puppeteer from 'puppeteer-core';

let passed = 0, failed = 0;
export const check = (what, cond, detail) => {
  if (cond) { passed++; console.log(`ok - ${what}`); }
  else { failed++; console.log(`FAIL - ${what}${detail === undefined ? '' : ': ' + JSON.stringify(detail).slice(0, 400)}`); }
};
export const launch = (chromium) => puppeteer.launch({ executablePath: chromium, headless: true,
  args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--no-first-run'] });
export const finish = () => {
  console.log(`${passed} passed, ${failed} failed`);
  process.exit(failed ? 1 : 0);
};
