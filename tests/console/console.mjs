// Drives the console in Debian's Chromium (see console_test.go).
import { chromium } from 'playwright-core';
import * as readline from 'node:readline';

const url = process.env.CONSOLE_URL, token = process.env.CONSOLE_TOKEN;
const lines = readline.createInterface({ input: process.stdin });
const nextLine = () => new Promise((resolve) => lines.once('line', resolve));
const fail = (msg) => { console.error(msg); process.exit(1); };

const browser = await chromium.launch({
  executablePath: '/usr/bin/chromium',
  args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
try {
  const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  const resp = await page.goto(url);
  if (resp.status() !== 401) fail(`without a token: status ${resp.status()}, want 401`);
  if (await page.locator('#leader').count() !== 0) fail('without a token the page shows state');
  await page.fill('#token', 'not-a-token');
  await page.click('#login');
  await page.locator('#login-error').waitFor();
  console.log('refused without a valid token');

  await page.fill('#token', token);
  await page.click('#login');
  await page.locator('#leader').waitFor();
  const leader = (await page.textContent('#leader')).trim();
  if (!leader.startsWith('console-r1')) fail(`leader: ${leader}`);
  await page.locator('#live.ok').waitFor({ timeout: 30000 });
  const server = (await page.textContent('.connector .server')).trim();
  const epoch = (await page.textContent('.connector .epoch')).trim();
  console.log(`ready leader=${leader} server=${server} epoch=${epoch}`);
  await nextLine(); // the test fails the connector over through the gRPC API
  await page.waitForFunction(([s, e]) => {
    const el = document.querySelector('.connector .server'), ep = document.querySelector('.connector .epoch');
    return el && ep && el.textContent.trim() !== s && ep.textContent.trim() !== e;
  }, [server, epoch], { timeout: 60000 });
  const now = (await page.textContent('.connector .server')).trim();
  await page.locator('tr.change', { hasText: 'console test' }).first().waitFor({ timeout: 30000 });
  console.log(`updated live: ${server} -> ${now}`);
  // The test started a slow query: it shows up live, with its rows moving.
  const row = page.locator('tr.query', { hasText: 'synth.rows_10000000' });
  await row.waitFor({ timeout: 30000 });
  await page.waitForFunction(() => {
    const td = document.querySelector('tr.query td:nth-child(5)');
    return td && Number(td.textContent) > 0;
  }, null, { timeout: 30000 });
  console.log(`running query shown: ${(await row.innerText()).replace(/\s+/g, ' ')}`);
  await page.screenshot({ path: process.env.SCREENSHOT, fullPage: true });
  await row.locator('.cancel-button').click();
  await page.locator('#message', { hasText: 'CANCELED' }).waitFor({ timeout: 30000 });
  await page.locator('tr.query').first().waitFor({ state: 'detached', timeout: 30000 });
  console.log(`cancelled: ${(await page.textContent('#message')).trim()}`);
  console.log('ok');
} finally {
  await browser.close();
  lines.close();
}
