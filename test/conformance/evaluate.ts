// How one check is judged, reproducing upstream's conformance/utils/http (MakeRequest, CompareRoundTrip, AwaitConvergence).
import { randomUUID } from 'node:crypto';
import { send, type Captured, type Destination, type EchoBody } from './client.ts';
import type { Check, CheckExpect, ExpectedRedirect } from './model.ts';
import { splitName } from './model.ts';

/** One attempt's request, with "{uuid}" and "{podIP:...}" already substituted. */
export interface PreparedRequest {
  scheme: 'http' | 'https';
  method: string;
  /** What the client dials: "host[:port]". */
  authority: string;
  /** Request-URI: path and query. */
  path: string;
  /** Every header sent, Host included. */
  headers: Record<string, string>;
  followRedirects: boolean;
  /** As the check asks ("H2": HTTP/2 over TLS); absent: HTTP/1.1. */
  protocol?: string;
}

export interface Prepared {
  request: PreparedRequest;
  expect: CheckExpect;
  /** The UUID put in place of "{uuid}" (same in request and expectation). */
  uuid: string;
}

export type Mode = 'mesh' | 'gateway';

export interface PrepareContext {
  mode: Mode;
  /** "ns/app" → the address of one pod of that app. */
  podIP(app: string): string;
  /** The gateway address for a Host-less request: "ip" for ports 80/443, else "ip:port". */
  gatewayHost?: string;
  scheme?: 'http' | 'https';
}

function substitute<T>(value: T, replacements: (text: string) => string): T {
  return JSON.parse(JSON.stringify(value), (_key, v: unknown) => (typeof v === 'string' ? replacements(v) : v)) as T;
}

/** Builds one attempt: a fresh UUID, the pod IPs, the default host, X-Echo-Set-Header and Host. */
export function prepare(check: Check, context: PrepareContext, uuid: string = randomUUID()): Prepared {
  const replace = (text: string) =>
    text.replaceAll('{uuid}', uuid).replace(/\{podIP:([^}]+)\}/g, (_m, app: string) => context.podIP(app));
  const request = substitute(check.request, replace);
  const expect = substitute(check.expect, replace);
  // Mesh: the client dials request.host (default the Service "echo"); gateway: the gateway address.
  const authority = request.host ?? (context.mode === 'mesh' ? 'echo' : (context.gatewayHost ?? ''));
  const headers: Record<string, string> = {};
  let hostHeader = authority;
  for (const [name, value] of Object.entries(request.headers ?? {})) {
    if (name.toLowerCase() === 'host') hostHeader = value;
    else headers[name] = value;
  }
  // Upstream's MakeRequest always sends it, empty unless the test asks the echo to set response headers.
  headers['X-Echo-Set-Header'] = Object.entries(request.echoSetResponseHeaders ?? {})
    .map(([name, value]) => `${name}:${value}`)
    .join(',');
  headers.Host = hostHeader;
  return {
    uuid,
    expect,
    request: {
      scheme: context.scheme ?? 'http',
      method: request.method || 'GET',
      authority,
      path: request.path || '/',
      headers,
      followRedirects: request.followRedirects !== false,
      ...(request.protocol !== undefined ? { protocol: request.protocol } : {}),
    },
  };
}

const MAX_REDIRECTS = 10;

interface LocationParts {
  scheme: string;
  host: string;
  port: string;
  path: string;
}

