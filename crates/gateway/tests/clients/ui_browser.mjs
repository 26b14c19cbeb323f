// The dashboard in a real headless Chromium (Debian's /usr/bin/chromium, driven by
// playwright-core; no browser is downloaded). Run by the Rust test
// crates/gateway/tests/gateway/browser.rs, which starts the node:
//
//   node ui_browser.mjs <base-url> <ops-token> <admin-token> <screenshot-dir>
//
// It prints one JSON line per step ({"step": name, ...}); where the Rust side must
// act between steps it prints the step and waits for a line "go" on stdin.
// Screenshots of every page go to <screenshot-dir>.
import { createInterface } from 'node:readline';
import { mkdirSync } from 'node:fs';

const [base, opsToken, adminToken, shots] = process.argv.slice(2);
const WAIT = 20000;
const PAGES = ['health', 'services', 'bus', 'tail', 'datastore', 'jobs', 'inference', 'config', 'audit'];

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.log(JSON.stringify({ step: 'missing', error: `playwright-core is not installed (npm ci --prefix crates/gateway/tests/clients): ${e.message}` }));
  process.exit(1);
}

const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();
const step = (name, extra) => console.log(JSON.stringify({ step: name, ...(extra || {}) }));
async function go() {
  const { value, done } = await lines.next();
  if (done || value.trim() !== 'go') throw new Error(`expected "go" on stdin, got ${value}`);
}

mkdirSync(shots, { recursive: true });
const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: ['--no-sandbox'] });
const consoleErrors = [];

async function signedIn(token, label) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.on('console', m => { if (m.type() === 'error') consoleErrors.push(`${label}: ${m.text()}`); });
  page.on('pageerror', e => consoleErrors.push(`${label}: ${e.message}`));
  await page.goto(base + '/ui', { waitUntil: 'load' });
  await page.waitForSelector('#sign-in', { timeout: WAIT });
  await page.fill('#token', token);
  await page.click('#sign-in button[type=submit]');
  await page.waitForSelector('#main[data-page=health]', { timeout: WAIT });
  await page.waitForSelector('#live.on', { timeout: WAIT });
  return page;
}

async function visit(page, name) {
  await page.evaluate(n => { location.hash = '#/' + n; }, name);
  await page.waitForSelector(`#main[data-page=${name}]`, { timeout: WAIT });
}

