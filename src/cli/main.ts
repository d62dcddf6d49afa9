// The weft command line: registers one command per file and turns failures into messages and exit codes.
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { applyCommand } from './apply.ts';
import { caCommand } from './ca.ts';
import { checkCommand } from './check.ts';
import { ApiError, ServerUnreachableError } from './client.ts';
import { controlPlaneCommand } from './control-plane.ts';
import { dashboardCommand } from './dashboard.ts';
import { deleteCommand } from './delete.ts';
import { echoCommand } from './echo.ts';
import { explainCommand } from './explain.ts';
import { formatApiError } from './format.ts';
import { getCommand } from './get.ts';
import { CliError } from './options.ts';
import { prometheusConfigCommand } from './prometheus-config.ts';
import { proxyCommand } from './proxy.ts';
import { statusCommand } from './status.ts';
import { tokenCommand } from './token.ts';
import { topCommand } from './top.ts';
import { tapCommand } from './tap.ts';
import { upCommand } from './up.ts';
import { schemaCommand } from './schema.ts';

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
  .showHelpAfterError('(run "weft help <command>" for its options)')
  .addCommand(upCommand())
  .addCommand(applyCommand())
  .addCommand(getCommand())
  .addCommand(deleteCommand())
  .addCommand(statusCommand())
  .addCommand(checkCommand())
  .addCommand(topCommand())
  .addCommand(tapCommand())
  .addCommand(prometheusConfigCommand())
  .addCommand(explainCommand())
  .addCommand(dashboardCommand())
  .addCommand(tokenCommand())
  .addCommand(caCommand())
  .addCommand(controlPlaneCommand())
  .addCommand(proxyCommand())
  .addCommand(echoCommand())
  .addCommand(schemaCommand());

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
