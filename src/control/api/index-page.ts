// The HTML page at GET / when the dashboard is not built: how to build it, and links into the API meanwhile.
import { KINDS, apiVersionOf } from '../../api/resources.ts';

export function indexPage(): string {
  const kinds = KINDS.map((k) => {
    const base = k.group ? `/apis/${apiVersionOf(k)}` : `/api/${apiVersionOf(k)}`;
    return `<li><a href="${base}/${k.plural}">${k.kind}</a> <code>${base}/${k.plural}</code></li>`;
  }).join('\n      ');
  return `<!doctype html>
<html lang="en">
  <head>
    <meta charset="utf-8">
    <title>weft</title>
    <style>body{font-family:system-ui,sans-serif;max-width:44rem;margin:2rem auto;padding:0 1rem;line-height:1.5}code{color:#555}</style>
  </head>
  <body>
    <h1>weft</h1>
    <p>The control plane of this mesh. The dashboard is not built in this checkout: run <code>npm run build:dashboard</code> (<code>npm ci</code> builds it too) and reload. Meanwhile, the API:</p>
    <ul>
      <li><a href="/weft/v1/status">Status</a> <code>/weft/v1/status</code></li>
      <li><a href="/weft/v1/proxies">Proxies</a> <code>/weft/v1/proxies</code></li>
      <li>Live changes <code>GET /weft/v1/events</code> (Server-Sent Events)</li>
      <li>Apply <code>POST /weft/v1/apply</code> (JSON <code>{"items": [...]}</code> or YAML; <code>?dryRun=All</code> to see what would change)</li>
    </ul>
    <h2>Resources</h2>
    <ul>
      ${kinds}
    </ul>
  </body>
</html>
`;
}
