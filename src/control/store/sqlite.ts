// The embedded store: the shared in-memory store written through to SQLite (node:sqlite, WAL) under the data dir.
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync, type StatementSync } from 'node:sqlite';
import { ErrorCodes, WeftError } from '../../api/errors.ts';
import { LocalStore, type Commit, type InitialState, type LocalStoreOptions, type Persistence } from './local-store.ts';
import type { StoredResource } from './types.ts';

export const SQLITE_FILE = 'weft.db';
const SCHEMA_VERSION = '1';

export interface SqliteStoreOptions extends LocalStoreOptions {
  dataDir: string;
}

/**
 * Objects are read from memory and written through to SQLite, one transaction
 * per write. The database is opened in exclusive locking mode: a second
 * control plane on the same data dir fails at once instead of serving a view
 * that silently diverges from the first one's.
 */
export class SqliteStore extends LocalStore {
  readonly path: string;

  private constructor(options: SqliteStoreOptions, path: string, persistence: Persistence, initial: InitialState) {
    super('sqlite', options, persistence, initial);
    this.path = path;
  }

  static open(options: SqliteStoreOptions): SqliteStore {
    mkdirSync(options.dataDir, { recursive: true });
    const path = join(options.dataDir, SQLITE_FILE);
    let db: DatabaseSync | undefined;
    try {
      db = new DatabaseSync(path, { timeout: 200 });
      db.exec('PRAGMA journal_mode = WAL');
      db.exec('PRAGMA locking_mode = EXCLUSIVE');
      db.exec('PRAGMA synchronous = NORMAL');
      db.exec('BEGIN IMMEDIATE');
      db.exec(`
        CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS objects (key TEXT PRIMARY KEY, lease TEXT, object TEXT NOT NULL);
        CREATE TABLE IF NOT EXISTS leases (id TEXT PRIMARY KEY, ttl_ms INTEGER NOT NULL, expires_at INTEGER NOT NULL);
      `);
      const schema = db.prepare(`SELECT value FROM meta WHERE name = 'schema'`).get() as { value: string } | undefined;
      if (!schema) db.prepare(`INSERT INTO meta (name, value) VALUES ('schema', ?)`).run(SCHEMA_VERSION);
      else if (schema.value !== SCHEMA_VERSION) throw new Error(`unknown schema version ${schema.value} (this weft knows ${SCHEMA_VERSION})`);
      // A restart must not drop every registered endpoint: give each proxy a full TTL to reconnect and heartbeat.
      db.prepare('UPDATE leases SET expires_at = ? + ttl_ms').run(options.clock.now());
      db.exec('COMMIT');
      const initial = load(db);
      return new SqliteStore(options, path, new SqlitePersistence(db), initial);
    } catch (error) {
      try {
        if (db?.isTransaction) db.exec('ROLLBACK');
        db?.close();
      } catch {
        // Already failing; the first error is the one to report.
      }
      throw new WeftError(ErrorCodes.STORE_UNAVAILABLE, `cannot open ${path}: ${(error as Error).message}`, error);
    }
  }
}

function load(db: DatabaseSync): InitialState {
  const revisionRow = db.prepare(`SELECT value FROM meta WHERE name = 'revision'`).get() as { value: string } | undefined;
  const leases = (db.prepare('SELECT id, ttl_ms, expires_at FROM leases').all() as { id: string; ttl_ms: number; expires_at: number }[]).map(
    (row) => ({ id: row.id, ttlMs: Number(row.ttl_ms), expiresAt: Number(row.expires_at) }),
  );
  const objects = (db.prepare('SELECT key, lease, object FROM objects ORDER BY key').all() as { key: string; lease: string | null; object: string }[]).map(
    (row) => ({ key: row.key, lease: row.lease ?? undefined, object: JSON.parse(row.object) as StoredResource }),
  );
  return { revision: revisionRow ? Number(revisionRow.value) : 0, objects, leases };
}

class SqlitePersistence implements Persistence {
  private readonly db: DatabaseSync;
  private readonly putObject: StatementSync;
  private readonly deleteObject: StatementSync;
  private readonly putLease: StatementSync;
  private readonly deleteLease: StatementSync;
  private readonly setRevision: StatementSync;

  constructor(db: DatabaseSync) {
    this.db = db;
    this.putObject = db.prepare('INSERT OR REPLACE INTO objects (key, lease, object) VALUES (?, ?, ?)');
    this.deleteObject = db.prepare('DELETE FROM objects WHERE key = ?');
    this.putLease = db.prepare('INSERT OR REPLACE INTO leases (id, ttl_ms, expires_at) VALUES (?, ?, ?)');
    this.deleteLease = db.prepare('DELETE FROM leases WHERE id = ?');
    this.setRevision = db.prepare(`INSERT OR REPLACE INTO meta (name, value) VALUES ('revision', ?)`);
  }

  commit(commit: Commit): void {
    this.db.exec('BEGIN IMMEDIATE');
    try {
      for (const { key, object, lease } of commit.putObjects) this.putObject.run(key, lease ?? null, JSON.stringify(object));
      for (const key of commit.deleteObjects) this.deleteObject.run(key);
      for (const lease of commit.putLeases) this.putLease.run(lease.id, lease.ttlMs, lease.expiresAt);
      for (const id of commit.deleteLeases) this.deleteLease.run(id);
      this.setRevision.run(String(commit.revision));
      this.db.exec('COMMIT');
    } catch (error) {
      if (this.db.isTransaction) this.db.exec('ROLLBACK');
      throw error;
    }
  }

  close(): void {
    if (this.db.isOpen) this.db.close();
  }
}
