// SNI route layer: opaque TCP on a mesh port with TLSRoutes picks its rule by the ClientHello's server name, read without terminating TLS.
import { ErrorCodes } from '../../../api/errors.ts';
import { routesBySni, sniRuleOf } from '../../../api/route-match.ts';
import type { HttpRouteRule, RouteTable } from '../../../api/snapshot.ts';
import type { Clock } from '../../../telemetry/clock.ts';
import { proxyError } from '../../errors.ts';
import type { TcpExchange } from '../../exchange.ts';
import type { Layer, Step } from '../../stack.ts';
import { parseClientHello, MAX_CLIENT_HELLO } from '../../transport/sni.ts';
import { routeTcp } from '../route/index.ts';

/** How long a client may take to send its ClientHello once it may speak. */
const CLIENT_HELLO_TIMEOUT_MS = 10_000;

/**
 * Reads the client's ClientHello and puts every byte back, so that the
 * upstream gets the handshake unchanged; resolves with the SNI (undefined
 * when the client names none, sends no TLS, or takes too long).
 */
export function peekServerName(ex: TcpExchange, clock: Clock): Promise<string | undefined> {
  const socket = ex.socket;
  ex.beforeClientRead?.();
  return new Promise((resolve) => {
    let buffered: Buffer = Buffer.alloc(0);
    const finish = (serverName: string | undefined) => {
      timer.cancel();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (buffered.length > 0) socket.unshift(buffered);
      resolve(serverName);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const hello = parseClientHello(buffered);
      if (hello.state === 'complete') finish(hello.serverName);
      else if (hello.state === 'invalid' || buffered.length > MAX_CLIENT_HELLO) finish(undefined);
    };
    const onEnd = () => finish(undefined);
    const timer = clock.setTimeout(() => finish(undefined), CLIENT_HELLO_TIMEOUT_MS);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.resume();
  });
}

/**
 * A table whose rules carry no `sni` is routed as any opaque TCP (routeTcp).
 * Otherwise the ClientHello decides: the first rule whose `sni` matches the
 * server name (the compiler orders them most specific first), else a rule
 * without `sni` (a TCPRoute's), else the connection is refused (NO_ROUTE).
 */
export function routeBySni(ruleStack: (rule: HttpRouteRule) => Step<TcpExchange>, clock: Clock): Layer<RouteTable, TcpExchange> {
  const plain = routeTcp(ruleStack);
  return (table, next) => {
    if (!routesBySni(table)) return plain(table, next);
    const steps = new Map(table.rules.map((rule) => [rule, ruleStack(rule)] as const));
    const key = table.key;
    return async (ex) => {
      const serverName = await peekServerName(ex, clock);
      const rule = sniRuleOf(table, serverName);
      if (rule) return steps.get(rule)!(ex);
      throw proxyError(ErrorCodes.NO_ROUTE, serverName === undefined ? `${key} routes TLS by SNI and the client sent none` : `no TLSRoute of ${key} serves ${serverName}`, 502);
    };
  };
}
