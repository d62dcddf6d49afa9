// Messages of the proxy ↔ control-plane config stream (one HTTP/2 stream, newline-delimited JSON each way).
//
// The proxy opens `POST /weft.v1/stream` on the control plane's stream port and
// keeps it open. It writes ProxyMessages into the request body; the control
// plane writes ControlMessages into the response body. As in xDS, every
// snapshot carries a version and a nonce, and the proxy answers each with an
// ACK or a NACK naming both.
import type { NodeInfo, ProxySnapshot } from './snapshot.ts';
import type { TapEvent, TapFilter } from './tap.ts';
import type { TelemetryReport } from './topology.ts';

export const STREAM_PATH = '/weft.v1/stream';

/**
 * `POST` on the stream port: a proxy's certificate signing request. The
 * bootstrap token goes in `authorization: Bearer <token>`; the body is a
 * CertificateRequest and the answer a CertificateResponse (or, on a 4xx/5xx,
 * `{ code, message }`). The CA certifies the identity the token and the
 * template Workload allow, whatever the CSR asks for.
 */
export const CERTIFICATE_PATH = '/weft.v1/certificate';

export interface CertificateRequest {
  /** PEM PKCS#10; only its public key is used. */
  csr: string;
  namespace: string;
  /** The template Workload the proxy serves; its service account is the identity. */
  workload?: string;
  /** The proxy's id ("<namespace>/<instance>"), so that `weft status` can show its certificate. */
  proxy?: string;
}

export interface CertificateResponse {
  spiffeId: string;
  certPem: string;
  /** Intermediates between the leaf and the trust bundle ('' under a generated root). */
  chainPem: string;
  /** Epoch milliseconds. */
  notAfter: number;
  trustBundle: string[];
}

export type ProxyMessage =
  | {
      type: 'hello';
      node: NodeInfo;
      /** The version the proxy is running (from disk, or a previous stream), so it can be told "nothing new". */
      runningVersion?: string;
      /** Bootstrap token; mandatory for a proxy connecting from another host, checked whenever present. */
      token?: string;
    }
  | { type: 'ack'; version: string; nonce: string }
  | { type: 'nack'; version: string; nonce: string; error: { code: string; message: string } }
  /** The app behind the proxy is (or is no longer) answering: register or withdraw its endpoint. */
  | { type: 'ready'; ready: boolean }
  /** Sent every leaseTtl/3; keeps the registration's lease alive. */
  | { type: 'heartbeat' }
  /** Every few seconds: what the proxy counted per edge since its previous report (control/telemetry aggregates it). */
  | ({ type: 'telemetry' } & TelemetryReport)
  /** Requests a running tap matched (api/tap.ts), batched; `dropped` counts those past the rate cap; `ended` says the proxy stopped (refused or capped). */
  | { type: 'tap'; id: string; events: TapEvent[]; dropped?: number; ended?: string };

export type ControlMessage =
  | { type: 'welcome'; leaseTtlMs: number; heartbeatMs: number }
  | { type: 'snapshot'; version: string; nonce: string; snapshot: ProxySnapshot }
  | { type: 'error'; code: string; message: string }
  /** Start sending `tap` messages for requests matching the filter (at most eventsPerSecond), until `tap-stop`. */
  | { type: 'tap-start'; id: string; filter: TapFilter; eventsPerSecond?: number }
  | { type: 'tap-stop'; id: string };

/** One proxy as the control plane sees it; what `weft status` lists. */
export interface ProxyStatus {
  id: string;
  mode: NodeInfo['mode'];
  namespace: string;
  workload?: string;
  instance?: string;
  address: string;
  tunnelPort: number;
  connected: boolean;
  ready: boolean;
  /** The version last sent and the version last acknowledged. */
  sentVersion?: string;
  ackedVersion?: string;
  lastNack?: { version: string; code: string; message: string; at: string };
  connectedAt?: string;
  lastSeen: string;
  /** The SPIFFE ID of the proxy's last certificate, and when that certificate expires (ISO time). */
  identity?: string;
  certExpiresAt?: string;
  /** The proxy's admin listener (/metrics) as "host:port", when it said (NodeInfo.adminPort). */
  admin?: string;
}
