import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { rateLimit } from 'express-rate-limit';
import { AppError } from '../domain/errors';

/**
 * API client authentication: API keys, sent as `x-api-key`, configured as sha256 hashes
 * (`API_KEYS=clientId:sha256hex,...`), so the configuration never holds a usable secret. Every
 * configured hash is compared in constant time.
 */

export interface ApiClients {
  entries: { clientId: string; hash: Buffer }[];
}

export function parseApiKeys(spec: string): ApiClients {
  return {
    entries: spec.split(',').map((pair) => {
      const [clientId, hex] = pair.split(':') as [string, string];
      return { clientId, hash: Buffer.from(hex, 'hex') };
    }),
  };
}

export function hashApiKey(key: string): string {
  return createHash('sha256').update(key).digest('hex');
}

export function authenticateClient(clients: ApiClients, key: string | undefined): string | undefined {
  if (!key || key.length > 256) return undefined;
  const presented = createHash('sha256').update(key).digest();
  let found: string | undefined;
  for (const { clientId, hash } of clients.entries) {
    if (timingSafeEqual(hash, presented) && found === undefined) found = clientId;
  }
  return found;
}

/** Sets `res.locals.clientId`, or answers 401. */
export function requireClient(clients: ApiClients): RequestHandler {
  return (req, res, next) => {
    const clientId = authenticateClient(clients, req.get('x-api-key'));
    if (!clientId) {
      next(new AppError('UNAUTHENTICATED', 'a valid x-api-key is required', 401));
      return;
    }
    res.locals.clientId = clientId;
    next();
  };
}

export function clientIdOf(locals: Record<string, unknown>): string {
  const id = locals.clientId;
  if (typeof id !== 'string') throw new AppError('UNAUTHENTICATED', 'a valid x-api-key is required', 401);
  return id;
}

/** Per-IP request limit on a group of routes; over it, a 429 through the one error mapper. */
export function perMinuteLimit(limit: number): RequestHandler {
  return rateLimit({
    windowMs: 60_000,
    limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    handler: (_req, _res, next) => next(new AppError('RATE_LIMITED', 'too many requests; retry later', 429)),
  });
}
