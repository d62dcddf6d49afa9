// Serves the built dashboard (dist/dashboard) at /: content types, caching, ETags, gzip, and no way out of its directory.
import { createHash } from 'node:crypto';
import { readFile, stat } from 'node:fs/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';

/** Where `npm run build:dashboard` (and `npm ci`, through `prepare`) writes the dashboard. */
export const DEFAULT_DASHBOARD_DIR = fileURLToPath(new URL('../../../dist/dashboard/', import.meta.url));

const CONTENT_TYPES: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.ico': 'image/x-icon',
  '.woff2': 'font/woff2',
  '.txt': 'text/plain; charset=utf-8',
  '.webmanifest': 'application/manifest+json',
};

/** Worth compressing: text. Images and fonts are compressed already. */
const COMPRESSIBLE = new Set(['.html', '.js', '.mjs', '.css', '.json', '.map', '.svg', '.txt']);

/**
 * The page's own scripts and styles only; inline style attributes are allowed
 * because cytoscape and uPlot position their elements with them.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "font-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  "frame-ancestors 'none'",
].join('; ');

interface CachedFile {
  mtimeMs: number;
  size: number;
  body: Buffer;
  gzipped: Buffer | undefined;
  etag: string;
}

export interface StaticFiles {
  /** Whether a built dashboard is there (index.html exists). */
  available(): Promise<boolean>;
  /** Answers GET/HEAD for `pathname` and returns true, or returns false when there is no such file. */
  serve(req: IncomingMessage, res: ServerResponse, pathname: string): Promise<boolean>;
}

/**
 * Maps a URL path to a file under `root`, or undefined when the path is not a
 * plain file name there: encoded slashes and NULs, dot segments, hidden files
 * and anything that resolves outside `root` are refused, not normalised.
 */
export function safeFilePath(root: string, pathname: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(pathname);
  } catch {
    return undefined;
  }
  if (!decoded.startsWith('/') || /[\0\\]/.test(decoded) || /%2f|%5c/i.test(pathname)) return undefined;
  const segments = decoded.split('/').slice(1);
  if (segments.some((s) => s === '..' || s === '.' || s.startsWith('.'))) return undefined;
  const relative = decoded === '/' ? 'index.html' : segments.join('/');
  if (relative === '' || relative.endsWith('/')) return undefined;
  const base = resolve(root);
  const file = resolve(base, relative);
  return file.startsWith(base + sep) ? file : undefined;
}

export function staticFiles(root: string): StaticFiles {
  const cache = new Map<string, CachedFile>();

  async function load(file: string): Promise<CachedFile | undefined> {
    let info;
    try {
      info = await stat(file);
    } catch {
      return undefined;
    }
    if (!info.isFile()) return undefined;
    const cached = cache.get(file);
    // A rebuild while the control plane runs replaces the files: stat on every request notices.
    if (cached && cached.mtimeMs === info.mtimeMs && cached.size === info.size) return cached;
    const body = await readFile(file);
    const entry: CachedFile = {
      mtimeMs: info.mtimeMs,
      size: info.size,
      body,
      gzipped: COMPRESSIBLE.has(extname(file)) && body.length > 1024 ? gzipSync(body) : undefined,
      etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"`,
    };
    cache.set(file, entry);
    return entry;
  }

  return {
    async available() {
      return (await load(join(root, 'index.html'))) !== undefined;
    },

    async serve(req, res, pathname) {
      const file = safeFilePath(root, pathname);
      if (!file) return false;
      const entry = await load(file);
      if (!entry) return false;
      const ext = extname(file);
      const headers: Record<string, string> = {
        'content-type': CONTENT_TYPES[ext] ?? 'application/octet-stream',
        etag: entry.etag,
        'x-content-type-options': 'nosniff',
        // Vite names every asset after its content hash: a changed file has a new name.
        'cache-control': pathname.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-cache',
        vary: 'accept-encoding',
      };
      if (ext === '.html') {
        headers['content-security-policy'] = CONTENT_SECURITY_POLICY;
        headers['x-frame-options'] = 'DENY';
        headers['referrer-policy'] = 'no-referrer';
      }
      const conditional = req.headers['if-none-match'];
      if (conditional && conditional.split(',').some((tag) => tag.trim().replace(/^W\//, '') === entry.etag)) {
        res.writeHead(304, headers);
        res.end();
        return true;
      }
      const gzip = entry.gzipped && /\bgzip\b/.test(String(req.headers['accept-encoding'] ?? ''));
      const body = gzip ? entry.gzipped! : entry.body;
      if (gzip) headers['content-encoding'] = 'gzip';
      headers['content-length'] = String(body.length);
      res.writeHead(200, headers);
      res.end(req.method === 'HEAD' ? undefined : body);
      return true;
    },
  };
}
