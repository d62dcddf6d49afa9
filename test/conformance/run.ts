// `npm run conformance`: runs the Gateway API conformance cases against real weft processes and prints one line per case.
//
//   node test/conformance/run.ts [--profile MESH-HTTP]... [--case NAME]... [--bail] [--json] [--full-wait] [--verbose] [--dir DIR]
//
// Exit code 0 when every selected case passed, 1 when any failed, 2 on bad usage.
//
// Checks are judged as upstream's conformance/utils/http does (see the README
// beside cases.json): 3 passes in a row within 30 s, 100 ms between failed
// attempts. gRPC checks (grpc.ts) are unary GrpcEcho calls over h2c, judged as
// upstream's utils/grpc: the status code, then the echoed method, namespace and pod. One difference, for speed: the harness waits until every sidecar
// has acknowledged the case's config before it sends anything, so a check that
// has failed 20 times in a row while that config has not moved is reported
// failed without waiting out the 30 s (it could only pass later if the config
// changed). --full-wait restores upstream's full wait. --verbose logs progress
// on stderr; --json prints only the JSON report on stdout.
import { parseArgs } from 'node:util';
import { GatewayProxies, gatewayFixtures } from './gateways.ts';
import { Infrastructure } from './infra.ts';
import { loadSuite, conformanceDir, needsGateway, PROFILES, type Case, type Profile } from './model.ts';
import { CaseRunner, unsupportedReason, type CaseResult, type RunnerOptions } from './runner.ts';

interface Flags {
  profiles: Profile[];
  cases: string[];
  bail: boolean;
  json: boolean;
  fullWait: boolean;
  verbose: boolean;
  dir?: string;
}

function usage(problem: string): never {
  process.stderr.write(
    `${problem}\nusage: node test/conformance/run.ts [--profile ${PROFILES.join('|')}]... [--case NAME]... [--bail] [--json] [--full-wait] [--verbose] [--dir DIR]\n`,
  );
  process.exit(2);
}

function parseFlags(argv: string[]): Flags {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      options: {
        profile: { type: 'string', multiple: true },
        case: { type: 'string', multiple: true },
        bail: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        'full-wait': { type: 'boolean', default: false },
        verbose: { type: 'boolean', default: false },
        dir: { type: 'string' },
      },
      allowPositionals: false,
    });
  } catch (error) {
    usage(error instanceof Error ? error.message : String(error));
  }
  const split = (values: string[] | undefined) => (values ?? []).flatMap((v) => v.split(',')).map((v) => v.trim()).filter(Boolean);
  const profiles = split(parsed.values.profile).map((p) => p.toUpperCase());
  for (const p of profiles) if (!PROFILES.includes(p as Profile)) usage(`unknown profile ${p}`);
  const flags: Flags = {
    profiles: profiles as Profile[],
    cases: split(parsed.values.case),
    bail: parsed.values.bail === true,
    json: parsed.values.json === true,
    fullWait: parsed.values['full-wait'] === true,
    verbose: parsed.values.verbose === true,
  };
  if (parsed.values.dir) flags.dir = parsed.values.dir;
  return flags;
}

function select(cases: Case[], flags: Flags): Case[] {
  const unknown = flags.cases.filter((name) => !cases.some((c) => c.name === name));
  if (unknown.length) usage(`no such case: ${unknown.join(', ')}`);
  return cases.filter((c) => (flags.profiles.length === 0 || flags.profiles.includes(c.profile)) && (flags.cases.length === 0 || flags.cases.includes(c.name)));
}

function line(result: CaseResult): string {
  return `${result.passed ? 'PASS' : 'FAIL'} ${result.name} [${result.profile}] — ${result.reason}`;
}

async function main(): Promise<number> {
  const flags = parseFlags(process.argv.slice(2));
  const suite = loadSuite(conformanceDir(flags.dir));
  const selected = select(suite.cases, flags);
  const log = flags.verbose ? (text: string) => process.stderr.write(`${text}\n`) : () => {};
  const options: RunnerOptions = { fullWait: flags.fullWait, log };
  // Gateway cases: the GatewayClass, certificates and base Gateways upstream sets up, and a gateway proxy per Gateway.
  const fixtures = selected.some(needsGateway) ? await gatewayFixtures(suite.infra) : undefined;
  const gateways = fixtures ? new GatewayProxies(fixtures, log) : undefined;
  if (gateways) options.gateway = gateways;

  const runnable = selected.filter((c) => unsupportedReason(c, options.gateway) === undefined);
  const mesh = runnable.some((c) => c.checks.some((check) => check.target.type === 'mesh'));
  const gatewayBackends = runnable.some(needsGateway);

  let infra: Infrastructure | undefined;
  let stopping = false;
  const stop = async (signal: NodeJS.Signals) => {
    if (stopping) process.exit(1);
    stopping = true;
    process.stderr.write(`conformance: ${signal}, stopping the processes it started\n`);
    await gateways?.close().catch(() => {});
    await infra?.close().catch(() => {});
    process.exit(signal === 'SIGINT' ? 130 : 143);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => void stop(signal));

  const results: CaseResult[] = [];
  const report = (result: CaseResult) => {
    // A case cut short by the signal would only report the processes going away.
    if (stopping) return;
    results.push(result);
    if (!flags.json) process.stdout.write(`${line(result)}\n`);
    log(`${line(result)} (${(result.durationMs / 1000).toFixed(1)} s)`);
  };

  let infraError: string | undefined;
  if (runnable.length > 0) {
    const started = performance.now();
    try {
      infra = await Infrastructure.start(suite, { mesh, gatewayBackends, log, ...(fixtures ? { baseObjects: fixtures.objects } : {}) });
      if (gateways && fixtures) await gateways.attach(infra, fixtures.objects.filter((o) => o.kind === 'Gateway'));
      log(`infrastructure up in ${((performance.now() - started) / 1000).toFixed(1)} s: ${infra.pods.length} pods`);
      for (const note of infra.unsupported) log(`  not played: ${note}`);
    } catch (error) {
      infraError = error instanceof Error ? error.message.split('\n')[0] : String(error);
    }
  }

  try {
    const runner = new CaseRunner(infra, options);
    for (const c of selected) {
      let result: CaseResult;
      if (infraError !== undefined && unsupportedReason(c, options.gateway) === undefined) {
        result = { name: c.name, profile: c.profile, passed: false, reason: `the infrastructure did not start: ${infraError}`, durationMs: 0 };
      } else {
        log(`${c.name} [${c.profile}]`);
        result = await runner.run(c);
      }
      if (stopping) break;
      report(result);
      if (flags.bail && !result.passed) break;
    }
  } finally {
    await gateways?.close();
    await infra?.close();
  }

  const passed = results.filter((r) => r.passed).length;
  const failed = results.length - passed;
  if (flags.json) {
    const cases = results.map(({ name, profile, passed: ok, reason }) => ({ name, profile, passed: ok, reason }));
    process.stdout.write(`${JSON.stringify({ total: results.length, passed, failed, cases }, null, 2)}\n`);
  } else {
    process.stdout.write(`${passed} passed, ${failed} failed\n`);
  }
  return failed > 0 ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`conformance: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 2;
  },
);
