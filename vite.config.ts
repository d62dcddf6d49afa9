// Builds the dashboard (src/dashboard) into dist/dashboard, which the control plane serves at /. `npm run dev:dashboard` serves it live against a control plane on :15000.
import { fileURLToPath } from 'node:url';
import { defineConfig } from 'vite';
import preact from '@preact/preset-vite';

const apiServer = process.env.WEFT_SERVER ?? 'http://127.0.0.1:15000';

export default defineConfig({
  root: fileURLToPath(new URL('./src/dashboard/', import.meta.url)),
  base: '/',
  plugins: [preact()],
  build: {
    outDir: fileURLToPath(new URL('./dist/dashboard/', import.meta.url)),
    emptyOutDir: true,
    target: 'es2022',
    // cytoscape alone is ~400 kB minified; the pages that need YAML and charts load them on demand.
    chunkSizeWarningLimit: 700,
    reportCompressedSize: false,
  },
  server: {
    host: '127.0.0.1',
    proxy: Object.fromEntries(['/api', '/apis', '/weft', '/healthz'].map((prefix) => [prefix, { target: apiServer, changeOrigin: false }])),
  },
});
