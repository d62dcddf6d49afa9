// Bootstrap-token records kept in the control plane's store, one internal object per token hash, so that every replica and restart sees them.
import { objectKey } from '../../api/meta.ts';
import type { Store } from '../store/types.ts';
import type { TokenRecord, TokenStorage } from './tokens.ts';

/** Not a kind of the API: the REST API and the compiler never list it. */
export const TOKEN_API_VERSION = 'internal.weft.dev/v1';
export const TOKEN_KIND = 'BootstrapToken';

export class StoreTokenStorage implements TokenStorage {
  private readonly store: Store;

  constructor(store: Store) {
    this.store = store;
  }

  async get(hash: string): Promise<TokenRecord | undefined> {
    const object = await this.store.get(keyOf(hash));
    return object ? (object.spec as TokenRecord) : undefined;
  }

  async put(hash: string, record: TokenRecord): Promise<void> {
    await this.store.put({ apiVersion: TOKEN_API_VERSION, kind: TOKEN_KIND, metadata: { name: hash }, spec: record });
  }

  async delete(hash: string): Promise<void> {
    await this.store.delete(keyOf(hash));
  }
}

function keyOf(hash: string): string {
  return objectKey({ apiVersion: TOKEN_API_VERSION, kind: TOKEN_KIND, name: hash });
}
