// Hash routes of the dashboard: #/topology, #/services/<ns>/<name>, #/proxies, #/config[/<kind>/<ns>/<name>]. Pure: no DOM.
//
// Hash routing needs nothing from the server but index.html at /, so that the
// control plane serves plain files and every deep link still works.

export type Route =
  | { page: 'topology' }
  | { page: 'service'; namespace: string; name: string }
  | { page: 'proxies' }
  | { page: 'config'; kind?: string; namespace?: string; name?: string };

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
      return { page: 'proxies' };
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
      return '#/proxies';
    case 'config':
      if (!route.kind) return '#/config';
      if (!route.name) return `#/config/${enc(route.kind)}`;
      return `#/config/${enc(route.kind)}/${route.namespace ? enc(route.namespace) : '-'}/${enc(route.name)}`;
  }
}
