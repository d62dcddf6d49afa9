// Runs `npm run conformance --json` and fails only when a case weft claims (claimed.json) does not pass; the rest are diagnostics.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { nodeBinary } from '../../src/testing/process.ts';

interface Report {
  total: number;
  passed: number;
  failed: number;
  cases: { name: string; profile: string; passed: boolean; reason: string }[];
}

const RUN_TIMEOUT_MS = 240_000;
const KILL_GRACE_MS = 15_000;

function runConformance(): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const script = fileURLToPath(new URL('./run.ts', import.meta.url));
  const child = spawn(nodeBinary(), [script, '--json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-20_000)));
  return new Promise((resolve) => {
    // SIGTERM first: the runner then stops every process it started; SIGKILL only if it hangs.
    let killTimer: NodeJS.Timeout | undefined;
    const timer = setTimeout(() => {
      stderr += `\n(conformance run still going after ${RUN_TIMEOUT_MS} ms: stopped)`;
      child.kill('SIGTERM');
      killTimer = setTimeout(() => child.kill('SIGKILL'), KILL_GRACE_MS);
    }, RUN_TIMEOUT_MS);
    child.once('close', (code) => {
      clearTimeout(timer);
      clearTimeout(killTimer);
      resolve({ code, stdout, stderr });
    });
  });
}

test('Gateway API conformance: every claimed case passes', { timeout: RUN_TIMEOUT_MS + KILL_GRACE_MS + 10_000 }, async (t) => {
  const claimed = (JSON.parse(readFileSync(new URL('./claimed.json', import.meta.url), 'utf8')) as { cases: string[] }).cases;
  const run = await runConformance();
  let report: Report;
  try {
    report = JSON.parse(run.stdout) as Report;
  } catch {
    assert.fail(`the conformance runner printed no JSON report (exit ${run.code}):\n${run.stdout.slice(0, 2000)}\n${run.stderr}`);
  }
  assert.equal(report.total, report.cases.length, 'the report counts every case it lists');

  const byName = new Map(report.cases.map((c) => [c.name, c] as const));
  t.diagnostic(`conformance: ${report.passed} of ${report.total} cases pass (${claimed.length} claimed)`);
  for (const c of report.cases) {
    if (!c.passed && !claimed.includes(c.name)) t.diagnostic(`not claimed yet: FAIL ${c.name} [${c.profile}] — ${c.reason}`);
  }
  const unclaimedPasses = report.cases.filter((c) => c.passed && !claimed.includes(c.name)).map((c) => c.name);
  if (unclaimedPasses.length) t.diagnostic(`passing but not claimed (add them to claimed.json): ${unclaimedPasses.join(', ')}`);

  const broken = claimed
    .map((name) => byName.get(name) ?? { name, profile: '?', passed: false, reason: 'not in the report (renamed or missing from cases.json?)' })
    .filter((c) => !c.passed)
    .map((c) => `${c.name} [${c.profile}] — ${c.reason}`);
  assert.deepEqual(broken, [], `claimed conformance cases fail:\n${broken.join('\n')}`);
});
