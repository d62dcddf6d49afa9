// Inbound port layer: the tunnel delivers only to ports this workload serves, mapped to where the app really listens.
import { ErrorCodes } from '../../../api/errors.ts';
import { proxyError } from '../../errors.ts';
import type { Exchange } from '../../exchange.ts';
import type { Layer } from '../../stack.ts';

export interface InboundPorts {
  /** Declared ports the tunnel may deliver to. */
  ports: readonly number[];
  /** Declared → actual port on 127.0.0.1; a declared port missing here is where the app listens. */
  appPorts: ReadonlyMap<number, number>;
  /** "<ns>/<workload>", for metrics. */
  name: string;
}

export function inboundPort<X extends Exchange>(): Layer<InboundPorts, X> {
  return (target, next) => {
    const actual = new Map<number, number>();
    const services = new Map<number, string>();
    for (const port of target.ports) {
      actual.set(port, target.appPorts.get(port) ?? port);
      services.set(port, `${target.name}:${port}`);
    }
    return (ex) => {
      const appPort = actual.get(ex.targetPort);
      if (appPort === undefined) {
        return Promise.reject(proxyError(ErrorCodes.INBOUND_PORT, `this workload serves no port ${ex.targetPort || '(none given)'}`, 404));
      }
      ex.appPort = appPort;
      ex.service = services.get(ex.targetPort)!;
      return next(ex);
    };
  };
}
