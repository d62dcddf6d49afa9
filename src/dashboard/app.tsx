// The dashboard's frame: header with navigation, namespace filter and connection state; the page for the current hash route.
import { useEffect, useMemo, useState } from 'preact/hooks';
import { useLive, type Connection } from './live.ts';
import { namespacesOf } from './model.ts';
import { ConfigPage } from './pages/config.tsx';
import { ProxiesPage } from './pages/proxies.tsx';
import { ServicePage } from './pages/service.tsx';
import { TopologyPage } from './pages/topology.tsx';
import { TrafficPage } from './pages/traffic.tsx';
import { ExplainPage } from './pages/explain.tsx';
import { SignInPage } from './pages/sign-in.tsx';
import { session, signOut } from './api.ts';
import { href, parseRoute, type Route } from './router.ts';

const NAMESPACE_KEY = 'weft.namespace';

function useRoute(): Route {
  const [route, setRoute] = useState(() => parseRoute(location.hash));
  useEffect(() => {
    const onChange = () => setRoute(parseRoute(location.hash));
    addEventListener('hashchange', onChange);
    return () => removeEventListener('hashchange', onChange);
  }, []);
  return route;
}

function readNamespace(): string | undefined {
  try {
    return sessionStorage.getItem(NAMESPACE_KEY) || undefined;
  } catch {
    return undefined;
  }
}

const CONNECTION_LABELS: Record<Connection, string> = { live: 'Live', connecting: 'Connecting…', reconnecting: 'Reconnecting…', 'signed-out': 'Signed out' };

const TITLES: Record<Route['page'], string> = { topology: 'Topology', service: 'Service', proxies: 'Workloads and proxies', config: 'Config', traffic: 'Live traffic', explain: 'Explain' };

export function App() {
  const route = useRoute();
  const live = useLive();
  const [namespace, setNamespaceState] = useState<string | undefined>(readNamespace);
  const namespaces = useMemo(() => namespacesOf(live.objects.values()), [live.objects]);
  // A control plane with API tokens: this browser signed in with one, so it can sign out.
  const [signedInWithToken, setSignedInWithToken] = useState(false);
  useEffect(() => {
    session().then(
      (s) => setSignedInWithToken(s.tokenRequired && s.signedIn),
      () => setSignedInWithToken(false),
    );
  }, []);
  const setNamespace = (value: string | undefined) => {
    setNamespaceState(value);
    try {
      if (value) sessionStorage.setItem(NAMESPACE_KEY, value);
      else sessionStorage.removeItem(NAMESPACE_KEY);
    } catch {
      // Storage refused (private mode): the filter just won't survive a reload.
    }
  };

  useEffect(() => {
    document.title = route.page === 'service' ? `${route.name} · weft` : `${TITLES[route.page]} · weft`;
  }, [route]);

  const nav: { page: Route['page']; label: string; to: Route }[] = [
    { page: 'topology', label: 'Topology', to: { page: 'topology' } },
    { page: 'proxies', label: 'Workloads and proxies', to: { page: 'proxies' } },
    { page: 'config', label: 'Config', to: { page: 'config' } },
    { page: 'traffic', label: 'Live traffic', to: { page: 'traffic' } },
    { page: 'explain', label: 'Explain', to: { page: 'explain' } },
  ];
  const current = route.page === 'service' ? 'topology' : route.page;

  return (
    <div class="app">
      <a class="skip" href="#main">
        Skip to content
      </a>
      <header class="header">
        <a class="brand" href={href({ page: 'topology' })} aria-label="weft: topology">
          <img src="/favicon.svg" alt="" width="22" height="22" />
          weft
        </a>
        <nav aria-label="Pages">
          <ul>
            {nav.map((item) => (
              <li key={item.page}>
                <a href={href(item.to)} aria-current={current === item.page ? 'page' : undefined}>
                  {item.label}
                </a>
              </li>
            ))}
          </ul>
        </nav>
        <div class="header-tools">
          <label>
            <span class="label">Namespace</span>
            <select value={namespace ?? ''} onChange={(e) => setNamespace((e.currentTarget as HTMLSelectElement).value || undefined)}>
              <option value="">All namespaces</option>
              {[...new Set([...namespaces, ...(namespace ? [namespace] : [])])].map((ns) => (
                <option key={ns} value={ns}>
                  {ns}
                </option>
              ))}
            </select>
          </label>
          <span class={`connection ${live.connection}`} role="status" aria-live="polite" title="Updates arrive over Server-Sent Events from /weft/v1/events">
            {CONNECTION_LABELS[live.connection]}
          </span>
          {signedInWithToken && live.connection !== 'signed-out' && (
            <button type="button" onClick={() => void signOut().finally(() => location.reload())}>
              Sign out
            </button>
          )}
        </div>
      </header>
      <main id="main" class="main" tabIndex={-1}>
        {live.connection === 'signed-out' ? <SignInPage /> : <CurrentPage route={route} namespace={namespace} />}
      </main>
    </div>
  );
}

function CurrentPage({ route, namespace }: { route: Route; namespace: string | undefined }) {
  switch (route.page) {
    case 'topology':
      return <TopologyPage namespace={namespace} />;
    case 'service':
      return <ServicePage namespace={route.namespace} name={route.name} />;
    case 'proxies':
      return <ProxiesPage namespace={namespace} selectedId={route.id} />;
    case 'config':
      return <ConfigPage namespace={namespace} route={route} />;
    case 'traffic':
      return <TrafficPage route={route} namespace={namespace} />;
    case 'explain':
      return <ExplainPage namespace={namespace} />;
  }
}
