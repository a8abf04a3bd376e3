import { createHash, createHmac, timingSafeEqual } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Payload } from '@temporalio/common';
import { rateLimit } from 'express-rate-limit';
import { z } from 'zod';
import { activeKey, type Keyring } from './keyring';
import { AppError } from '../domain/errors';
import { CryptoError } from './keys';
import { AesGcmPayloadCodec } from './payload-codec';

/**
 * The codec endpoint for the Temporal Web UI ("Codec Server" setting): POST /encode and /decode
 * with {payloads: [{metadata: {k: base64}, data: base64}]}, the protobuf JSON form of payloads.
 * Behind a bearer token; CORS only for the allow-listed UI origins; errors are generic.
 */

export interface CodecRouterOptions {
  keyring: Keyring;
  bearerTokens: string[];
  allowedOrigins: string[];
  throttle?: {
    /** requests per minute per session (or bearer token) on /encode and /decode */
    perSessionPerMinute: number;
    /** counts one failed sign-in or token from the request's address; true when it is over its budget */
    authFailed?: (req: Request, res: Response) => Promise<boolean>;
  };
}

const ALLOW_HEADERS = 'content-type, x-namespace, authorization';
const BASE64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');
/** Protobuf JSON leaves out an empty list: the CLI posts `{}` for no payloads (a signal without arguments). */
export const bodySchema = z.strictObject({
  payloads: z
    .array(z.object({ metadata: z.record(z.string(), BASE64).optional(), data: BASE64.optional() }))
    .max(10_000)
    .default([]),
});
type JsonPayload = z.infer<typeof bodySchema>['payloads'][number];

