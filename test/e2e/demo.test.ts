// The demo `npm start` runs, with a sidecar per replica (demo-case.ts).
import { demoTest } from './demo-case.ts';

demoTest('sidecar');
