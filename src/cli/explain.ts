// `weft explain`: what the mesh would do with one request, and why: entry, rule by rule, filters, backends, endpoints and their live health, timeouts, retries.
import { Command, Option } from 'commander';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { DEBUG_BACKENDS_PATH, type ExplainBackend, type ExplainRequest, type ExplainTrace, type LiveProxyState } from '../api/explain.ts';
import { gatewayWorkloadName } from '../api/snapshot.ts';
import type { ProxyStatus } from '../api/stream.ts';
import { WeftClient } from './client.ts';
import { CliError, collect, resolveServer } from './options.ts';
import type { UpFile } from './up.ts';

const ADMIN_TIMEOUT_MS = 3000;

/** "Name: value" → [name, value]. */
export function parseHeaderFlag(text: string): [string, string] {
  const colon = text.indexOf(':');
  if (colon <= 0) throw new CliError(`-H "${text}": expected "Name: value"`, 2);
  return [text.slice(0, colon).trim(), text.slice(colon + 1).trim()];
}

/**
 * The admin address of a proxy that serves the workload or gateway: --admin,
 * else where a connected proxy of it told the control plane its admin
 * listens, else what a `weft up` running from this directory recorded.
 */
export function adminFor(who: { from?: string; gateway?: string }, flag: string | undefined, proxies: readonly ProxyStatus[], cwd = process.cwd()): { url?: string; why?: string } {
  if (flag) return { url: /^https?:\/\//.test(flag) ? flag.replace(/\/+$/, '') : `http://${flag}` };
  const [namespace, name] = (who.from ?? who.gateway ?? '').split('/');
  // Gateway proxies register as "<gateway>.gateway".
  const workload = who.gateway ? gatewayWorkloadName(name ?? '') : name;
  const known = proxies.find((p) => p.connected && p.admin && p.namespace === namespace && p.workload === workload);
  if (known) return { url: `http://${known.admin}` };
  const upFile = join(cwd, '.weft', 'up.json');
  if (!existsSync(upFile)) return { why: `no connected proxy of ${who.from ?? who.gateway} told the control plane where its admin listens, and no weft up runs here (./.weft/up.json): pass --admin host:port for live endpoint state` };
  try {
    const up = JSON.parse(readFileSync(upFile, 'utf8')) as UpFile;
    if (who.from) {
      const [namespace, name] = who.from.split('/');
      const instance = up.workloads.find((w) => w.namespace === namespace && w.workload === name);
      if (instance) return { url: `http://127.0.0.1:${instance.proxy.admin}` };
    } else if (who.gateway) {
      const [namespace, name] = who.gateway.split('/');
      const gateway = (up.gateways ?? []).find((g) => g.namespace === namespace && g.name === name);
      if (gateway) return { url: `http://127.0.0.1:${gateway.proxy.admin}` };
    }
  } catch {
    // A half-written file: as if there were none.
  }
  return { why: `./.weft/up.json lists no proxy of ${who.from ?? who.gateway}: pass --admin host:port for live endpoint state` };
}

/** GET /debug/backends of a proxy's admin; the reason in words when it cannot be read. */
export async function fetchLiveState(adminUrl: string, workload?: string): Promise<{ live?: LiveProxyState; why?: string }> {
  try {
    // A node proxy serves several workloads from one admin: ?workload= names the caller (a sidecar ignores it).
    const query = workload ? `?workload=${encodeURIComponent(workload)}` : '';
    const response = await fetch(adminUrl + DEBUG_BACKENDS_PATH + query, { signal: AbortSignal.timeout(ADMIN_TIMEOUT_MS) });
    if (!response.ok) return { why: `${adminUrl}${DEBUG_BACKENDS_PATH} answered ${response.status}` };
    return { live: (await response.json()) as LiveProxyState };
  } catch (error) {
    const cause = (error as { cause?: { code?: string } }).cause?.code;
    return { why: `could not read ${adminUrl}${DEBUG_BACKENDS_PATH} (${cause ?? (error instanceof Error ? error.message : String(error))})` };
  }
}

function outcomeWord(trace: ExplainTrace): string {
  return trace.verdict.outcome.toUpperCase().replace(/-/g, ' ');
}

function backendLines(b: ExplainBackend, many: boolean): string[] {
  const lines: string[] = [];
  const head = [b.key ?? '(unresolved backendRef)'];
  if (many) head.push(`weight ${b.weight} (${b.percent} %)`);
  if (b.lb) head.push(`lb ${b.lb}`);
  if (b.traffic) head.push(`policy ${b.traffic.policy}`);
  if (b.variant) head.push(`variant for ${b.variant}`);
  lines.push(`  ${head.join('  ')}`);
  if (b.problem) lines.push(`    ! ${b.problem}`);
  for (const f of b.filters) lines.push(`    filter ${f.describe}${f.effect ? ` -> ${f.effect}` : ''}`);
  const t = b.traffic;
  if (t?.outlierDetection) {
    const o = t.outlierDetection;
    const on = [o.consecutive5xx && `${o.consecutive5xx} 5xx`, o.consecutiveGatewayErrors && `${o.consecutiveGatewayErrors} gateway errors`, o.consecutiveConnectFailures && `${o.consecutiveConnectFailures} connect failures`].filter(Boolean).join(', ');
    lines.push(`    outlier detection: eject after ${on || '—'} in a row, for ${o.baseEjectionMs} ms (up to ${o.maxEjectionMs} ms), at most ${o.maxEjectionPercent} % of endpoints`);
  }
  if (t?.healthCheck) lines.push(`    health check: ${t.healthCheck.type}${t.healthCheck.path ? ` GET ${t.healthCheck.path}` : ''} every ${t.healthCheck.intervalMs} ms`);
  if (t?.hash) lines.push(`    consistent hash on ${t.hash.source}${t.hash.name ? ` ${t.hash.name}` : ''} (${t.hash.algorithm})`);
  if (b.circuitBreaker) {
    const cb = b.circuitBreaker;
    const limits = [cb.maxRequests !== undefined && `maxRequests ${cb.maxRequests}`, cb.maxPendingRequests !== undefined && `maxPendingRequests ${cb.maxPendingRequests}`, cb.maxConnections !== undefined && `maxConnections ${cb.maxConnections}`, cb.maxRetries !== undefined && `maxRetries ${cb.maxRetries}`].filter(Boolean).join(', ');
    const live = cb.live ? `; now ${cb.live.requests} in flight, ${cb.live.pending} waiting, ${cb.live.retries} retrying${cb.open ? ' — OPEN' : ''}` : '';
    lines.push(`    circuit breaker: ${limits}${live}`);
  }
  if (b.service) {
    if (b.endpoints.length === 0) lines.push('    endpoints: none ready');
    else lines.push('    endpoints:');
    for (const e of b.endpoints) {
      const where = e.tunnelPort !== undefined ? `${e.address}:${e.port} via tunnel :${e.tunnelPort}` : `${e.address}:${e.port}`;
      lines.push(`      ${e.available ? '✓' : '✗'} ${e.id}  ${where}  ${e.state}`);
    }
  }
  return lines;
}

/** The trace as indented text, the verdict first. */
export function formatTrace(trace: ExplainTrace): string {
  const out: string[] = [];
  const v = trace.verdict;
  const caller = trace.request.sourceIp !== undefined ? ` (caller ${trace.request.sourceIp})` : '';
  out.push(`${trace.request.method} ${trace.request.url}  from ${trace.from.kind} ${trace.from.name}${caller}  (config ${trace.from.snapshotVersion.slice(0, 12)})`);
  out.push('');
  out.push(`Verdict: ${outcomeWord(trace)}${v.status !== undefined ? ` — the proxy answers ${v.status}` : ''}${v.reason ? `, weft-reason: ${v.reason}` : ''}`);
  out.push(`  ${v.summary}`);
  if (trace.risks.length) {
    out.push('');
    out.push('It may also happen:');
    for (const r of trace.risks) out.push(`  ! ${r.percent !== undefined ? `${r.percent} %: ` : ''}${r.why}${r.reason ? ` [${r.status ?? ''} ${r.reason}]` : ''}`);
  }
  if (trace.entry) {
    out.push('');
    out.push(`Entry: ${trace.entry.summary}`);
    for (const step of trace.entry.steps) out.push(`  ${step}`);
  }
  if (trace.rules.length) {
    out.push('');
    out.push(`Route rules${trace.entry?.routeKey ? ` of ${trace.entry.routeKey}` : ''}, in precedence order:`);
    const mark = { matched: '✓', 'no-match': '✗', shadowed: '=', 'not-checked': '·' } as const;
    for (const r of trace.rules) out.push(`  ${mark[r.result]} [${r.index}] ${r.id}: ${r.why}`);
  }
  if (trace.rule) {
    const rule = trace.rule;
    if (rule.rateLimits.length) {
      out.push('');
      out.push('Rate limits:');
      for (const l of rule.rateLimits) {
        const state = l.tokensLeft !== undefined ? ` — ${l.exhausted ? 'EXHAUSTED' : `${l.tokensLeft} token(s) left`}` : '';
        out.push(`  ${l.policy}: ${l.requests} per ${l.intervalMs} ms, burst ${l.burst} (${l.scope}), key ${l.key.join(' + ') || '(one bucket)'}${state}`);
      }
    }
    if (rule.filters.length) {
      out.push('');
      out.push('Filters, in the order they run:');
      for (const f of rule.filters) out.push(`  ${f.describe}${f.effect ? ` -> ${f.effect}` : ''}`);
    }
  }
  if (trace.backends.length) {
    out.push('');
    out.push('Backends:');
    for (const b of trace.backends) out.push(...backendLines(b, trace.backends.length > 1));
  }
  if (trace.authentication?.length) {
    out.push('');
    const keys = trace.authentication.some((a) => a.apiKeyRules?.length);
    out.push(`Authentication (RequestAuthentication; tokens NOT verified by explain${keys ? ', API keys checked' : ''}):`);
    for (const a of trace.authentication) {
      out.push(`  at ${a.at}:`);
      for (const r of a.apiKeyRules ?? []) out.push(`    API keys (${r.id}): ${r.clients} client(s), key from ${r.from.join(', ')}`);
      for (const k of a.apiKeys ?? []) out.push(`    API key in ${k.foundIn}: ${k.client !== undefined ? `client ${k.client} (${k.acceptedBy ?? ''})` : `✗ ${k.problem ?? 'unknown'} → 401`}`);
      if (a.apiKeyRules?.length && !a.apiKeys?.length) out.push('    the request carries no API key there');
      for (const r of a.rules) out.push(`    issuer ${r.issuer} (${r.id}): token from ${r.from.join(', ')}${r.audiences.length ? `; audiences ${r.audiences.join(', ')}` : ''}; keys ${r.keys}`);
      if (a.rules.length > 0 && a.tokens.length === 0) out.push('    the request carries no token there: it passes with no request principal');
      for (const t of a.tokens) {
        const claims = [t.iss !== undefined ? `iss ${t.iss}` : 'no iss', t.sub !== undefined ? `sub ${t.sub}` : 'no sub', ...(t.aud ? [`aud ${t.aud.join(', ')}`] : []), ...(t.expiresAt ? [`exp ${t.expiresAt}${t.expired ? ' (EXPIRED)' : ''}`] : [])];
        out.push(`    token in ${t.foundIn}, unverified: ${claims.join(', ')}`);
        out.push(`      ${t.problem ? `✗ ${t.problem} → 401` : `issuer accepted (${(t.acceptedBy ?? []).join(', ')}); the proxy still verifies its signature`}`);
      }
    }
  }
  if (trace.authorization?.length) {
    out.push('');
    out.push('Authorization:');
    for (const a of trace.authorization) {
      const caller = [
        ...(a.principal ? [`caller ${a.principal}`] : []),
        ...(a.unverifiedRequestPrincipal ? [`request principal ${a.unverifiedRequestPrincipal} UNVERIFIED`] : []),
        ...(a.requestPrincipal ? [`request principal ${a.requestPrincipal}`] : []),
      ];
      out.push(`  ${a.allowed ? '✓ allowed' : '✗ DENIED'} at ${a.at}${caller.length ? ` (${caller.join(', ')})` : ''}: ${a.why}`);
      for (const audit of a.audited) out.push(`    audited by ${audit}`);
    }
  }
  if (trace.timeouts || trace.retry) {
    out.push('');
    if (trace.timeouts) out.push(`Timeouts: ${trace.timeouts.summary}`);
    if (trace.retry) {
      out.push(`Retries: ${trace.retry.summary}`);
      for (const b of trace.retry.budgets) out.push(`  retry budget of ${b.backend}: ${b.percent} % of requests over ${b.windowMs} ms, at least ${b.minRetriesPerSecond}/s`);
    }
  }
  out.push('');
  out.push(trace.live.used ? `Live state: from ${trace.live.source} (${trace.live.why ?? ''})` : `Live state: not used — ${trace.live.why ?? 'unknown'}`);
  for (const note of trace.notes) out.push(`Note: ${note}`);
  return out.join('\n') + '\n';
}

export function explainCommand(): Command {
  return new Command('explain')
    .description('what the mesh would do with a request, and why: the route rule (or why none), filters, backends, endpoints and their health, timeouts and retries')
    .argument('<method-or-url>', 'HTTP method (GET, POST, ...), or the URL for a GET')
    .argument('[url]', 'http://service.namespace:port/path, https:// or tls:// (gateway SNI), tcp://service:port')
    .option('--from <workload>', 'the request leaves this workload (<namespace>/<name>) through its sidecar')
    .option('--gateway <gateway>', 'the request enters at this Gateway (<namespace>/<name>)')
    .option('-H, --header <header>', 'a request header, "Name: value" (repeatable)', collect, [])
    .option('--sni <name>', 'TLS: the server name of the ClientHello, when not the URL\'s host')
    .option('--source-ip <address>', 'the caller\'s address, for policies on ipBlocks and source.ip: the client\'s at a gateway, the calling instance\'s with --from')
    .option('--admin <address>', 'the calling proxy\'s admin (host:port) to read live endpoint state from (default: from a weft up running here)')
    .option('--no-live', 'do not read live state from the proxy')
    .addOption(new Option('-o, --output <format>', 'output format').choices(['json']))
    .addHelpText('after', '\nExamples:\n  weft explain --from default/productpage GET http://reviews:9080/reviews/1 -H "x-user: alice"\n  weft explain --gateway default/web https://shop.example.com/cart\n')
    .action(async (methodOrUrl: string, urlArg: string | undefined, options: { from?: string; gateway?: string; header: string[]; sni?: string; sourceIp?: string; admin?: string; live: boolean; output?: 'json' }, command: Command) => {
      const [method, url] = urlArg === undefined ? ['GET', methodOrUrl] : [methodOrUrl, urlArg];
      if ((options.from === undefined) === (options.gateway === undefined)) throw new CliError('give exactly one of --from <namespace>/<workload> and --gateway <namespace>/<name>', 2);
      const headers: Record<string, string> = {};
      for (const h of options.header) {
        const [name, value] = parseHeaderFlag(h);
        headers[name] = value;
      }
      const request: ExplainRequest = { method, url, headers };
      if (options.from) request.from = options.from;
      if (options.gateway) request.gateway = options.gateway;
      if (options.sni) request.sni = options.sni;
      if (options.sourceIp) request.sourceIp = options.sourceIp;
      const client = new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
      if (options.live) {
        const admin = adminFor(options, options.admin, options.admin ? [] : await client.proxies());
        if (admin.url) {
          const state = await fetchLiveState(admin.url, options.from);
          if (state.live) request.live = { ...state.live, proxy: state.live.proxy ?? admin.url };
          else request.liveUnavailable = state.why ?? 'unknown';
        } else request.liveUnavailable = admin.why ?? 'unknown';
      } else request.liveUnavailable = 'not asked for (--no-live)';
      const trace = await client.explain(request);
      process.stdout.write(options.output === 'json' ? `${JSON.stringify(trace, null, 2)}\n` : formatTrace(trace));
    });
}