export function codecRouter(options: CodecRouterOptions): Router {
  if (options.bearerTokens.length === 0) throw new Error('codecRouter needs at least one bearer token');
  // The UI shows what the history holds: an unencrypted payload (say, from a client without the
  // codec) is shown as it is, while the worker and the client refuse it.
  const codec = AesGcmPayloadCodec.create(options.keyring, { acceptUnencrypted: true });
  const origins = new Set(options.allowedOrigins);
  const tokenDigests = options.bearerTokens.map(digest);
  const router = express.Router();

  router.use((req: Request, res: Response, next: NextFunction) => {
    const origin = req.headers.origin;
    if (origin !== undefined && origin !== `${req.protocol}://${req.get('host')}`) {
      if (!origins.has(origin)) {
        next(new AppError('CODEC_ORIGIN_NOT_ALLOWED', `origin ${origin.slice(0, 100)} may not call the codec`, 403));
        return;
      }
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', ALLOW_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  });

  // Operators sign in once in the browser (the dev server's Web UI has no login of its own to pass
  // a token); the UI then calls /decode with credentials included and the session cookie is the gate.
  const sessions = codecSessions(options.keyring, tokenDigests);
  router.get('/session', (_req: Request, res: Response) => {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.send(SESSION_FORM);
  });
  // A failed sign-in or token: 401, or 429 once the address is over its failed-authentication budget.
  const refuse = async (req: Request, res: Response): Promise<AppError> =>
    (await (options.throttle?.authFailed?.(req, res) ?? Promise.resolve(false)))
      ? new AppError('AUTH_RATE_LIMITED', 'too many failed authentications from this address; retry later', 429)
      : new AppError('CODEC_UNAUTHENTICATED', 'a codec bearer token or a signed-in session is required', 401);

  // The sign-in is an HTML form post; anything else (a JSON body, say) is told so, not taken for a wrong token.
  router.post(
    '/session',
    (req: Request, res: Response, next: NextFunction) => {
      if (!req.is('application/x-www-form-urlencoded')) {
        next(
          new AppError(
            'SESSION_FORM_REQUIRED',
            'sign in with Content-Type application/x-www-form-urlencoded and a "token" field',
            415,
          ),
        );
        return;
      }
      next();
    },
    express.urlencoded({ extended: false, limit: '4kb', parameterLimit: 10 }),
    (req: Request, res: Response, next: NextFunction) => {
      const token = (req.body as { token?: unknown } | undefined)?.token;
      if (typeof token !== 'string' || token.length === 0) {
        next(new AppError('MISSING_FIELD', 'the form needs a "token" field', 400, { field: 'token' }));
        return;
      }
      if (!matchesAny(tokenDigests, digest(token))) {
        refuse(req, res).then(next, next);
        return;
      }
      res.cookie(SESSION_COOKIE, sessions.issue(digest(token)), {
        httpOnly: true,
        sameSite: 'strict',
        secure: req.secure,
        path: '/codec',
        maxAge: SESSION_TTL_MS,
      });
      res.setHeader('content-type', 'text/html; charset=utf-8');
      res.send('<!doctype html><title>Codec session</title><p id="signed-in">Signed in to the codec endpoint.</p>');
    },
  );
  router.delete('/session', (_req: Request, res: Response) => {
    res.clearCookie(SESSION_COOKIE, { path: '/codec' });
    res.status(204).end();
  });

  router.use((req: Request, res: Response, next: NextFunction) => {
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const bearer = match?.[1] === undefined ? undefined : digest(match[1]);
    const cookie = sessionCookie(req.headers.cookie);
    if (bearer !== undefined && matchesAny(tokenDigests, bearer)) {
      res.locals.codecSession = `token:${bearer.toString('base64url')}`;
    } else if (sessions.valid(cookie)) {
      res.locals.codecSession = `session:${cookie}`;
    } else {
      refuse(req, res).then(next, next);
      return;
    }
    next();
  });

  // Per session (or bearer token), after authentication: one busy operator never slows another.
  if (options.throttle) {
    router.use(
      rateLimit({
        windowMs: 60_000,
        limit: options.throttle.perSessionPerMinute,
        identifier: 'codec-session',
        standardHeaders: 'draft-8',
        legacyHeaders: false,
        validate: { xForwardedForHeader: false }, // keyed by session: addresses play no part
        keyGenerator: (_req, res) => String(res.locals.codecSession),
        handler: (_req, _res, next) => next(new AppError('RATE_LIMITED', 'too many requests; retry later', 429)),
      }),
    );
  }

  router.use(express.json({ limit: '8mb' }));

  const handle = (direction: 'encode' | 'decode') => async (req: Request, res: Response) => {
    const parsed = bodySchema.safeParse(req.body);
    if (!parsed.success) {
      throw new AppError('INVALID_PAYLOADS', 'expected {"payloads": [{"metadata", "data"}]} with base64 values', 400);
    }
    try {
      const payloads = parsed.data.payloads.map(fromJson);
      const result = direction === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
      res.json({ payloads: result.map(toJson) });
    } catch (err) {
      // a payload this keyring cannot open (unknown key, tampered, truncated) is the caller's input
      if (err instanceof CryptoError)
        throw new AppError(err.code, 'a payload could not be decoded with the codec keyring', 400);
      throw err;
    }
  };
  router.post('/encode', handle('encode'));
  router.post('/decode', handle('decode'));

  // Errors (ours, and unreadable bodies from the JSON parser) go on to the API's one error mapper.
  return router;
}

export const SESSION_COOKIE = 'cak_codec_session';
const SESSION_TTL_MS = 60 * 60 * 1000;
const SESSION_FORM = `<!doctype html>
<title>cak-issuer codec sign-in</title>
<form method="post" action="session">
  <label>Codec token <input id="token" name="token" type="password" autocomplete="off" required></label>
  <button id="sign-in" type="submit">Sign in</button>
</form>`;

/** Compares against every configured digest in constant time, without stopping at the first match. */
function matchesAny(digests: Buffer[], presented: Buffer): boolean {
  return digests.reduce((hit, d) => timingSafeEqual(d, presented) || hit, false);
}

function sessionCookie(header: string | undefined): string | undefined {
  for (const part of (header ?? '').split(';')) {
    const [name, ...value] = part.trim().split('=');
    if (name === SESSION_COOKIE) return value.join('=');
  }
  return undefined;
}

/**
 * Session cookies: `<expiry ms>.<token digest>.<mac>`, MAC'd with a key derived from the active codec
 * key. A session ends at expiry, when its token is removed from the configuration, or on key rotation.
 */
function codecSessions(keyring: Keyring, tokenDigests: Buffer[]) {
  const macKey = createHmac('sha256', activeKey(keyring).key).update('cak-codec-session-v1').digest();
  const mac = (body: string) => createHmac('sha256', macKey).update(body).digest('base64url');
  return {
    issue(tokenDigest: Buffer): string {
      const body = `${Date.now() + SESSION_TTL_MS}.${tokenDigest.toString('base64url')}`;
      return `${body}.${mac(body)}`;
    },
    valid(cookie: string | undefined): boolean {
      const [expiry, tokenDigest, presented] = (cookie ?? '').split('.');
      if (!expiry || !tokenDigest || !presented) return false;
      const expected = Buffer.from(mac(`${expiry}.${tokenDigest}`));
      const given = Buffer.from(presented);
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
      const presentedDigest = Buffer.from(tokenDigest, 'base64url');
      return Number(expiry) > Date.now() && presentedDigest.length === 32 && matchesAny(tokenDigests, presentedDigest);
    },
  };
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function fromJson(p: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  };
}

function toJson(p: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  };
}
