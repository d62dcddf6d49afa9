// `weft control-plane`: runs the store, compiler, config stream and REST API in this process until SIGTERM.
import { Command, Option } from 'commander';
import { readFileSync, unwatchFile, watchFile, type Stats } from 'node:fs';
import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import { isLoopbackHost } from '../api/loopback.ts';
import type { ApiTokens } from '../control/api/auth.ts';
import type { Logger } from '../telemetry/logger.ts';
import { announceReady, stopOnSignals } from './lifecycle.ts';
import { CliError, parseDuration, parsePort } from './options.ts';

interface ControlPlaneFlags {
  dataDir?: string;
  apiHost: string;
  apiPort: number;
  streamHost: string;
  streamPort: number;
  advertiseAddress?: string;
  replicaName?: string;
  leaseTtl: number;
  debounce?: number;
  store?: string;
  etcdPrefix?: string;
  etcdCa?: string;
  etcdCert?: string;
  etcdKey?: string;
  etcdUser?: string;
  etcdPasswordFile?: string;
  exitOnStdinClose?: boolean;
  caCert?: string;
  caKey?: string;
  caEncryptionKeyFile?: string;
  certTtl: number;
  trustDomain?: string;
  insecureLocalTokens?: boolean;
  apiTokenFile?: string;
  apiTlsCert?: string;
  apiTlsKey?: string;
  insecurePlaintextStream?: boolean;
}

