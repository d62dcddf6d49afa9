// PEM helpers for the CA: split bundles into certificates, encode DER.

const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g;

/** Every certificate in a PEM bundle, each normalised to end with one newline; text between blocks is ignored. */
export function splitPemCertificates(bundle: string | undefined): string[] {
  if (!bundle) return [];
  return [...bundle.matchAll(CERTIFICATE_BLOCK)].map((m) => `${m[0].replace(/\r\n/g, '\n')}\n`);
}

export function joinPem(blocks: readonly string[]): string {
  return blocks.map((b) => (b.endsWith('\n') ? b : `${b}\n`)).join('');
}
