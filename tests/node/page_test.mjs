// page_test.mjs -- drives the page at GET / in headless Chromium (Debian's
// `chromium`, through the pinned puppeteer-core): asks a question, waits for
// the done event (body[data-state=done]), takes a screenshot, and checks that
// (a question in the URL, ?q=, only fills the box: nothing is asked before the
// user presses Ask -- a link from any site must not spend the model);
// the answer, the SQL, the table and the chart's SVG (with marks) are there;
// then edits the SQL and re-runs it through /v1/sql.
// Usage: node page_test.mjs CHROMIUM URL SCREENSHOT
import { check, launch, finish } from './page_lib.mjs';

const [chromium, url, shot] = process.argv.slice(2);
const browser = await launch(chromium);
try {
  const page = await browser.newPage();
  await page.setViewport({ width: 1200, height: 1100 });
  const external = [];
  page.on('request', r => { if (!r.url().startsWith(new URL(url).origin)) external.push(r.url()); });
  const errors = [];
  page.on('pageerror', e => errors.push(String(e)));
  const posts = [];
  page.on('request', r => { if (r.method() === 'POST') posts.push(new URL(r.url()).pathname); });
  await page.goto(url + '?q=' + encodeURIComponent('customers per country?'), { waitUntil: 'networkidle0' });
  await new Promise(r => setTimeout(r, 500));
  check('?q= fills the question box', (await page.$eval('#question', e => e.value)) === 'customers per country?');
  const before = await page.$eval('body', b => b.dataset.state);
  check('and asks nothing on load', posts.length === 0 && before !== 'asking' && before !== 'done', { posts, before });
  await page.click('#ask button[type="submit"]');
  await page.waitForSelector('body[data-state="done"], body[data-state="error"]', { timeout: 60000 });
  const state = await page.$eval('body', b => b.dataset.state);
  check('the page received the done event', state === 'done', await page.$eval('#status', e => e.textContent));
  await page.waitForSelector('#chart svg.marks', { timeout: 30000 }).catch(() => {});
  await page.screenshot({ path: shot, fullPage: true });
  check('the streamed answer is shown', (await page.$eval('#answer', e => e.textContent)).includes('Most customers are in the United States'));
  check('the SQL is shown', (await page.$eval('#sql', e => e.value)).startsWith('SELECT country_code'));
  const table = await page.$$eval('#table tr', rows => rows.map(r => [...r.children].map(c => c.textContent)));
  check('the table is there', table.length === 9 && table[0].join() === 'country_code,n' && table[1].join() === 'US,44', table);
  const svg = await page.$('#chart svg.marks');
  check("the chart's SVG is there", svg !== null);
  const width = svg ? await svg.evaluate(e => Number(e.getAttribute('width'))) : 0;
  check('the chart has a width', width > 100, width);
  const bars = await page.$$eval('#chart svg .mark-rect path', p => p.length);
  check('the chart draws its bars', bars === 8, bars);

  await page.$eval('#sql', e => { e.value = 'SELECT status, count(*) AS n FROM orders GROUP BY 1'; });
  await page.click('#rerun');
  await page.waitForFunction(() => document.querySelector('#table th') && document.querySelector('#table th').textContent === 'status', { timeout: 30000 });
  const arcs = await page.waitForSelector('#chart svg .mark-arc path', { timeout: 30000 }).then(() => true, () => false);
  check('re-running edited SQL shows its table and its (arc) chart', arcs);
  check('nothing was loaded from another origin', external.length === 0, external);
  check('no script error', errors.length === 0, errors);
} catch (e) {
  check('no exception', false, String(e && e.stack || e));
} finally {
  await browser.close();
}
finish();
