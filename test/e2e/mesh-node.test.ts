// The end-to-end suite with node proxies: the mesh cases with one `weft proxy --mode node` per host, and the demo under `weft up --proxy-mode node`.
import { demoTest } from './demo-case.ts';
import { meshSuite } from './mesh-cases.ts';

meshSuite('node');
demoTest('node');
