// The in-memory store: everything the SQLite store does except surviving a restart; for tests and throwaway meshes.
import { LocalStore, type LocalStoreOptions } from './local-store.ts';

export type MemoryStoreOptions = LocalStoreOptions;

export class MemoryStore extends LocalStore {
  constructor(options: MemoryStoreOptions) {
    super('memory', options);
  }
}
