// The end-to-end suite (mesh-cases.ts) on etcd: two `weft control-plane` replicas sharing a real etcd, sidecars spread over both.
import { meshSuite } from './mesh-cases.ts';

meshSuite('sidecar', { store: 'etcd', replicas: 2 });
