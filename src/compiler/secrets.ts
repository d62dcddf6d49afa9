// A Secret's values as text, as the compiler reads them (TLS certificates, API keys).
import type { Secret } from '../api/resources.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** The value of `name` as UTF-8 text: stringData wins over data (base64), as Kubernetes merges them on write; undefined when absent or not text. */
export function secretValue(secret: Secret, name: string): string | undefined {
  const plain = secret.spec.stringData?.[name];
  if (plain !== undefined) return plain;
  const encoded = secret.spec.data?.[name];
  if (encoded === undefined) return undefined;
  try {
    return utf8.decode(Uint8Array.from(atob(encoded.replace(/\s+/g, '')), (c) => c.charCodeAt(0)));
  } catch {
    return undefined;
  }
}

/** Every key of the Secret (data and stringData together) with its value as text. */
export function secretEntries(secret: Secret): [string, string][] {
  const names = new Set([...Object.keys(secret.spec.data ?? {}), ...Object.keys(secret.spec.stringData ?? {})]);
  const entries: [string, string][] = [];
  for (const name of [...names].sort()) {
    const value = secretValue(secret, name);
    if (value !== undefined) entries.push([name, value]);
  }
  return entries;
}
