// End to end through real processes: a control plane, a sidecar per workload and echo apps; the whole suite (mesh-cases.ts).
import { meshSuite } from './mesh-cases.ts';

meshSuite('sidecar');
