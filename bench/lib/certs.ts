// Throwaway certificates for the peers' mutual TLS between hops: a CA and two leaves with SPIFFE URI SANs, made with openssl at run time.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface BenchCerts {
  dir: string;
  caCert: string;
  /** PEM files; `*Bundle` is cert + key in one file, as HAProxy wants it. */
  server: { cert: string; key: string; bundle: string; name: string };
  client: { cert: string; key: string; bundle: string; name: string };
}

function openssl(args: string[], cwd: string): void {
  execFileSync('openssl', args, { cwd, stdio: ['ignore', 'ignore', 'pipe'], timeout: 20_000 });
}

/** P-256 keys, as a mesh would use: the same handshake cost for every peer. */
function leaf(dir: string, name: string, spiffe: string): { cert: string; key: string; bundle: string; name: string } {
  const key = join(dir, `${name}.key`);
  const csr = join(dir, `${name}.csr`);
  const cert = join(dir, `${name}.crt`);
  const ext = join(dir, `${name}.ext`);
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', key], dir);
  openssl(['req', '-new', '-key', key, '-subj', `/O=weft-bench/CN=${name}`, '-out', csr], dir);
  writeFileSync(
    ext,
    [
      'basicConstraints=critical,CA:FALSE',
      'keyUsage=critical,digitalSignature,keyEncipherment',
      'extendedKeyUsage=serverAuth,clientAuth',
      `subjectAltName=DNS:${name}.bench.local,URI:${spiffe}`,
      '',
    ].join('\n'),
  );
  openssl(['x509', '-req', '-in', csr, '-CA', 'ca.crt', '-CAkey', 'ca.key', '-CAcreateserial', '-days', '2', '-sha256', '-extfile', ext, '-out', cert], dir);
  const bundle = join(dir, `${name}.pem`);
  writeFileSync(bundle, readFileSync(cert, 'utf8') + readFileSync(key, 'utf8'));
  return { cert, key, bundle, name: `${name}.bench.local` };
}

export function makeCerts(dir: string): BenchCerts {
  openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', 'ca.key'], dir);
  openssl(['req', '-x509', '-new', '-key', 'ca.key', '-sha256', '-days', '2', '-subj', '/O=weft-bench/CN=bench root', '-out', 'ca.crt'], dir);
  return {
    dir,
    caCert: join(dir, 'ca.crt'),
    server: leaf(dir, 'server', 'spiffe://cluster.local/ns/default/sa/server'),
    client: leaf(dir, 'client', 'spiffe://cluster.local/ns/default/sa/client'),
  };
}
