// `weft dashboard`: prints the dashboard's URL (the control plane serves it at /) and opens it in a browser when there is one.
import { Command } from 'commander';
import { spawn } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { ServerUnreachableError } from './client.ts';
import { resolveServer } from './options.ts';

function onPath(command: string): boolean {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (!dir) continue;
    try {
      accessSync(join(dir, command), constants.X_OK);
      return true;
    } catch {
      // not here
    }
  }
  return false;
}

/**
 * How to open a URL here: $BROWSER first (the convention of xdg and many
 * CLIs), then the platform's opener. On Linux only with a display: xdg-open
 * on a headless server would start a text browser in the terminal or fail.
 */
export function browserCommand(env: NodeJS.ProcessEnv = process.env, platform: NodeJS.Platform = process.platform, exists = onPath): { command: string; args: string[] } | undefined {
  const browser = env.BROWSER?.split(':')[0]?.trim();
  if (browser) return { command: browser, args: [] };
  if (platform === 'darwin') return { command: 'open', args: [] };
  if (platform === 'win32') return { command: 'cmd', args: ['/c', 'start', '""'] };
  if ((env.DISPLAY || env.WAYLAND_DISPLAY) && exists('xdg-open')) return { command: 'xdg-open', args: [] };
  return undefined;
}

function open(url: string, how: { command: string; args: string[] }): Promise<boolean> {
  return new Promise((resolve) => {
    const child = spawn(how.command, [...how.args, url], { detached: true, stdio: 'ignore' });
    child.once('error', () => resolve(false));
    child.once('spawn', () => {
      child.unref();
      resolve(true);
    });
  });
}

export function dashboardCommand(): Command {
  return new Command('dashboard')
    .description('print the URL of the dashboard the control plane serves, and open it in a browser if there is one')
    .option('--no-open', 'only print the URL')
    .action(async (options: { open: boolean }, command: Command) => {
      const server = resolveServer(command.optsWithGlobals<{ server?: string }>().server).replace(/\/+$/, '');
      const url = `${server}/`;
      let page: string;
      try {
        const response = await fetch(url, { signal: AbortSignal.timeout(10_000) });
        page = await response.text();
      } catch (error) {
        const cause = (error as { cause?: { code?: string } }).cause?.code;
        throw new ServerUnreachableError(server, cause === 'ECONNREFUSED' ? 'connection refused' : (error as Error).name === 'TimeoutError' ? 'timed out' : (cause ?? (error as Error).message));
      }
      process.stdout.write(`Dashboard: ${url}\n`);
      if (!page.includes('id="app"')) {
        process.stderr.write('weft dashboard: this control plane has no built dashboard (it serves a page of API links); run "npm run build:dashboard" where it runs\n');
      }
      if (!options.open) return;
      const how = browserCommand();
      if (!how || !(await open(url, how))) process.stderr.write('weft dashboard: no browser to open here; open the URL above yourself\n');
    });
}