try {
  // 1. Every page loads (as ops), with a screenshot of each.
  const ops = await signedIn(opsToken, 'ops');
  const absent = {};
  for (const name of PAGES) {
    await visit(ops, name);
    absent[name] = await ops.$eval('#main', m => m.querySelector('[data-absent]')?.dataset.absent || null);
    await ops.screenshot({ path: `${shots}/${name}.png`, fullPage: true });
  }
  step('pages', { absent, errors: consoleErrors.length });

  // 2. The inference page: the tokens of the chat the Rust side made, per model,
  // and each deployment's breaker.
  await visit(ops, 'inference');
  await ops.waitForSelector('#inference-usage', { timeout: WAIT });
  const usage = await ops.$$eval('#inference-usage tbody tr', trs => trs.map(tr => ({
    model: tr.dataset.model,
    prompt: Number(tr.querySelector('[data-field=prompt]').textContent.replace(/,/g, '')),
    completion: Number(tr.querySelector('[data-field=completion]').textContent.replace(/,/g, '')),
  })));
  const used = usage.find(u => u.prompt > 0) || {};
  const breakers = await ops.$$eval('[data-deployment-breaker]', b => [...new Set(b.map(x => x.textContent))]);
  step('inference', { model: used.model, prompt: used.prompt, completion: used.completion, breakers, usage });

  // 3. The jobs page as ops: queues by state, and 100,001 dead jobs loaded into a
  // list that stays virtual, searchable, and offers ops no action.
  const opened = Date.now();
  await visit(ops, 'jobs');
  const firstPageMs = Date.now() - opened;
  const queueDead = await ops.$$eval('#job-queues tr[data-queue]', trs => Object.fromEntries(trs.map(tr =>
    [tr.dataset.queue, Number(tr.querySelector('td[data-state=dead]').dataset.value)])));
  const opsActions = await ops.$$eval('button.queue-pause, button.queue-resume, button.queue-requeue, #dead-retry, input.pick', b => b.length);
  await ops.click('#dead-all');
  await ops.waitForFunction(() => document.querySelector('#dead-count')?.dataset.complete === '1', null, { timeout: 180000, polling: 250 });
  const loaded = await ops.$eval('#dead-count', c => Number(c.dataset.loaded));
  const deadDomRows = await ops.$$eval('.vrow', r => r.length);
  const shownFor = async query => {
    await ops.fill('#dead-search', query);
    await ops.waitForFunction(q => document.querySelector('#dead-search')?.value === q, query, { timeout: WAIT });
    return ops.$eval('#dead-count', c => Number(c.dataset.shown));
  };
  const shownMail = await shownFor('mail');
  await ops.waitForFunction(() => document.querySelector('.vrow[data-kind=dead]'), null, { timeout: WAIT });
  const mailError = await ops.$eval('.vrow[data-kind=dead]', r => r.lastElementChild.textContent);
  const shownSeed = await shownFor('seeded failure 99999');
  const shownAll = await shownFor('');
  await ops.$eval('.vlist', v => { v.scrollTop = v.scrollHeight; });
  await ops.waitForFunction(() => [...document.querySelectorAll('.vrow span')].some(s => s.textContent === 'mail'), null, { timeout: WAIT });
  const deadDomRowsScrolled = await ops.$$eval('.vrow', r => r.length);
  await ops.screenshot({ path: `${shots}/jobs-100k.png`, fullPage: true });
  step('jobs-dead', {
    queueDead, opsActions, loaded, domRows: deadDomRows, domRowsScrolled: deadDomRowsScrolled,
    shownMail, mailError, shownSeed, shownAll, firstPageMs,
  });

  // 4. An admin retries the dead mail job through the page, after confirming.
  const admin = await signedIn(adminToken, 'admin');
  await visit(admin, 'jobs');
  await admin.selectOption('#dead-queue', 'mail');
  await admin.waitForFunction(() => {
    const c = document.querySelector('#dead-count');
    return c?.dataset.complete === '1' && c.dataset.loaded === '1';
  }, null, { timeout: WAIT });
  await admin.click('#dead-select');
  await admin.click('#dead-retry');
  await admin.waitForSelector('#modal:not([hidden])', { timeout: WAIT });
  await admin.click('#modal-ok');
  await admin.waitForFunction(() => document.querySelector('#jobs-msg')?.textContent.startsWith('Requeued'), null, { timeout: WAIT });
  const retried = await admin.textContent('#jobs-msg');
  // The job runs again; its completion reaches the open page over the live socket.
  await admin.waitForFunction(() => document.querySelector('#job-queues tr[data-queue="mail"] td[data-state=completed]')?.dataset.value === '1', null, { timeout: WAIT });
  await admin.screenshot({ path: `${shots}/jobs-retried.png`, fullPage: true });
  step('jobs-retry', { message: retried });

  // 4b. And pauses a queue through its button, after confirming.
  await admin.click('button.queue-pause[data-queue="imports"]');
  await admin.waitForSelector('#modal:not([hidden])', { timeout: WAIT });
  await admin.click('#modal-ok');
  await admin.waitForFunction(() => document.querySelector('#job-queues tr[data-queue="imports"] .badge')?.textContent === 'paused', null, { timeout: WAIT });
  step('jobs-pause', { message: await admin.textContent('#jobs-msg') });

  // 5. A call made now appears in the live tail, with its correlation id.
  await visit(ops, 'tail');
  const r = await fetch(base + '/rpc', {
    method: 'POST',
    headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + adminToken },
    body: JSON.stringify({ jsonrpc: '2.0', id: 7, method: 'spec.get_data', params: [] }),
  });
  const answer = await r.json();
  await ops.fill('#tail-search', 'spec.get_data');
  const row = await ops.waitForFunction(() => [...document.querySelectorAll('.vrow[data-kind=call]')]
    .find(r => r.children[2]?.textContent === 'spec.get_data'), null, { timeout: WAIT });
  const cells = await row.evaluate(r => [...r.children].map(x => x.textContent));
  await ops.screenshot({ path: `${shots}/tail-call.png` });
  step('tail', { answer: answer.result, cells });
  await ops.fill('#tail-search', '');

  // 6. The breaker the Rust side opened shows as open.
  await visit(ops, 'services');
  await ops.waitForFunction(() => document.querySelector('[data-breaker="flaky-1"]')?.textContent === 'open', null, { timeout: WAIT });
  await ops.screenshot({ path: `${shots}/services-breaker-open.png`, fullPage: true });
  // The charts: a line per busy service once two samples are apart.
  await ops.waitForFunction(() => document.querySelectorAll('#chart-calls path[data-series]').length > 0, null, { timeout: WAIT });
  const chartLines = await ops.$$eval('#chart-calls path[data-series]', p => p.map(x => x.dataset.series));
  const p99Lines = await ops.$$eval('#chart-p99 path[data-series]', p => p.map(x => x.dataset.series));
  await ops.screenshot({ path: `${shots}/services-charts.png` });
  step('breaker', { state: 'open', chartLines, p99Lines });

  // 7. Ops reads but cannot act: no rollback button, and /rpc refuses it.
  await visit(ops, 'config');
  const buttons = await ops.$$eval('button.rollback', b => b.length);
  const readOnly = await ops.$('#read-only') !== null;
  const refused = await ops.evaluate(async token => {
    const res = await fetch('/rpc', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: 'Bearer ' + token },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'node.config_rollback', params: { version: 1 } }),
    });
    return (await res.json()).error?.code ?? null;
  }, opsToken);
  step('ops-read-only', { buttons, readOnly, refused });

  // 7b. A change made elsewhere reaches the open configuration page over the live
  // socket (the page is not polled).
  const shown = await ops.textContent('#config-current');
  step('config-live', { shown });
  await go();
  await ops.waitForFunction(s => document.querySelector('#config-current')?.textContent !== s, shown, { timeout: WAIT });
  step('config-updated', { shown: await ops.textContent('#config-current') });

  // 8. Admin rolls back through the page, after confirming.
  await visit(admin, 'config');
  const before = await admin.textContent('#config-current');
  await admin.selectOption('#diff-from', '1');
  await admin.click('#compare');
  await admin.waitForSelector('#diff table', { timeout: WAIT });
  const diffPaths = await admin.$$eval('#diff tbody tr td:first-child', t => t.map(x => x.textContent));
  await admin.click('button.rollback[data-version="1"]');
  await admin.waitForSelector('#modal:not([hidden])', { timeout: WAIT });
  await admin.screenshot({ path: `${shots}/config-confirm.png` });
  await admin.click('#modal-ok');
  await admin.waitForFunction(b => document.querySelector('#config-current')?.textContent !== b, before, { timeout: WAIT });
  const after = await admin.textContent('#config-current');
  await admin.screenshot({ path: `${shots}/config-rolled-back.png`, fullPage: true });
  step('rollback', { before, after, diffPaths });

  // 9. 100,000 events in the tail: the list stays virtual and answers.
  await visit(ops, 'tail');
  step('flood-ready');
  await go();
  await ops.waitForFunction(() => Number(document.querySelector('#tail-count')?.dataset.total || 0) >= 100000, null, { timeout: 120000, polling: 250 });
  const total = await ops.$eval('#tail-count', c => Number(c.dataset.total));
  const domRows = await ops.$$eval('.vrow', r => r.length);
  await ops.fill('#tail-search', 'flood.99999');
  await ops.waitForFunction(() => document.querySelector('#tail-count')?.dataset.shown === '1', null, { timeout: WAIT });
  await ops.fill('#tail-search', 'flood.');
  await ops.waitForFunction(() => Number(document.querySelector('#tail-count')?.dataset.shown) >= 100000, null, { timeout: WAIT });
  await ops.$eval('.vlist', v => { v.scrollTop = v.scrollHeight; });
  await ops.waitForFunction(() => [...document.querySelectorAll('.vrow span')].some(s => s.textContent === 'flood.0'), null, { timeout: WAIT });
  const domRowsScrolled = await ops.$$eval('.vrow', r => r.length);
  await ops.screenshot({ path: `${shots}/tail-100k.png` });
  step('flood', { total, domRows, domRowsScrolled });

  step('done', { consoleErrors });
} catch (e) {
  step('failed', { error: String(e.stack || e), consoleErrors });
} finally {
  await browser.close();
  stdin.close();
}
