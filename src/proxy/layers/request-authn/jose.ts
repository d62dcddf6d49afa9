// jose, loaded the first time a snapshot's RequestAuthentication rule is compiled: a proxy with none never holds it (~1.7 MiB).
import { createRequire } from 'node:module';
import type * as Jose from 'jose';

const require = createRequire(import.meta.url);
let loaded: typeof Jose | undefined;

/** The jose module, loaded synchronously on first use (Node loads an ES module through require). */
export function jose(): typeof Jose {
  return (loaded ??= require('jose') as typeof Jose);
}
