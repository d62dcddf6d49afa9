// The PeerAuthentication schema (weft.dev/v1alpha1), modelled on Istio's security.istio.io PeerAuthentication: per-namespace and per-workload mTLS modes.
import { z } from 'zod';

/** UNSET inherits the mode of the level above (namespace-wide policy, then MeshConfig). */
export const PEER_AUTHENTICATION_MODES = ['STRICT', 'PERMISSIVE', 'UNSET'] as const;

export const PeerAuthenticationSpec = z.strictObject({
  /** The Workloads (templates) whose sidecars take this mode; absent: every workload of the namespace. */
  selector: z
    .strictObject({
      matchLabels: z.record(z.string(), z.string()).refine((labels) => Object.keys(labels).length > 0, { message: 'must name at least one label; omit the selector for a namespace-wide policy' }),
    })
    .optional(),
  mtls: z.strictObject({ mode: z.enum(PEER_AUTHENTICATION_MODES).default('UNSET') }).optional(),
  // Istio's portLevelMtls is not offered: weft's tunnel tells mTLS from plaintext by the first byte, before it knows the target port.
});
export type PeerAuthenticationSpec = z.infer<typeof PeerAuthenticationSpec>;
