// The dashboard in headless Chromium against a control plane whose API asks for a token: the sign-in form, a refused token, then the live pages.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startWeft, type RunningProcess } from '../../src/testing/process.ts';
import { ensureDashboardBuilt, launchBrowser, type Browser } from './dashboard-browser.ts';

const TOKEN = 'dashboard-operator-0123456789';

let dir: string;
let controlPlane: RunningProcess;
let browser: Browser | undefined;

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'weft-dashboard-signin-'));
  const file = join(dir, 'api-tokens');
  writeFileSync(file, `${TOKEN}\n`, { mode: 0o600 });
  const [, started] = await Promise.all([
    ensureDashboardBuilt(),
    startWeft(['control-plane', '--api-port', '0', '--stream-port', '0', '--api-token-file', file], { env: { WEFT_LOG_LEVEL: 'warn' } }),
  ]);
  controlPlane = started;
  browser = await launchBrowser({ width: 1366, height: 768 });
});

after(async () => {
  await browser?.close();
  await controlPlane?.stop({ timeoutMs: 5000 });
  rmSync(dir, { recursive: true, force: true });
});

test('signed out, the dashboard asks for the API token; a wrong one is refused in words; the right one opens the live pages; signing out asks again', async () => {
  const page = browser!.page;
  const base = `${String(controlPlane.ready.api)}/`;
  await page.goto(`${base}#/proxies`);
  const form = page.getByRole('form', { name: 'Sign in' });
  await form.waitFor();
  assert.equal(await page.locator('.connection').textContent(), 'Signed out');
  assert.equal(await page.getByRole('heading', { name: 'Workloads and proxies' }).count(), 0, 'the route\'s page is not shown, only the form');

  await page.getByLabel('API token').fill('someone-guessing-a-token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: 'not one this control plane accepts' }).waitFor();

  await page.getByLabel('API token').fill(TOKEN);
  await page.getByRole('button', { name: 'Sign in' }).click();
  // The page loads again with the cookie: the event stream opens and the route's page is shown.
  await page.locator('.connection.live').waitFor();
  await page.getByRole('heading', { name: 'Workloads and proxies' }).waitFor();
  assert.equal(await form.count(), 0);
  const cookies = await browser!.context.cookies(base);
  const session = cookies.find((c) => c.name === 'weft-api-token');
  assert.ok(session, 'the session cookie is set');
  assert.equal(session.httpOnly, true, 'scripts cannot read the token');
  assert.equal(session.sameSite, 'Strict', 'other sites cannot send it');

  // Signing out clears the cookie: the page loads again, refused, and asks for the token.
  await page.getByRole('button', { name: 'Sign out' }).click();
  await page.getByRole('form', { name: 'Sign in' }).waitFor();
  assert.equal((await browser!.context.cookies(base)).some((c) => c.name === 'weft-api-token'), false, 'the session cookie is gone');

  // The only failures seen were the refusals before signing in: 401s, and the browser's console lines about them.
  const unexpected = browser!.problems.filter((p) => !/^HTTP 401 /.test(p) && !/status of 401/.test(p));
  assert.deepEqual(unexpected, []);
  assert.ok(browser!.problems.some((p) => /^HTTP 401 for GET .*\/weft\/v1\/events/.test(p)), 'the event stream was refused before signing in');
});