function readPem(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (error) {
    throw new CliError(`error: cannot read the ${what} ${file}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
  }
}

/** --ca-cert and --ca-key go together; the certificate file may carry the chain up to the organisation's root. */
export function operatorCa(flags: { caCert?: string; caKey?: string }): { certPem: string; keyPem: string } | undefined {
  if (flags.caCert === undefined && flags.caKey === undefined) return undefined;
  if (flags.caCert === undefined || flags.caKey === undefined) throw new CliError('error: --ca-cert and --ca-key go together');
  return { certPem: readPem(flags.caCert, 'CA certificate'), keyPem: readPem(flags.caKey, 'CA key') };
}

/** TLS and auth to etcd from the --etcd-* flags (the password from a file or $WEFT_ETCD_PASSWORD, never from the command line). */
export function etcdSecurity(
  flags: Pick<ControlPlaneFlags, 'etcdCa' | 'etcdCert' | 'etcdKey' | 'etcdUser' | 'etcdPasswordFile'>,
  env: NodeJS.ProcessEnv = process.env,
): { tls?: { ca: Buffer; cert?: Buffer; key?: Buffer }; auth?: { username: string; password: string } } {
  const result: ReturnType<typeof etcdSecurity> = {};
  if ((flags.etcdCert === undefined) !== (flags.etcdKey === undefined)) throw new CliError('error: --etcd-cert and --etcd-key go together');
  if (flags.etcdCert !== undefined && flags.etcdCa === undefined) throw new CliError('error: --etcd-cert needs --etcd-ca (the CA that signed etcd\'s certificate)');
  if (flags.etcdCa !== undefined) {
    result.tls = { ca: Buffer.from(readPem(flags.etcdCa, 'etcd CA certificate')) };
    if (flags.etcdCert !== undefined && flags.etcdKey !== undefined) {
      result.tls.cert = Buffer.from(readPem(flags.etcdCert, 'etcd client certificate'));
      result.tls.key = Buffer.from(readPem(flags.etcdKey, 'etcd client key'));
    }
  }
  if (flags.etcdUser !== undefined) {
    const password = flags.etcdPasswordFile !== undefined ? readPem(flags.etcdPasswordFile, 'etcd password file').replace(/\r?\n$/, '') : env.WEFT_ETCD_PASSWORD;
    if (!password) throw new CliError('error: --etcd-user needs a password: --etcd-password-file FILE or $WEFT_ETCD_PASSWORD');
    result.auth = { username: flags.etcdUser, password };
  } else if (flags.etcdPasswordFile !== undefined) {
    throw new CliError('error: --etcd-password-file needs --etcd-user');
  }
  return result;
}

/** The secret that seals the shared CA key in the store: --ca-encryption-key-file, else $WEFT_CA_ENCRYPTION_KEY. */
export function caEncryptionKey(flags: { caEncryptionKeyFile?: string }, env: NodeJS.ProcessEnv = process.env): Buffer | undefined {
  if (flags.caEncryptionKeyFile !== undefined) return Buffer.from(readPem(flags.caEncryptionKeyFile, 'CA encryption key').trim(), 'utf8');
  const fromEnv = env.WEFT_CA_ENCRYPTION_KEY;
  return fromEnv ? Buffer.from(fromEnv.trim(), 'utf8') : undefined;
}

export function controlPlaneCommand(): Command {
  return new Command('control-plane')
    .description('run the control plane: store, compiler, proxy config stream, REST API')
    .option('--data-dir <dir>', 'keep the config in SQLite under this directory (default: in memory, lost on exit)')
    .option('--api-host <host>', 'address of the REST API', '127.0.0.1')
    .option('--api-port <port>', 'port of the REST API (0 = any)', parsePort, 15000)
    .option('--api-tls-cert <file>', 'the REST API serves HTTPS with this certificate (PEM, its chain after it); with --api-tls-key')
    .option('--api-tls-key <file>', "the private key of --api-tls-cert (PEM; keep it mode 0600)")
    .option('--api-token-file <file>', 'the REST API asks for one of the tokens in this file (one per line, at least 16 characters): "Authorization: Bearer <token>", $WEFT_API_TOKEN for the CLI')
    .option('--stream-host <host>', 'address of the proxy config stream', '127.0.0.1')
    .option('--stream-port <port>', 'port of the proxy config stream (0 = any)', parsePort, 15010)
    .option('--advertise-address <host>', 'on etcd: the address other replicas reach this one\'s stream port at, to show every replica\'s proxies and traffic (default: --stream-host, or this host\'s first non-loopback address when that is 0.0.0.0)')
    .option('--replica-name <name>', 'this replica\'s name in `weft status` and in the leader election (default: host-pid-random)')
    .option('--lease-ttl <duration>', 'how long a proxy registration outlives its last heartbeat', parseDuration, 10_000)
    .addOption(new Option('--debounce <duration>', 'push changes closer together than this as one snapshot').argParser(parseDuration))
    .option('--store <url>', 'keep the config in etcd instead: etcd://host1:2379,host2:2379')
    .option('--etcd-prefix <prefix>', 'key prefix of weft\'s objects in etcd', '/weft')
    .option('--etcd-ca <file>', 'TLS to etcd: the CA certificate that signed etcd\'s (use with etcds://)')
    .option('--etcd-cert <file>', 'TLS to etcd: a client certificate, when etcd runs with --client-cert-auth')
    .option('--etcd-key <file>', 'TLS to etcd: the client certificate\'s key')
    .option('--etcd-user <name>', 'etcd auth: the user (password from --etcd-password-file or $WEFT_ETCD_PASSWORD)')
    .option('--etcd-password-file <file>', 'etcd auth: a file holding the password')
    .option('--ca-cert <file>', "the mesh CA's certificate (an intermediate under your root) followed by its chain up to the root (default: a root generated under --data-dir)")
    .option('--ca-key <file>', "the mesh CA's private key (PEM, unencrypted; keep it mode 0600)")
    .option('--ca-encryption-key-file <file>', 'keep the mesh CA in the store, its key sealed with this secret, so that every replica signs with it (default: $WEFT_CA_ENCRYPTION_KEY; make one with openssl rand -base64 32)')
    .option('--cert-ttl <duration>', 'lifetime of workload certificates; proxies renew them at half life', parseDuration, 24 * 3_600_000)
    .option('--trust-domain <domain>', "trust domain of a newly generated root (default: the stored MeshConfig's, else cluster.local)")
    .option('--insecure-local-tokens', 'local mode: anyone on this host may create proxy bootstrap tokens with "weft token create" and rotate the CA (with --api-token-file, holders of an API token may, from any host)')
    .option('--insecure-plaintext-stream', 'the stream port also takes cleartext HTTP/2 from other hosts (it always serves TLS, and cleartext to this host); tokens then cross the network in the clear')
    .addOption(new Option('--exit-on-stdin-close', 'stop when stdin closes (harnesses use it so nothing outlives them)').hideHelp())
    .action(async (flags: ControlPlaneFlags) => {
      const [{ startControlPlane }, { createLogger }, { systemClock }] = await Promise.all([
        import('../control/main.ts'),
        import('../telemetry/logger.ts'),
        import('../telemetry/clock.ts'),
      ]);
      const ca = operatorCa(flags);
      const caSecret = caEncryptionKey(flags);
      if (ca && caSecret) throw new CliError('error: --ca-cert/--ca-key and a CA encryption key are exclusive: the CA comes from your files or from the store');
      const logger = createLogger('control-plane');
      let etcd: { endpoints: string[]; prefix: string; tls?: { ca: Buffer; cert?: Buffer; key?: Buffer }; auth?: { username: string; password: string } } | undefined;
      if (flags.store !== undefined) {
        if (flags.dataDir) throw new CliError('error: --store etcd://... and --data-dir are exclusive: the config lives in one place');
        const { parseEtcdStoreUrl } = await import('../control/store/etcd-url.ts');
        const endpoints = parseEtcdStoreUrl(flags.store);
        if (!endpoints) throw new CliError(`error: --store ${flags.store}: weft knows etcd://host:port[,host:port...] and etcds://... for TLS (the embedded store is --data-dir)`);
        etcd = { endpoints, prefix: flags.etcdPrefix ?? '/weft', ...etcdSecurity(flags) };
        if (endpoints[0]!.startsWith('https://') && !etcd.tls) throw new CliError('error: etcds:// needs --etcd-ca (the CA that signed etcd\'s certificate)');
      } else if ([flags.etcdCa, flags.etcdCert, flags.etcdKey, flags.etcdUser].some((f) => f !== undefined)) {
        throw new CliError('error: the --etcd-* flags need --store etcd://... or etcds://...');
      }
      if (flags.store === undefined && !flags.dataDir) logger.warn('no --data-dir: the config is kept in memory and lost when the control plane stops');
      const apiTokens = await readApiTokens(flags.apiTokenFile);
      const apiTls = readApiTls(flags);
      if (!apiTokens && !isLoopbackHost(flags.apiHost)) {
        logger.warn({ apiHost: flags.apiHost }, 'the REST API takes requests from other hosts without a token: anyone who reaches it can change the mesh; give --api-token-file');
      } else if (apiTokens && !apiTls && !isLoopbackHost(flags.apiHost)) {
        logger.warn({ apiHost: flags.apiHost }, 'API tokens from other hosts cross the network in the clear: give --api-tls-cert and --api-tls-key');
      }
      const controlPlane = await startControlPlane({
        ...(flags.dataDir ? { dataDir: resolve(flags.dataDir) } : {}),
        ...(etcd ? { etcd } : {}),
        apiHost: flags.apiHost,
        apiPort: flags.apiPort,
        ...(apiTokens ? { apiTokens } : {}),
        ...(apiTls ? { apiTls } : {}),
        streamHost: flags.streamHost,
        streamPort: flags.streamPort,
        ...(flags.advertiseAddress ? { advertiseHost: flags.advertiseAddress } : {}),
        ...(flags.replicaName ? { replicaName: flags.replicaName } : {}),
        leaseTtlMs: flags.leaseTtl,
        ...(flags.debounce !== undefined ? { debounceMs: flags.debounce } : {}),
        ...(ca ? { ca } : {}),
        ...(caSecret ? { caEncryptionKey: caSecret } : {}),
        certTtlMs: flags.certTtl,
        ...(flags.trustDomain !== undefined ? { trustDomain: flags.trustDomain } : {}),
        localTokens: flags.insecureLocalTokens === true,
        ...(flags.insecurePlaintextStream ? { plaintextStreamFromAnyHost: true } : {}),
        logger,
        clock: systemClock,
      });
      const stopWatchingTokens = apiTokens && flags.apiTokenFile ? watchApiTokens(apiTokens, flags.apiTokenFile, logger) : undefined;
      stopOnSignals(
        async (why) => {
          logger.info({ why }, 'stopping');
          stopWatchingTokens?.();
          await controlPlane.close();
        },
        { forceAfterMs: 15_000, onStdinClose: flags.exitOnStdinClose === true },
      );
      announceReady({ api: controlPlane.apiUrl, stream: controlPlane.streamUrl });
    });
}

