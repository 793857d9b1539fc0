// SPDX-License-Identifier: BSL-1.0
// The console as a person sees it: examples/console runs, Debian's Chromium (headless, driven
// by playwright-core) opens the page, and the test checks that every service of the example is
// listed, that the figures change as calls are made, that the flaky service's crash shows as a
// restart with its message, that the detail view opens, and that the page fetched nothing from
// anywhere else. It saves a screenshot.
//
//   node browser_test.js <path to examples/console> <screenshot.png>
'use strict';
const { spawn } = require('child_process');
const { chromium } = require('playwright-core');

const [consoleBin, screenshot] = process.argv.slice(2);
if (!consoleBin || !screenshot) {
  console.error('usage: node browser_test.js <console binary> <screenshot.png>');
  process.exit(2);
}
const browserPath = process.env.CHROMIUM || '/usr/bin/chromium';
const services = ['kv', 'resize', 'counters[0]', 'counters[1]', 'counters[2]', 'flaky'];

function fail(msg) {
  throw new Error(msg);
}

async function main() {
  const proc = spawn(consoleBin, ['--port', '0', '--seconds', '120'],
                     { stdio: ['ignore', 'pipe', 'inherit'] });
  let browser;
  try {
    const url = await new Promise((resolve, reject) => {
      let out = '';
      proc.stdout.on('data', (d) => {
        out += d;
        const m = out.match(/console: (http:\/\/\S+)/);
        if (m) resolve(m[1]);
      });
      proc.on('exit', (code) => reject(new Error('the console example exited with ' + code)));
    });
    browser = await chromium.launch({
      executablePath: browserPath,
      args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
             '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    });
    const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
    const elsewhere = [];
    page.on('request', (r) => { if (!r.url().startsWith(url)) elsewhere.push(r.url()); });
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    await page.goto(url);

    // Every service of the example is listed.
    for (const s of services)
      await page.waitForSelector(`tr[data-service="${s}"]`, { timeout: 15000 });
    const listed = await page.$$eval('tr[data-service]', (rows) => rows.map((r) => r.dataset.service));
    for (const s of services)
      if (!listed.includes(s)) fail(`${s} is not listed (listed: ${listed.join(', ')})`);

    // The figures change as calls are made: kv's call count grows on the page by itself.
    const calls = async () => Number(await page.textContent('tr[data-service="kv"] td[data-field="calls"]'));
    const before = await calls();
    await page.waitForFunction(
        (n) => Number(document.querySelector('tr[data-service="kv"] td[data-field="calls"]').textContent) > n,
        before, { timeout: 15000 });
    const after = await calls();
    if (!(after > before)) fail(`kv's calls did not grow: ${before} then ${after}`);

    // The flaky service's crash shows as a restart, with what it threw.
    await page.waitForFunction(
        () => Number(document.querySelector('tr[data-service="flaky"] td[data-field="restarts"]').textContent) > 0,
        null, { timeout: 15000 });
    const message = await page.textContent('tr[data-service="flaky"] td[data-field="last_failure"]');
    if (!message.includes('flaky: lost its connection at request'))
      fail(`flaky's last failure reads "${message}"`);

    // The detail view of a service opens on a click and has its charts.
    await page.click('tr[data-service="kv"]');
    await page.waitForSelector('#detail.open[data-detail="kv"]', { timeout: 5000 });
    const charts = await page.$$eval('#detail svg.spark', (s) => s.length);
    if (charts < 4) fail(`kv's detail view has ${charts} charts`);
    const answered = Number(await page.textContent('#detail td[data-field="outcome-answered"]'));
    if (!(answered > 0)) fail(`kv's detail view shows ${answered} answered calls`);

    if (elsewhere.length) fail('the page fetched from elsewhere: ' + elsewhere.join(', '));
    if (errors.length) fail('the page threw: ' + errors.join('; '));
    // A moment of live updates for the picture: the charts have a few points by then.
    await page.waitForFunction(
        () => document.querySelectorAll('tr[data-service="kv"] polyline')[0].getAttribute('points').split(' ').length >= 4,
        null, { timeout: 15000 });
    await page.screenshot({ path: screenshot, fullPage: true });
    console.log(`browser_test: OK (${services.length} services listed, kv calls ${before} -> ${after}, ` +
                `flaky restarted: "${message}", screenshot ${screenshot})`);
  } finally {
    if (browser) await browser.close();
    proc.kill('SIGTERM');
  }
}

main().catch((e) => {
  console.error('browser_test: FAILED: ' + e.message);
  process.exit(1);
});
