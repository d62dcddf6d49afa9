// The weft command line: registers one command per file and turns failures into messages and exit codes.
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { ApiError, ServerUnreachableError } from './client.ts';
import { formatApiError } from './format.ts';
import { CliError } from './options.ts';

/**
 * Every command, in help order, loaded on demand: a run loads only the module of the command it names (all of them
 * for help, an unknown word or none), so a long-lived `weft proxy` keeps no other command's code in memory.
 */
const COMMANDS: Record<string, () => Promise<Command>> = {
  up: async () => (await import('./up.ts')).upCommand(),
  apply: async () => (await import('./apply.ts')).applyCommand(),
  get: async () => (await import('./get.ts')).getCommand(),
  delete: async () => (await import('./delete.ts')).deleteCommand(),
  status: async () => (await import('./status.ts')).statusCommand(),
  check: async () => (await import('./check.ts')).checkCommand(),
  top: async () => (await import('./top.ts')).topCommand(),
  tap: async () => (await import('./tap.ts')).tapCommand(),
  'prometheus-config': async () => (await import('./prometheus-config.ts')).prometheusConfigCommand(),
  explain: async () => (await import('./explain.ts')).explainCommand(),
  dashboard: async () => (await import('./dashboard.ts')).dashboardCommand(),
  token: async () => (await import('./token.ts')).tokenCommand(),
  apikey: async () => (await import('./apikey.ts')).apikeyCommand(),
  ca: async () => (await import('./ca.ts')).caCommand(),
  'control-plane': async () => (await import('./control-plane.ts')).controlPlaneCommand(),
  proxy: async () => (await import('./proxy.ts')).proxyCommand(),
  echo: async () => (await import('./echo.ts')).echoCommand(),
  schema: async () => (await import('./schema.ts')).schemaCommand(),
};

/** The command word in argv: the first that is neither an option nor the value of the global --server. */
function requestedCommand(args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--server') i++;
    else if (!arg.startsWith('-')) return arg;
  }
  return undefined;
}

const { version } = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };

// `weft get ... | head` closes the pipe early: that is not an error.
process.stdout.on('error', (error: NodeJS.ErrnoException) => {
  if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
  throw error;
});

const program = new Command('weft')
  .description('weft: a service mesh written in TypeScript')
  .version(version)
  .option('--server <url>', 'control plane API (default: $WEFT_SERVER, a weft up running from ./.weft, or http://127.0.0.1:15000)')
  .showHelpAfterError('(run "weft help <command>" for its options)');
const requested = requestedCommand(process.argv.slice(2));
const wanted = requested !== undefined && Object.hasOwn(COMMANDS, requested) ? [requested] : Object.keys(COMMANDS);
for (const command of await Promise.all(wanted.map((name) => COMMANDS[name]!()))) program.addCommand(command);

function exitWith(code: number): void {
  process.exitCode = code;
  // Something started before the failure (a listener, a child) must not keep the process up.
  setTimeout(() => process.exit(code), 200).unref();
}

try {
  await program.parseAsync(process.argv);
} catch (error) {
  if (error instanceof CliError) {
    process.stderr.write(error.message + '\n');
    exitWith(error.exitCode);
  } else if (error instanceof ServerUnreachableError) {
    process.stderr.write(`error: ${error.message}\n`);
    exitWith(1);
  } else if (error instanceof ApiError) {
    process.stderr.write(formatApiError(error.status) + '\n');
    exitWith(1);
  } else {
    process.stderr.write(`weft: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    exitWith(1);
  }
}
