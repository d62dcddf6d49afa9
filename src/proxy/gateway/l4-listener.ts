// Gateway TCP and TLS-passthrough listeners: a TCP port splices to its TCPRoute's weighted backends; a TLS port routes by the ClientHello's SNI, unterminated.
import type { Socket } from 'node:net';
import { normalHost } from '../../api/hostnames.ts';
import type { Counter, CounterChild } from '../../telemetry/metrics.ts';
import { TcpExchange } from '../exchange.ts';
import type { ListenerContext } from '../listener-context.ts';
import { parseClientHello, MAX_CLIENT_HELLO } from '../transport/sni.ts';
import { splice } from '../transport/tcp.ts';
import { listenerFor, virtualHostFor, type GatewayPortConfig, type GatewayVirtualHost } from './config.ts';

/** How long a TLS client may take to send its whole ClientHello. */
const CLIENT_HELLO_TIMEOUT_MS = 10_000;

/**
 * Why a connection ended where it did: "routed" reached a backend's
 * connect; the others were closed by the gateway (no route, an SNI no
 * TLSRoute serves, no SNI, a malformed or slow hello, a failed connect).
 */
export type L4Result = 'routed' | 'no_route' | 'unknown_sni' | 'no_sni' | 'invalid_hello' | 'hello_timeout' | 'connect_failed';

export class GatewayL4Listeners {
  private readonly options: ListenerContext;
  private readonly counter: Counter;
  private readonly children = new Map<string, CounterChild>();

  constructor(options: ListenerContext) {
    this.options = options;
    this.counter = options.metrics.registry.counter(
      'weft_gateway_l4_connections_total',
      'Connections on Gateway TCP and TLS (passthrough) listeners, by protocol and result (routed, or why the gateway closed them: no_route, unknown_sni, no_sni, invalid_hello, hello_timeout, connect_failed).',
      ['protocol', 'result'],
    );
  }

  /** Serves one connection accepted on a TCP or TLS Gateway port. */
  accept(port: GatewayPortConfig, socket: Socket): void {
    if (port.protocol === 'TCP') {
      // A TCP port has one listener, and a listener one route: every connection takes it.
      const vhost = port.listeners[0]?.hosts[0];
      if (!vhost?.tcp) return this.close(port, socket, 'no_route');
      this.connect(port, socket, vhost, '');
      return;
    }
    this.readClientHello(port, socket);
  }

  private readClientHello(port: GatewayPortConfig, socket: Socket): void {
    let buffered: Buffer = Buffer.alloc(0);
    const timer = this.options.clock.setTimeout(() => finish('hello_timeout'), CLIENT_HELLO_TIMEOUT_MS);
    const finish = (result: L4Result | { serverName: string }) => {
      timer.cancel();
      socket.off('data', onData);
      socket.off('end', onEnd);
      socket.pause();
      if (typeof result === 'string') return this.close(port, socket, result);
      const host = normalHost(result.serverName);
      // Exact names before wildcards: listeners and their virtual hosts are sorted most specific first.
      const listener = listenerFor(port, host);
      const vhost = listener && virtualHostFor(listener, host);
      if (!vhost?.tcp) return this.close(port, socket, 'unknown_sni');
      // The hello goes on to the backend exactly as it came: TLS is never terminated here.
      socket.unshift(buffered);
      this.connect(port, socket, vhost, host);
    };
    const onData = (chunk: Buffer) => {
      buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
      const hello = parseClientHello(buffered);
      if (hello.state === 'incomplete') {
        if (buffered.length > MAX_CLIENT_HELLO) finish('invalid_hello');
        return;
      }
      if (hello.state === 'invalid') finish('invalid_hello');
      else if (hello.serverName === undefined) finish('no_sni');
      else finish({ serverName: hello.serverName });
    };
    const onEnd = () => finish('invalid_hello');
    socket.on('data', onData);
    socket.once('end', onEnd);
  }

  private connect(port: GatewayPortConfig, socket: Socket, vhost: GatewayVirtualHost, serverName: string): void {
    const { logger } = this.options;
    const ex = new TcpExchange('outbound', socket, (upstream) => {
      if (socket.destroyed) {
        upstream.destroy();
        return;
      }
      this.count(port, 'routed');
      splice(socket, upstream);
      socket.resume();
      const accessLog = this.options.accessLog;
      if (accessLog) {
        const openedAt = this.options.clock.monotonic();
        // Everything the client sent is payload (a ClientHello read for SNI was passed on too).
        socket.once('close', () => accessLog.tcp(ex, 'gateway', openedAt, socket.bytesRead, socket.bytesWritten));
      }
    });
    ex.service = vhost.routeKey;
    ex.targetPort = port.port;
    vhost.tcp!(ex).catch((error: unknown) => {
      logger.debug({ gatewayPort: port.port, route: vhost.routeKey, serverName, err: error }, 'gateway L4 connection could not reach a backend');
      this.close(port, socket, 'connect_failed');
    });
  }

  /** A TCP or TLS client would not understand an error page: it sees the connection close, and the reason is counted. */
  private close(port: GatewayPortConfig, socket: Socket, result: L4Result): void {
    this.count(port, result);
    socket.destroy();
  }

  private count(port: GatewayPortConfig, result: L4Result): void {
    const key = `${port.protocol} ${result}`;
    let child = this.children.get(key);
    if (!child) this.children.set(key, (child = this.counter.labels(port.protocol, result)));
    child.inc();
  }
}
