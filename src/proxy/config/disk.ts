// The last good snapshot on disk: written atomically after each apply, read at start to serve without the control plane.
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export const SNAPSHOT_FILE = 'snapshot.json';

/** The parsed file, or undefined when there is none. Unreadable JSON throws. */
export async function readSnapshotFile(dataDir: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(join(dataDir, SNAPSHOT_FILE), 'utf8');
  } catch (error) {
    if ((error as { code?: string }).code === 'ENOENT') return undefined;
    throw error;
  }
  return JSON.parse(text) as unknown;
}

/** Write to a temporary file, then rename: a crash leaves the old file or the new one, never half of one. */
export async function writeSnapshotFile(dataDir: string, snapshot: unknown): Promise<void> {
  await mkdir(dataDir, { recursive: true });
  const target = join(dataDir, SNAPSHOT_FILE);
  const temporary = `${target}.${process.pid}.tmp`;
  // Owner-only: a gateway's snapshot carries its listeners' private keys.
  await writeFile(temporary, JSON.stringify(snapshot), { mode: 0o600 });
  await rename(temporary, target);
}
