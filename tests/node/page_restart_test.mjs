// page_restart_test.mjs -- the page at GET / when the model stream is cut
// mid-answer and restarted (attack5 F5): the `retry` event with
// "restarted": true drops the text streamed so far.  The restarted attempt
// fails here, so nothing replaces that text afterwards (a `done` would):
// the answer box must be empty, not the cut text.
// Usage: node page_restart_test.mjs CHROMIUM URL FAULTS_URL FAULTS_JSON
import { check, launch, finish } from './page_lib.mjs';

const [chromium, url, faultsUrl, faults] = process.argv.slice(2);
const browser = await launch(chromium);
try {
  const page = await browser.newPage();
  const errors = [];
  page.on('pageerror', e => errors.push(String(e)));
  await page.goto(url);
  await page.waitForSelector('#question');
  const r = await fetch(faultsUrl, { method: 'POST', body: faults });
  check('the fake took the faults', r.ok, r.status);
  // the longest answer text shown at any moment: the cut attempt's tokens were shown
  await page.evaluate(() => {
    window.longest = '';
    const a = document.getElementById('answer');
    new MutationObserver(() => { if (a.textContent.length > window.longest.length) window.longest = a.textContent; })
      .observe(a, { childList: true, characterData: true, subtree: true });
  });
  await page.type('#question', 'customers per country?');
  await page.click('#ask button[type="submit"]');
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 60000 });
  const state = await page.$eval('body', b => b.dataset.state);
  check('the restarted attempt failed (the error event)', state === 'error', await page.$eval('#status', e => e.textContent));
  const longest = await page.evaluate(() => window.longest);
  check('tokens were streamed before the cut', longest.startsWith('Most'), longest);
  const answer = await page.$eval('#answer', e => e.textContent);
  check('the text streamed before the cut was dropped on the restart', answer === '', answer);
  check('no script error', errors.length === 0, errors);
} catch (e) {
  check('no exception', false, String(e && e.stack || e));
} finally {
  await browser.close();
}
finish();
