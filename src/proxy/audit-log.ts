// The audit log: one JSON line per decision an AUDIT or DENY AuthorizationPolicy (or a default deny) made, on its own stream, never blocking a request.
import { createWriteStream } from 'node:fs';
import type { Writable } from 'node:stream';

export interface AuditRecord {
  /** ISO 8601. */
  time: string;
  /** The caller's verified SPIFFE ID; null for a plaintext caller. */
  principal: string | null;
  /** The JWT's "<iss>/<sub>", when a RequestAuthentication verified one. */
  requestPrincipal?: string;
  sourceIp: string | null;
  /** HTTP: method, host and path; TCP: only the port. */
  method?: string;
  host?: string;
  path?: string;
  port: number;
  /** Where it was decided: "inbound" (a sidecar or node proxy) or "gateway". */
  at: 'inbound' | 'gateway';
  /** The proxy's workload or Gateway, "ns/name". */
  proxy: string;
  /** "ns/name" of the policy; absent when the request was denied because no ALLOW policy matched (or by the mesh default). */
  policy?: string;
  /** AUDIT: a matching AUDIT policy; DENY: a matching DENY policy; ALLOW: no ALLOW policy matched; DEFAULT: the mesh default denied. */
  action: 'AUDIT' | 'DENY' | 'ALLOW' | 'DEFAULT' | 'CUSTOM';
  decision: 'allow' | 'deny';
  why: string;
}

/** Where audit lines go; the proxy builds one and passes it to the authorization layer. */
export interface AuditSink {
  write(record: AuditRecord): void;
  /** Lines dropped because the stream could not keep up. */
  readonly dropped: number;
  close(): Promise<void>;
}

/** Bytes the stream may hold unwritten before lines are dropped: an audit log must never hold up requests nor grow without bound. */
const DEFAULT_MAX_BUFFERED_BYTES = 1 << 20;

export class StreamAuditLog implements AuditSink {
  private readonly stream: Writable;
  private readonly maxBufferedBytes: number;
  private readonly owned: boolean;
  dropped = 0;

  constructor(stream: Writable, options: { maxBufferedBytes?: number; owned?: boolean } = {}) {
    this.stream = stream;
    this.maxBufferedBytes = options.maxBufferedBytes ?? DEFAULT_MAX_BUFFERED_BYTES;
    this.owned = options.owned ?? false;
    // A failing file (disk full) must not take the proxy down; its lines are lost and counted.
    stream.on('error', () => {});
  }

  write(record: AuditRecord): void {
    if (this.stream.destroyed || this.stream.writableLength > this.maxBufferedBytes) {
      this.dropped++;
      return;
    }
    this.stream.write(`${JSON.stringify(record)}\n`);
  }

  close(): Promise<void> {
    if (!this.owned || this.stream.destroyed) return Promise.resolve();
    return new Promise((resolve) => this.stream.end(resolve));
  }
}

/** Nothing is written (`--audit-log none`). */
export const NO_AUDIT_LOG: AuditSink = { write() {}, dropped: 0, close: () => Promise.resolve() };

/** "stdout", "stderr", "none" or a file path (appended to). */
export function openAuditLog(target: string): AuditSink {
  if (target === 'none') return NO_AUDIT_LOG;
  if (target === 'stdout') return new StreamAuditLog(process.stdout);
  if (target === 'stderr') return new StreamAuditLog(process.stderr);
  return new StreamAuditLog(createWriteStream(target, { flags: 'a', mode: 0o600 }), { owned: true });
}
