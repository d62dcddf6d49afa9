// Promise helpers for binding and closing servers.
import type { AddressInfo, Server } from 'node:net';

/** `reusePort`: several processes bind the same port and the kernel spreads connections over them (SO_REUSEPORT; Linux). */
export function listen(server: Server, port: number, host: string, reusePort = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => reject(error);
    server.once('error', onError);
    server.listen({ port, host, exclusive: true, ...(reusePort ? { reusePort: true } : {}) }, () => {
      server.off('error', onError);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

/** Stops accepting; resolves once every connection of the server has closed (or at once if it was not listening). */
export function stopListening(server: Server): Promise<void> {
  return new Promise((resolve) => {
    if (!server.listening) {
      resolve();
      return;
    }
    server.close(() => resolve());
  });
}