/** The API's tokens from --api-token-file, or undefined without one; a file that cannot be used is an error that names it. */
async function readApiTokens(file: string | undefined) {
  if (file === undefined) return undefined;
  const { ApiTokens } = await import('../control/api/auth.ts');
  try {
    return ApiTokens.fromFile(file);
  } catch (error) {
    throw new CliError(`error: ${(error as Error).message}`);
  }
}

/** How often the token file is looked at: an edit takes effect within this, without a restart. */
const TOKEN_FILE_POLL_MS = 2000;

/**
 * Reloads the API tokens when their file changes (adding, revoking or rotating one needs no restart). A file that
 * cannot be used is logged and ignored: the tokens in force stay, so a half-written edit locks nobody out.
 */
function watchApiTokens(tokens: ApiTokens, file: string, logger: Logger): () => void {
  const onChange = (current: Stats, previous: Stats) => {
    if (current.mtimeMs === previous.mtimeMs && current.size === previous.size && current.ino === previous.ino) return;
    try {
      tokens.reload(file);
      logger.info({ file }, 'API tokens reloaded');
    } catch (error) {
      logger.error({ file, err: error }, 'API token file not reloaded: the tokens in force stay');
    }
  };
  watchFile(file, { interval: TOKEN_FILE_POLL_MS, persistent: false }, onChange);
  return () => unwatchFile(file, onChange);
}

/** --api-tls-cert and --api-tls-key, read; both or neither. */
function readApiTls(flags: ControlPlaneFlags): { cert: Buffer; key: Buffer } | undefined {
  if (flags.apiTlsCert === undefined && flags.apiTlsKey === undefined) return undefined;
  if (flags.apiTlsCert === undefined || flags.apiTlsKey === undefined) throw new CliError('error: --api-tls-cert and --api-tls-key go together');
  const read = (flag: string, file: string) => {
    try {
      return readFileSync(file);
    } catch (error) {
      throw new CliError(`error: ${flag} ${file}: ${(error as Error).message}`);
    }
  };
  const tls = { cert: read('--api-tls-cert', flags.apiTlsCert), key: read('--api-tls-key', flags.apiTlsKey) };
  try {
    createSecureContext(tls);
  } catch (error) {
    throw new CliError(`error: --api-tls-cert ${flags.apiTlsCert} with --api-tls-key ${flags.apiTlsKey}: ${(error as Error).message}`);
  }
  return tls;
}
