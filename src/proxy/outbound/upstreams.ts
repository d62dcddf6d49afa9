// Upstream ports: 127.0.0.1:<localPort> listeners, each for one service port, opened and closed to match the snapshot.
import { createServer, type Server, type Socket } from 'node:net';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import type { Logger } from '../../telemetry/logger.ts';
import { listen } from '../transport/listen.ts';

export class UpstreamListeners {
  private readonly servers = new Map<number, Server>();
  private readonly host: string;
  private readonly onConnection: (localPort: number, socket: Socket) => void;
  private readonly logger: Logger;
  /** Told of each listening server before it listens (the outbound listener caps its connections). */
  private readonly onServer: ((server: Server) => void) | undefined;

  constructor(host: string, onConnection: (localPort: number, socket: Socket) => void, logger: Logger, onServer?: (server: Server) => void) {
    this.host = host;
    this.onConnection = onConnection;
    this.logger = logger;
    this.onServer = onServer;
  }

  /**
   * Listens on every port in `ports` not listened on yet. If one cannot be
   * bound, the ones this call opened are closed again and the error names the port.
   */
  async open(ports: Iterable<number>): Promise<void> {
    const opened: number[] = [];
    for (const port of ports) {
      if (this.servers.has(port)) continue;
      // Connections are handed over as they come; what they carry is decided per connection from the current config.
      const server = createServer({ allowHalfOpen: true, noDelay: true }, (socket) => this.onConnection(port, socket));
      this.onServer?.(server);
      try {
        await listen(server, port, this.host);
      } catch (error) {
        for (const p of opened) this.closeOne(p);
        const code = (error as { code?: string }).code ?? (error instanceof Error ? error.message : String(error));
        throw new WeftError(ErrorCodes.SNAPSHOT_INVALID, `cannot listen on upstream port ${this.host}:${port}: ${code}`);
      }
      server.on('error', (error) => this.logger.warn({ err: error, port }, 'upstream listener error'));
      this.servers.set(port, server);
      opened.push(port);
    }
  }

  /** Stops accepting on ports not in `keep`; connections already open carry on. */
  closeExcept(keep: ReadonlySet<number>): void {
    for (const port of [...this.servers.keys()]) if (!keep.has(port)) this.closeOne(port);
  }

  get ports(): number[] {
    return [...this.servers.keys()].sort((a, b) => a - b);
  }

  closeAll(): void {
    for (const port of [...this.servers.keys()]) this.closeOne(port);
  }

  private closeOne(port: number): void {
    const server = this.servers.get(port);
    this.servers.delete(port);
    server?.close();
  }
}
