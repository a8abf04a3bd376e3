import type { Server, ServerResponse } from 'node:http';
import type { RequestHandler } from 'express';
import type { Logger } from '../observability/logger';

/**
 * Whether the process is shutting down. From `begin()` on, every response not yet sent carries
 * `Connection: close`, so a keep-alive client (a proxy's connection pool) sends its next request
 * elsewhere instead of down a connection that is about to close.
 */
export interface DrainState {
  isDraining: () => boolean;
  /** the app's first middleware */
  middleware: RequestHandler;
  begin: () => void;
}

export function drainState(): DrainState {
  let draining = false;
  const pending = new Set<ServerResponse>();
  const closeAfter = (res: ServerResponse) => {
    if (!res.headersSent) res.setHeader('connection', 'close');
  };
  return {
    isDraining: () => draining,
    middleware(_req, res, next) {
      if (draining) {
        closeAfter(res);
      } else {
        pending.add(res);
        res.once('close', () => pending.delete(res));
      }
      next();
    },
    begin() {
      draining = true;
      pending.forEach(closeAfter);
      pending.clear();
    },
  };
}

/** Stops accepting connections, lets requests in flight finish for up to `graceMs`, then cuts the rest. */
export async function drain(server: Server, graceMs: number, log: Logger): Promise<void> {
  const closed = new Promise<void>((resolve) => server.close(() => resolve()));
  server.closeIdleConnections();
  let timer: NodeJS.Timeout | undefined;
  const graceOver = new Promise<'grace-over'>((resolve) => (timer = setTimeout(() => resolve('grace-over'), graceMs)));
  if ((await Promise.race([closed, graceOver])) === 'grace-over') {
    log.warn({ graceMs }, 'shutdown grace over: cutting connections with requests still in flight');
    server.closeAllConnections();
    await closed;
  }
  clearTimeout(timer);
}
