// `weft apikey create|list|revoke`: the API keys a RequestAuthentication's apiKeys accept, kept in a Secret (each key of it a client id); a new key is made here and printed once.
import { randomBytes } from 'node:crypto';
import { Command } from 'commander';
import type { Resource } from '../api/meta.ts';
import { findKind } from '../api/resources.ts';
import { ApiError, WeftClient } from './client.ts';
import { CliError, resolveServer } from './options.ts';

interface SecretFlags {
  secret: string;
  namespace: string;
}

/** What Kubernetes allows as a key of a Secret's data. */
const CLIENT_ID = /^[-._a-zA-Z0-9]{1,253}$/;
/** How often a write that lost a race with another writer is tried again. */
const ATTEMPTS = 5;

/** A Secret as the API serves it: its content under spec (KindInfo.topLevelFields). */
type SecretObject = Resource<{ type?: string; data?: Record<string, string>; stringData?: Record<string, string> }>;

const SECRET = findKind('Secret')!;

function clientOf(flags: SecretFlags, command: Command): WeftClient {
  return new WeftClient(resolveServer(command.optsWithGlobals<{ server?: string }>().server));
}

async function readSecret(client: WeftClient, flags: SecretFlags): Promise<SecretObject | undefined> {
  try {
    return (await client.get(SECRET, flags.secret, flags.namespace)) as SecretObject;
  } catch (error) {
    if (error instanceof ApiError && error.status.code === 404) return undefined;
    throw error;
  }
}

function clients(secret: SecretObject | undefined): string[] {
  return [...new Set([...Object.keys(secret?.spec.data ?? {}), ...Object.keys(secret?.spec.stringData ?? {})])].sort();
}

/** Reads the Secret, changes it, and writes it back only if nobody wrote in between (else reads again). */
async function update(client: WeftClient, flags: SecretFlags, change: (secret: SecretObject | undefined) => SecretObject): Promise<void> {
  for (let attempt = 1; ; attempt++) {
    const current = await readSecret(client, flags);
    const next = change(current);
    next.metadata = { ...next.metadata, resourceVersion: current?.metadata.resourceVersion ?? '0' };
    try {
      await client.put(SECRET, next);
      return;
    } catch (error) {
      const raced = error instanceof ApiError && error.status.code === 409;
      if (!raced || attempt >= ATTEMPTS) throw error;
    }
  }
}

function withSecretFlags(command: Command): Command {
  return command
    .requiredOption('--secret <name>', "the Secret holding the keys (the one a RequestAuthentication's apiKeys.credentialRefs names)")
    .option('-n, --namespace <ns>', "the Secret's namespace", 'default');
}

export function apikeyCommand(): Command {
  const apikey = new Command('apikey').description("API keys for RequestAuthentication apiKeys: each client's key kept in a Secret");
  withSecretFlags(
    apikey
      .command('create <client>')
      .description('make a random key for a client, add it to the Secret (created if missing) and print it once; a gateway takes it with its next snapshot'),
  ).action(async (clientId: string, flags: SecretFlags, command: Command) => {
    if (!CLIENT_ID.test(clientId)) throw new CliError(`error: client id "${clientId}": letters, digits, "-", "_" and "." only (it is a key of the Secret)`);
    const key = `wk_${randomBytes(24).toString('base64url')}`;
    await update(clientOf(flags, command), flags, (secret) => {
      if (clients(secret).includes(clientId)) {
        throw new CliError(`error: client ${clientId} already has a key in Secret ${flags.namespace}/${flags.secret}: revoke it first, or give the new key another client id (${clientId}-2) to rotate without a gap`);
      }
      if (!secret) return { apiVersion: 'v1', kind: 'Secret', metadata: { name: flags.secret, namespace: flags.namespace }, spec: { type: 'Opaque', stringData: { [clientId]: key } } };
      return { ...secret, spec: { ...secret.spec, stringData: { ...(secret.spec.stringData ?? {}), [clientId]: key } } };
    });
    process.stdout.write(`${key}\n`);
  });
  withSecretFlags(apikey.command('list').description("the clients that have a key in the Secret (never the keys)")).action(async (flags: SecretFlags, command: Command) => {
    const secret = await readSecret(clientOf(flags, command), flags);
    if (!secret) throw new CliError(`error: there is no Secret ${flags.namespace}/${flags.secret}`);
    const names = clients(secret);
    process.stdout.write(names.length > 0 ? `${names.join('\n')}\n` : `No client has a key in Secret ${flags.namespace}/${flags.secret}.\n`);
  });
  withSecretFlags(apikey.command('revoke <client>').description("remove a client's key from the Secret; gateways refuse it with their next snapshot")).action(
    async (clientId: string, flags: SecretFlags, command: Command) => {
      await update(clientOf(flags, command), flags, (secret) => {
        if (!secret || !clients(secret).includes(clientId)) throw new CliError(`error: client ${clientId} has no key in Secret ${flags.namespace}/${flags.secret}`);
        const without = (values: Record<string, string> | undefined) => (values ? Object.fromEntries(Object.entries(values).filter(([name]) => name !== clientId)) : undefined);
        const { data, stringData, ...rest } = secret.spec;
        const kept = { data: without(data), stringData: without(stringData) };
        return { ...secret, spec: { ...rest, ...(kept.data ? { data: kept.data } : {}), ...(kept.stringData ? { stringData: kept.stringData } : {}) } };
      });
      process.stdout.write(`revoked the key of ${clientId}\n`);
    },
  );
  return apikey;
}
