// Messages of the proxy ↔ control-plane config stream (one HTTP/2 stream, newline-delimited JSON each way).
//
// The proxy opens `POST /weft.v1/stream` on the control plane's stream port and
// keeps it open. It writes ProxyMessages into the request body; the control
// plane writes ControlMessages into the response body. As in xDS, every
// snapshot carries a version and a nonce, and the proxy answers each with an
// ACK or a NACK naming both.
//
// Deltas (as in Envoy's incremental xDS): a proxy that says `delta: true` in
// its hello may be sent a `delta` instead of a `snapshot` once it has ACKed,
// on this stream, the version the delta starts from (`base`). It applies the
// delta to the snapshot it runs only when that is `base`, validates the result
// as it would a full snapshot, and checks that the result's content hash is
// `version`; then it ACKs `version`. On any failure (another base, a bad
// delta, an invalid result) it NACKs, and the control plane sends the full
// snapshot next. A new stream, a stream whose last answer was a NACK, and a
// proxy that does not say `delta: true` only ever get full snapshots.
import type { NodeInfo, ProxySnapshot } from './snapshot.ts';
import type { SnapshotDelta } from './snapshot-delta.ts';
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
      /** The proxy takes `delta` messages; without it, every push is a full `snapshot`. */
      delta?: boolean;
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
  /**
   * The change from `base` (the version the proxy last ACKed on this stream)
   * to `version`: sections and keyed-map entries set or removed
   * (api/snapshot-delta.ts). Answered with an ACK or NACK of `version` and
   * `nonce`, like a snapshot. Fields go in this order (type, version, nonce
   * first): simple clients read them from the line's head.
   */
  | { type: 'delta'; version: string; nonce: string; base: string; delta: SnapshotDelta }
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
  /** Whether sentVersion went as a delta (from the version acked before it) rather than whole. */
  sentAsDelta?: boolean;
  lastNack?: { version: string; code: string; message: string; at: string };
  connectedAt?: string;
  lastSeen: string;
  /** The SPIFFE ID of the proxy's last certificate, and when that certificate expires (ISO time). */
  identity?: string;
  certExpiresAt?: string;
  /** The proxy's admin listener (/metrics) as "host:port", when it said (NodeInfo.adminPort). */
  admin?: string;
  /** The control-plane replica that holds (or last held) its stream, when the control plane has a name for itself. */
  replica?: string;
}

/** A control-plane replica as GET /weft/v1/status lists it (`replicas`): every replica answers for the whole mesh. */
export interface ReplicaStatus {
  name: string;
  /** Its stream port over TLS, where the other replicas ask it. */
  stream: string;
  /** Whether it is the replica that answered. */
  self: boolean;
  /** Whether it answered the last time it was asked (always true for the one answering). */
  reachable: boolean;
  error?: string;
  /** How many proxies hold their streams with it now. */
  proxies: number;
}
