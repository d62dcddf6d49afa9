// Hash routes of the dashboard: #/topology, #/services/<ns>/<name>, #/proxies[/<ns>/<instance>], #/config[/<kind>/<ns>/<name>], #/traffic[/<ns>/<target>], #/explain. Pure: no DOM.
//
// Hash routing needs nothing from the server but index.html at /, so that the
// control plane serves plain files and every deep link still works.

export type Route =
  | { page: 'topology' }
  | { page: 'service'; namespace: string; name: string }
  /** With a proxy's id ("default/frontend-0"): its running config and live backends under the table. */
  | { page: 'proxies'; id?: string }
  | { page: 'config'; kind?: string; namespace?: string; name?: string }
  /** Live traffic (tap); a target ("svc/catalog", "workload/frontend") in a namespace starts tapping it. */
  | { page: 'traffic'; namespace?: string; target?: string }
  | { page: 'explain' };

export function parseRoute(hash: string): Route {
  const parts = hash
    .replace(/^#\/?/, '')
    .split('?')[0]!
    .split('/')
    .filter(Boolean)
    .map((p) => {
      try {
        return decodeURIComponent(p);
      } catch {
        return p;
      }
    });
  switch (parts[0]) {
    case 'services':
      if (parts[1] && parts[2]) return { page: 'service', namespace: parts[1], name: parts[2] };
      return { page: 'topology' };
    case 'proxies':
      return parts[1] && parts[2] ? { page: 'proxies', id: `${parts[1]}/${parts[2]}` } : { page: 'proxies' };
    case 'traffic':
      // #/traffic/<ns>/<kind>/<name>: the target keeps its kind ("svc/catalog").
      if (parts[1] && parts[2]) return { page: 'traffic', namespace: parts[1], target: parts.slice(2).join('/') };
      return { page: 'traffic' };
    case 'explain':
      return { page: 'explain' };
    case 'config': {
      const [, kind, namespaceOrName, name] = parts;
      if (!kind) return { page: 'config' };
      // Cluster-scoped objects have no namespace: #/config/MeshConfig/-/default.
      if (namespaceOrName === undefined) return { page: 'config', kind };
      return name === undefined
        ? { page: 'config', kind, name: namespaceOrName }
        : { page: 'config', kind, ...(namespaceOrName === '-' ? {} : { namespace: namespaceOrName }), name };
    }
    default:
      return { page: 'topology' };
  }
}

export function href(route: Route): string {
  const enc = encodeURIComponent;
  switch (route.page) {
    case 'topology':
      return '#/topology';
    case 'service':
      return `#/services/${enc(route.namespace)}/${enc(route.name)}`;
    case 'proxies':
      return route.id ? `#/proxies/${route.id.split('/').map(enc).join('/')}` : '#/proxies';
    case 'traffic':
      return route.namespace && route.target ? `#/traffic/${enc(route.namespace)}/${route.target.split('/').map(enc).join('/')}` : '#/traffic';
    case 'explain':
      return '#/explain';
    case 'config':
      if (!route.kind) return '#/config';
      if (!route.name) return `#/config/${enc(route.kind)}`;
      return `#/config/${enc(route.kind)}/${route.namespace ? enc(route.namespace) : '-'}/${enc(route.name)}`;
  }
}
