import { createHash, timingSafeEqual } from 'node:crypto';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
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

/**
 * Sets `res.locals.clientId`, or answers 401 (429 once the address is over its failed-authentication
 * budget: see `authFailureThrottle`).
 */
export function requireClient(clients: ApiClients, failures?: AuthFailureThrottle): RequestHandler {
  return (req, res, next) => {
    const clientId = authenticateClient(clients, req.get('x-api-key'));
    if (!clientId) {
      refuse(failures, req, res, new AppError('UNAUTHENTICATED', 'a valid x-api-key is required', 401)).then(
        next,
        next,
      );
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

const WINDOW_MS = 60_000;

function limitExceeded(message: string, code = 'RATE_LIMITED') {
  return (req: Request, _res: Response, next: NextFunction) => {
    const info = (req as Request & { rateLimit?: { resetTime?: Date } }).rateLimit;
    const retryAfterSeconds = info?.resetTime
      ? Math.max(1, Math.ceil((info.resetTime.getTime() - Date.now()) / 1000))
      : WINDOW_MS / 1000;
    next(new AppError(code, message, 429, { retryAfterSeconds }));
  };
}

/**
 * Per-address request limit (the address Express derives under API_TRUST_PROXY) for unauthenticated
 * public routes; over it, a 429 through the one error mapper.
 */
export function perMinuteLimit(limit: number): RequestHandler {
  return rateLimit({
    windowMs: WINDOW_MS,
    limit,
    identifier: 'public',
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    // The address comes from the trusted hops only; a client's own X-Forwarded-For is expected noise.
    validate: { xForwardedForHeader: false },
    handler: limitExceeded('too many requests; retry later'),
  });
}

/**
 * Per-identity request limit, after authentication: `keyOf` names the authenticated caller (clientId,
 * verifierDid, admin name, codec session), so one caller that spends its budget never touches
 * another's, whatever address either comes from. Skipped (no key) when nobody authenticated.
 */
export function perIdentityLimit(
  name: string,
  limit: number,
  keyOf: (req: Request, res: Response) => string | undefined,
): RequestHandler {
  return rateLimit({
    windowMs: WINDOW_MS,
    limit,
    identifier: name,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    validate: { xForwardedForHeader: false }, // keyed by identity: addresses play no part
    skip: (req, res) => keyOf(req, res) === undefined,
    keyGenerator: (req, res) => `${name}:${keyOf(req, res)}`,
    handler: limitExceeded(`too many requests for this ${name}; retry later`),
  });
}

/**
 * Failed authentications per address. Counted only when a credential fails, so it never refuses a
 * valid credential, even from an address whose other requests are throttled (a NAT shared with a
 * misconfigured or hostile neighbour). Over the budget a failure is a 429 instead of a 401.
 */
export interface AuthFailureThrottle {
  /** counts one failure from the request's address; true when the address is over its budget */
  failed(req: Request, res: Response): Promise<boolean>;
}

const OVER_BUDGET = new Error('over the failed-authentication budget');

export function authFailureThrottle(limit: number): AuthFailureThrottle {
  const limiter = rateLimit({
    windowMs: WINDOW_MS,
    limit,
    identifier: 'auth-failures',
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    validate: { xForwardedForHeader: false },
    handler: (_req, _res, next) => next(OVER_BUDGET),
  });
  return {
    failed: (req, res) =>
      applyLimit(limiter, req, res).then(
        () => false,
        (err: unknown) => {
          if (err === OVER_BUDGET) return true;
          throw err;
        },
      ),
  };
}

/** The error for a failed authentication: `error` itself, or a 429 when the address is over its failure budget. */
export async function refuse(
  failures: AuthFailureThrottle | undefined,
  req: Request,
  res: Response,
  error: AppError,
): Promise<AppError> {
  if (!failures || !(await failures.failed(req, res))) return error;
  return new AppError('AUTH_RATE_LIMITED', 'too many failed authentications from this address; retry later', 429, {
    retryAfterSeconds: WINDOW_MS / 1000,
  });
}

/** Runs a limiter (or any middleware that calls next) inside a handler: resolves to go on, rejects with its error. */
export function applyLimit(limiter: RequestHandler, req: Request, res: Response): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    void limiter(req, res, (err?: unknown) => {
      if (err === undefined || err === null || err === false) resolve();
      else reject(err instanceof Error ? err : new Error('middleware failed', { cause: err }));
    });
  });
}
