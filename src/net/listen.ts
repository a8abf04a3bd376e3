import type { Server } from 'node:http';

/** The server could not bind its address (port taken, address not available, no permission). */
export class ListenError extends Error {
  constructor(
    readonly address: string,
    readonly code: string | undefined,
    cause: unknown,
  ) {
    super(`cannot listen on ${address}: ${code ?? (cause instanceof Error ? cause.message : String(cause))}`, {
      cause,
    });
    this.name = 'ListenError';
  }
}

/**
 * Binds `server` and resolves with the bound port, or rejects with a ListenError. (Express 5's
 * `app.listen(port, host, callback)` hands a listen error to the callback, which reads as success.)
 */
export function listen(server: Server, port: number, host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      server.off('listening', onListening);
      reject(new ListenError(`${host}:${port}`, err.code, err));
    };
    const onListening = () => {
      server.off('error', onError);
      const address = server.address();
      resolve(typeof address === 'object' && address ? address.port : port);
    };
    server.once('error', onError);
    server.once('listening', onListening);
    server.listen(port, host);
  });
}