/** Splits a Location the way Go's url.Parse + Hostname()/Port() do (no default-port normalisation). */
export function parseLocation(location: string): LocationParts {
  const absolute = /^([a-zA-Z][a-zA-Z0-9+.-]*):\/\/([^/?#]*)([^?#]*)/.exec(location);
  if (!absolute) return { scheme: '', host: '', port: '', path: location.split(/[?#]/)[0] ?? '' };
  const scheme = absolute[1]!.toLowerCase();
  let authority = absolute[2]!;
  const at = authority.lastIndexOf('@');
  if (at !== -1) authority = authority.slice(at + 1);
  let host = authority;
  let port = '';
  if (authority.startsWith('[')) {
    const close = authority.indexOf(']');
    host = authority.slice(1, close === -1 ? undefined : close);
    const rest = close === -1 ? '' : authority.slice(close + 1);
    if (rest.startsWith(':')) port = rest.slice(1);
  } else {
    const colon = authority.lastIndexOf(':');
    if (colon !== -1) {
      host = authority.slice(0, colon);
      port = authority.slice(colon + 1);
    }
  }
  return { scheme, host, port, path: absolute[3]! };
}

/** Sends the request and follows redirects unless told not to; the mesh follows them through the same sidecar. */
export async function roundTrip(destination: Destination, request: PreparedRequest): Promise<Captured> {
  let current = request;
  for (let hop = 0; ; hop++) {
    const target = destination.kind === 'proxy' ? `${current.scheme}://${current.authority}${current.path}` : current.path;
    const captured = await send(destination, { method: current.method, target, headers: current.headers, ...(current.protocol !== undefined ? { protocol: current.protocol } : {}) });
    const location = captured.headers.get('location')?.[0];
    if (!current.followRedirects || captured.status < 300 || captured.status > 308 || !location || hop >= MAX_REDIRECTS) return captured;
    const next = new URL(location, `${current.scheme}://${current.authority}${current.path}`);
    // A forward proxy carries only plain http; an https redirect is where following stops.
    if (next.protocol !== 'http:' && destination.kind === 'proxy') return captured;
    current = {
      ...current,
      scheme: next.protocol === 'https:' ? 'https' : 'http',
      authority: next.host,
      path: `${next.pathname}${next.search}`,
      headers: { ...current.headers, Host: next.host },
    };
  }
}

function expectedStatuses(expect: CheckExpect): number[] {
  if (expect.status === undefined) return [200];
  return Array.isArray(expect.status) ? expect.status : [expect.status];
}

const isTimeoutCode = (code: number) => code === 408 || code === 504;

/** A short description of who answered, for failure messages. */
export function describeAnswer(captured: Captured): string {
  const reason = captured.headers.get('weft-reason')?.[0];
  if (captured.echo) return `from pod ${captured.echo.pod || '?'} (namespace ${captured.echo.namespace || '?'}, path ${captured.echo.path})`;
  const body = captured.body.replace(/\s+/g, ' ').trim().slice(0, 160);
  if (reason) return `from the proxy, weft-reason ${reason}${body ? `: ${body}` : ''}`;
  const location = captured.headers.get('location')?.[0];
  if (location) return `Location ${location}`;
  return body ? `body "${body}"` : 'empty body';
}

function joined(values: string[] | undefined): string | undefined {
  return values === undefined ? undefined : values.join(',');
}

function stripWhitespace(text: string): string {
  return text.replace(/\s+/g, '');
}

/** "ns/name" → name, "ns/*" and null → "" (any pod). */
function backendName(backend: string | null | undefined): string {
  if (!backend) return '';
  const [, name] = splitName(backend);
  return name === '*' ? '' : name;
}

function backendNamespace(backend: string | null | undefined): string {
  return backend ? splitName(backend)[0] : '';
}

/**
 * CompareRoundTrip: undefined when the answer is what the check expects, else
 * why not. Only the status is checked for codes that are neither 200/204 nor
 * a redirect; 408 and 504 count as the same "timeout" code.
 */
export function compareRoundTrip(mode: Mode, request: PreparedRequest, expect: CheckExpect, captured: Captured): string | undefined {
  const wanted = expectedStatuses(expect);
  const status = captured.status;
  const statusOk = wanted.includes(status) || (isTimeoutCode(status) && wanted.some(isTimeoutCode));
  if (!statusOk) return `expected status ${wanted.join(' or ')}, got ${status} ${describeAnswer(captured)}`;

  if (status === 200 || status === 204) {
    // Not echo JSON: every field empty, the method assumed right (upstream's roundtripper).
    const echo: EchoBody = captured.echo ?? { path: '', host: '', method: request.method, headers: new Map(), namespace: '', pod: '' };
    const wantedRequest = expect.backendRequest;
    if (wantedRequest?.host !== undefined && wantedRequest.host !== '' && wantedRequest.host !== echo.host) {
      return `expected the backend to see Host "${wantedRequest.host}", it saw "${echo.host}"`;
    }
    // Upstream defaults the expected request to the one sent; in mesh mode it checks no path, so only a declared one counts.
    const wantedPath = expect.answeredByGateway ? (wantedRequest?.path ?? '') : (wantedRequest?.path ?? (mode === 'gateway' ? request.path : undefined));
    if (wantedPath !== undefined && wantedPath !== echo.path) {
      return `expected the backend to see path "${wantedPath}", it saw "${echo.path}" ${describeAnswer(captured)}`;
    }
    const wantedMethod = wantedRequest?.method ?? request.method;
    if (wantedMethod !== echo.method) return `expected the backend to see method ${wantedMethod}, it saw ${echo.method}`;
    const wantedNamespace = expect.answeredByGateway ? '' : backendNamespace(expect.backend);
    if (wantedNamespace !== echo.namespace) {
      return wantedNamespace === ''
        ? `expected an answer not from a backend, got one ${describeAnswer(captured)}`
        : `expected an answer from namespace ${wantedNamespace}, got ${describeAnswer(captured)}`;
    }
    for (const [name, value] of Object.entries(wantedRequest?.headers ?? {})) {
      const actual = joined(echo.headers.get(name.toLowerCase()));
      if (actual === undefined) return `expected request header ${name}: "${value}" at the backend, it was missing`;
      if (actual !== value) return `expected request header ${name}: "${value}" at the backend, it saw "${actual}"`;
    }
    const normalize = expect.ignoreWhitespaceInHeaderValues ? stripWhitespace : (text: string) => text;
    for (const [name, value] of Object.entries(expect.responseHeaders ?? {})) {
      const actual = joined(captured.headers.get(name.toLowerCase()));
      if (actual === undefined) return `expected response header ${name}: "${value}", it was missing`;
      if (normalize(actual) !== normalize(value)) return `expected response header ${name}: "${value}", got "${actual}"`;
    }
    for (const [name, values] of Object.entries(expect.responseHeadersOneOf ?? {})) {
      const actual = joined(captured.headers.get(name.toLowerCase()));
      if (actual === undefined) return `expected response header ${name} (one of ${values.map((v) => `"${v}"`).join(', ')}), it was missing`;
      if (!values.some((v) => normalize(v) === normalize(actual))) return `expected response header ${name} to be one of ${values.map((v) => `"${v}"`).join(', ')}, got "${actual}"`;
    }
    for (const name of expect.absentResponseHeaders ?? []) {
      const actual = joined(captured.headers.get(name.toLowerCase()));
      if (actual !== undefined) return `expected no response header ${name}, got "${actual}"`;
    }
    for (const name of wantedRequest?.absentHeaders ?? []) {
      const actual = joined(echo.headers.get(name.toLowerCase()));
      if (actual !== undefined) return `expected the backend not to see request header ${name}, it saw "${actual}"`;
    }
    const prefix = backendName(expect.backend);
    if (!echo.pod.startsWith(prefix)) return `expected a pod of ${prefix} to answer, got ${describeAnswer(captured)}`;
    if (expect.podPrefixFromBackendRequestHeader) {
      const header = expect.podPrefixFromBackendRequestHeader;
      const values = echo.headers.get(header.toLowerCase()) ?? [];
      if (values.length !== 1) return `expected exactly one ${header} request header at the backend, it saw ${values.length} (${values.join(', ')})`;
      if (!echo.pod.startsWith(values[0]!)) return `pod ${echo.pod} answered, but the ${header} header says ${values[0]}`;
    }
    return undefined;
  }

  if (status >= 300 && status <= 308 && expect.redirect) return compareRedirect(request, expect.redirect, captured);
  return undefined;
}

function compareRedirect(request: PreparedRequest, wanted: ExpectedRedirect, captured: Captured): string | undefined {
  const location = captured.headers.get('location')?.[0];
  if (location === undefined) return `expected a redirect, got status ${captured.status} without a Location`;
  const actual = parseLocation(location);
  const scheme = wanted.scheme ?? request.scheme;
  if (wanted.host !== undefined && wanted.host !== null && wanted.host !== actual.host) return `expected a redirect to host ${wanted.host}, got Location ${location}`;
  if (wanted.port !== undefined && wanted.port !== null) {
    if (wanted.port !== actual.port) return `expected a redirect to port ${wanted.port}, got Location ${location}`;
  } else {
    const allowed = scheme === 'https' ? ['', '443'] : ['', '80'];
    if (!allowed.includes(actual.port)) return `expected a redirect with no port (or the ${scheme} default), got Location ${location}`;
  }
  if (scheme !== actual.scheme) return `expected a redirect to scheme ${scheme}, got Location ${location}`;
  const path = wanted.path ?? request.path.split('?')[0]!;
  if (path !== actual.path) return `expected a redirect to path ${path}, got Location ${location}`;
  return undefined;
}

export interface ConvergenceOptions {
  /** Successes in a row that make a pass (upstream: 3). */
  threshold: number;
  /** MaxTimeToConsistency (upstream: 30 s). */
  maxMs: number;
  /** Pause after a failed attempt (successes are retried at once, as upstream does). */
  pollMs: number;
  /**
   * Give up before maxMs after this many failures in a row, when `settled()`
   * says the config has not moved since the check began: waiting longer only
   * covers propagation, which the harness has already waited for.
   */
  earlyFailAfter?: number;
  settled?: () => Promise<boolean>;
}

export type Verdict = { ok: true; attempts: number } | { ok: false; reason: string; attempts: number };

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** AwaitConvergence: `threshold` passing attempts in a row within maxMs; a failure resets the count. */
export async function awaitConvergence(attempt: () => Promise<string | undefined>, options: ConvergenceOptions): Promise<Verdict> {
  const started = performance.now();
  let successes = 0;
  let failures = 0;
  let attempts = 0;
  let lastReason = 'no attempt finished';
  for (;;) {
    if (performance.now() - started > options.maxMs) {
      return { ok: false, attempts, reason: `${lastReason} (not ${options.threshold} passes in a row within ${options.maxMs / 1000} s, ${attempts} attempts)` };
    }
    let reason: string | undefined;
    try {
      reason = await attempt();
    } catch (error) {
      reason = `request failed: ${error instanceof Error ? error.message : String(error)}`;
    }
    attempts++;
    if (reason === undefined) {
      failures = 0;
      if (++successes >= options.threshold) return { ok: true, attempts };
      continue;
    }
    successes = 0;
    failures++;
    lastReason = reason;
    const early = options.earlyFailAfter;
    if (early !== undefined && options.settled && failures >= early && (failures - early) % 10 === 0 && (await options.settled())) {
      return { ok: false, attempts, reason: `${reason} (${failures} attempts in a row, with the config settled)` };
    }
    await sleep(options.pollMs);
  }
}

/** The Deployment of a pod name: `<deployment>-<hash>-<hash>` loses its last two parts (upstream's weight tests). */
export function deploymentOfPod(pod: string): string {
  const parts = pod.split('-');
  return parts.length > 2 ? parts.slice(0, -2).join('-') : pod;
}

/**
 * Upstream's weighted distribution test: every request must reach a backend,
 * no backend outside the weights and none with weight 0 may answer, each
 * backend's share must be within `tolerance` of its weight.
 */
export function judgeDistribution(counts: Map<string, number>, weights: Record<string, number>, total: number, tolerance: number): string | undefined {
  const problems: string[] = [];
  for (const [backend, weight] of Object.entries(weights)) {
    if (weight !== 0 && !counts.has(backend)) problems.push(`${backend} got nothing (weight ${weight})`);
  }
  for (const [backend, count] of counts) {
    const weight = weights[backend];
    if (weight === undefined) problems.push(`unexpected backend ${backend} got ${count}`);
    else if (weight === 0) problems.push(`${backend} got ${count} with weight 0`);
    else if (Math.abs(count / total - weight) > tolerance) problems.push(`${backend} got ${((count / total) * 100).toFixed(1)}%, expected ${(weight * 100).toFixed(0)}% ± ${(tolerance * 100).toFixed(0)}`);
  }
  return problems.length ? problems.join('; ') : undefined;
}

/** Runs `count` tasks with at most `concurrency` at once. */
export async function runConcurrently<T>(count: number, concurrency: number, task: (index: number) => Promise<T>): Promise<T[]> {
  const results: T[] = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const index = next++;
      results[index] = await task(index);
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results;
}
