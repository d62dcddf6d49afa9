// `weft tap <workload|service>`: live request summaries from the proxies of one workload or service (Linkerd's tap), one line per request.
import { Command, Option } from 'commander';
import { TAP_PATH, type TapFilter, type TapLine } from '../api/tap.ts';
import { apiAuthHeaders, ApiError, ServerUnreachableError } from './client.ts';
import { CliError, collect, resolveServer } from './options.ts';

export interface TapQuery extends TapFilter {
  target: string;
  namespace: string;
  max?: number | undefined;
}

/** The API path of a tap. */
export function tapPath(query: TapQuery): string {
  const params = new URLSearchParams({ target: query.target, namespace: query.namespace });
  if (query.pathPrefix) params.set('pathPrefix', query.pathPrefix);
  if (query.method) params.set('method', query.method);
  if (query.status) params.set('status', query.status);
  if (query.direction) params.set('direction', query.direction);
  for (const header of query.showHeaders ?? []) params.append('showHeader', header);
  if (query.max !== undefined) params.set('max', String(query.max));
  return `${TAP_PATH}?${params.toString()}`;
}

/** One line of text per tap line (Linkerd prints req/rsp/end; a finished request is one line here). */
export function formatTapLine(line: TapLine): string | undefined {
  switch (line.type) {
    case 'event': {
      const parts = [
        line.time,
        line.direction === 'inbound' ? 'in ' : 'out',
        `src=${line.source}`,
        `dst=${line.destination}${line.endpoint ? `(${line.endpoint})` : ''}`,
        line.method,
        `${line.authority}${line.path}`,
        String(line.status),
        `${line.latencyMs < 10 ? line.latencyMs.toFixed(2) : Math.round(line.latencyMs)}ms`,
      ];
      if (line.responseBytes !== undefined) parts.push(`${line.responseBytes}B`);
      if (line.grpcStatus !== undefined) parts.push(`grpc-status=${line.grpcStatus}`);
      if (line.route) parts.push(`route=${line.route}`);
      if (line.weftReason) parts.push(`weft-reason=${line.weftReason}`);
      const headers = Object.entries(line.headers).map(([name, value]) => `${name}=${value}`);
      if (headers.length > 0) parts.push(`headers{${headers.join(' ')}}`);
      return parts.join(' ');
    }
    case 'started': {
      const notes = line.skipped.map((s) => `  skipped ${s.proxy ?? s.workload ?? '?'}: ${s.reason}`);
      return [`# tapping ${line.proxies.length} prox${line.proxies.length === 1 ? 'y' : 'ies'}${line.proxies.length ? `: ${line.proxies.join(', ')}` : ''}`, ...notes].join('\n');
    }
    case 'dropped':
      return `# ${line.proxy} dropped ${line.count} events over the rate cap`;
    case 'end':
      return `# tap ended: ${line.reason}`;
  }
  return undefined;
}

/** Streams a tap, calling `onLine` per line, until the server ends it or `signal` aborts. */
export async function streamTap(server: string, query: TapQuery, onLine: (line: TapLine) => void, signal?: AbortSignal): Promise<void> {
  let response: Response;
  try {
    response = await fetch(server.replace(/\/+$/, '') + tapPath(query), { headers: { ...apiAuthHeaders(), accept: 'application/x-ndjson' }, ...(signal ? { signal } : {}) });
  } catch (error) {
    if (signal?.aborted) return;
    const cause = (error as { cause?: { code?: string } }).cause;
    throw new ServerUnreachableError(server, cause?.code === 'ECONNREFUSED' ? 'connection refused' : (error as Error).message);
  }
  if (!response.ok || !response.body) {
    const text = await response.text();
    let status: { message?: string } | undefined;
    try {
      status = JSON.parse(text) as { message?: string };
    } catch {
      status = undefined;
    }
    throw new ApiError({ ...(status ?? {}), message: status?.message ?? `${response.status} ${text.slice(0, 200)}`, code: response.status });
  }
  const decoder = new TextDecoder();
  let buffered = '';
  try {
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffered += decoder.decode(chunk, { stream: true });
      let newline: number;
      while ((newline = buffered.indexOf('\n')) !== -1) {
        const text = buffered.slice(0, newline).trim();
        buffered = buffered.slice(newline + 1);
        if (text) onLine(JSON.parse(text) as TapLine);
      }
    }
  } catch (error) {
    if (!signal?.aborted) throw error;
  }
}

export function tapCommand(): Command {
  return new Command('tap')
    .description('stream live request summaries from the proxies of a workload or service (the Workload must be annotated weft.dev/tap: enabled)')
    .argument('<target>', 'a workload or service: "name", "workload/name" or "svc/name"')
    .option('-n, --namespace <namespace>', 'namespace of the target', 'default')
    .option('--path-prefix <prefix>', 'only requests whose path starts with this')
    .option('--method <method>', 'only requests with this method')
    .option('--status <status>', 'only responses with this status (503) or class (5xx)')
    .addOption(new Option('--direction <direction>', 'only inbound or outbound requests of the tapped proxies').choices(['inbound', 'outbound']))
    .option('--show-header <name>', 'show this request header\'s value (repeatable); every other value is redacted', collect, [])
    .option('--max <n>', 'stop after this many requests')
    .addOption(new Option('-o, --output <format>', 'output format: one JSON object per line').choices(['json']))
    .action(async (target: string, options: { namespace: string; pathPrefix?: string; method?: string; status?: string; direction?: 'inbound' | 'outbound'; showHeader: string[]; max?: string; output?: 'json' }, command: Command) => {
      const server = resolveServer(command.optsWithGlobals<{ server?: string }>().server);
      const max = options.max === undefined ? undefined : Number(options.max);
      if (max !== undefined && !(Number.isInteger(max) && max >= 1)) throw new CliError(`--max must be a positive whole number, got "${options.max}"`);
      const query: TapQuery = { target, namespace: options.namespace, max };
      if (options.pathPrefix) query.pathPrefix = options.pathPrefix;
      if (options.method) query.method = options.method;
      if (options.status) query.status = options.status;
      if (options.direction) query.direction = options.direction;
      if (options.showHeader.length > 0) query.showHeaders = options.showHeader;
      const controller = new AbortController();
      const interrupt = () => controller.abort();
      process.once('SIGINT', interrupt);
      process.once('SIGTERM', interrupt);
      try {
        await streamTap(
          server,
          query,
          (line) => {
            if (options.output === 'json') {
              process.stdout.write(`${JSON.stringify(line)}\n`);
              return;
            }
            const text = formatTapLine(line);
            if (text === undefined) return;
            // Notes go to stderr so that a pipe gets only requests.
            (line.type === 'event' ? process.stdout : process.stderr).write(`${text}\n`);
          },
          controller.signal,
        );
      } finally {
        process.off('SIGINT', interrupt);
        process.off('SIGTERM', interrupt);
      }
    });
}
