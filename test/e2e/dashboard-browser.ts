// Helpers for the dashboard's browser tests: a current build of the dashboard, headless Debian chromium, and where screenshots go.
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { nodeBinary } from '../../src/testing/process.ts';

const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const dashboardDist = join(repoRoot, 'dist', 'dashboard');
export const CHROMIUM = process.env.WEFT_CHROMIUM ?? '/usr/bin/chromium';

/** Screenshots land here (git-ignored): $WEFT_TEST_ARTIFACTS/dashboard, else test-artifacts/dashboard in the checkout. */
export function artifactsDir(): string {
  const dir = join(process.env.WEFT_TEST_ARTIFACTS ?? join(repoRoot, 'test-artifacts'), 'dashboard');
  mkdirSync(dir, { recursive: true });
  return dir;
}

function newestMtime(path: string): number {
  const info = statSync(path);
  if (!info.isDirectory()) return info.mtimeMs;
  let newest = 0;
  for (const entry of readdirSync(path)) newest = Math.max(newest, newestMtime(join(path, entry)));
  return newest;
}

/**
 * Builds the dashboard when dist/ is missing or older than its sources, so
 * that the test never judges a stale build (`npm ci` builds it through
 * `prepare`; an edit since then would otherwise go untested).
 */
export async function ensureDashboardBuilt(timeoutMs = 90_000): Promise<'fresh' | 'built'> {
  const index = join(dashboardDist, 'index.html');
  const sources = Math.max(newestMtime(join(repoRoot, 'src', 'dashboard')), newestMtime(join(repoRoot, 'vite.config.ts')));
  if (existsSync(index) && statSync(index).mtimeMs >= sources) return 'fresh';
  const vite = join(repoRoot, 'node_modules', 'vite', 'bin', 'vite.js');
  await new Promise<void>((resolve, reject) => {
    const child = spawn(nodeBinary(), [vite, 'build', '--logLevel', 'warn'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve();
      else reject(new Error(`vite build failed (${code ?? signal}):\n${output}`));
    });
  });
  return 'built';
}

export interface Browser {
  context: BrowserContext;
  page: Page;
  /** Console errors, page errors and failed requests, in order: the test expects none. */
  problems: string[];
  close(): Promise<void>;
}

/** Headless chromium on a fresh profile, as DESIGN.md says, with every console error and page error recorded. */
/** `extraArgs`: more Chromium flags (e.g. --host-resolver-rules to reach a test gateway by a host name). */
export async function launchBrowser(viewport = { width: 1440, height: 900 }, extraArgs: string[] = []): Promise<Browser> {
  if (!existsSync(CHROMIUM)) throw new Error(`no chromium at ${CHROMIUM}: install Debian's chromium (.ci/run does) or set WEFT_CHROMIUM`);
  const profile = mkdtempSync(join(tmpdir(), 'weft-chromium-'));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    viewport,
    timeout: 30_000,
    args: ['--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--no-first-run', '--disable-quic', ...extraArgs],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  // A missing element fails in seconds, not in Playwright's default 30.
  page.setDefaultTimeout(10_000);
  const problems: string[] = [];
  page.on('console', (message) => {
    if (message.type() === 'error') problems.push(`console error: ${message.text()} (${message.location().url})`);
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('requestfailed', (request) => {
    // Leaving a page aborts its event stream: that is the browser's doing, not a failure.
    const aborted = request.failure()?.errorText === 'net::ERR_ABORTED';
    if (!aborted) problems.push(`request failed: ${request.method()} ${request.url()}: ${request.failure()?.errorText}`);
  });
  page.on('response', (response) => {
    if (response.status() >= 400) problems.push(`HTTP ${response.status()} for ${response.request().method()} ${response.url()}`);
  });
  return {
    context,
    page,
    problems,
    close: async () => {
      await context.close().catch(() => {});
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
