// The dashboard's entry: opens the live event stream first, then loads the pages (cytoscape is most of the bytes) while the first data is on its way.
import { render } from 'preact';
import { connect } from './live.ts';
import { prefetchTraffic } from './topology/traffic.ts';

performance.mark('weft:script-start');
connect();
// The topology page's default window: its first drawing then has the traffic as soon as the objects.
prefetchTraffic('5m');
const { App } = await import('./app.tsx');
performance.mark('weft:app-loaded');
render(<App />, document.getElementById('app')!);
