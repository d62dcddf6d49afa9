// What the data-plane suite measures: a topology is an entry port in front of the upstream, through 0, 1 or 2 proxy hops.
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Pinning } from './machine.ts';
import type { BenchCerts } from './certs.ts';
import type { BenchProcess } from './proc.ts';

/** "baseline", "weft", "haproxy", "nginx" (the chart colours by it), or a framing variant. */
export type SystemName = string;

export interface Topology {
  /** "baseline", "nginx-1hop", "haproxy-2hop-mtls", "weft-2hop", ... */
  id: string;
  system: SystemName;
  hops: 0 | 1 | 2;
  mtls: boolean;
  /** Where the load generators send: 127.0.0.1:port, with this path (absolute URL = forward-proxy request). */
  port: number;
  path: string;
  /** The proxy processes, whose CPU and memory are the figures (nginx: master and worker). */
  proxies: BenchProcess[];
  /** What this topology stands for, for the docs and the table. */
  description: string;
}

export interface TopologyContext {
  pinning: Pinning;
  scratchDir: string;
  upstreamPort: number;
  certs: BenchCerts;
  log: (message: string) => void;
}

export const peersDir = fileURLToPath(new URL('../peers/', import.meta.url));

/** Fills {{NAME}} placeholders in a peer config and writes it; a placeholder left unfilled is a bug in the suite. */
export function renderConfig(template: string, vars: Record<string, string | number>, out: string): string {
  const text = readFileSync(`${peersDir}${template}`, 'utf8').replace(/\{\{([A-Z_]+)\}\}/g, (whole, name: string) => {
    const value = vars[name];
    if (value === undefined) throw new Error(`${template}: no value for ${whole}`);
    return String(value);
  });
  writeFileSync(out, text);
  return out;
}
