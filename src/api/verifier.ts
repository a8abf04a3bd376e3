import { randomUUID } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import type { Counter } from 'prom-client';
import {
  decodeJwt,
  decodeProtectedHeader,
  errors as joseErrors,
  importJWK,
  jwtVerify,
  UnsecuredJWT,
  type JWTPayload,
} from 'jose';
import { z } from 'zod';
import { AuditEventType, type AuditEventTypeName } from '../domain/authorization';
import { PACKAGE_URL_PURPOSE, signPackageToken, verifyPackageToken } from '../domain/authorization-url';
import { authorizationIdFor, callbackPayloadSchema } from '../domain/callback';
import { AppError } from '../domain/errors';
import type { AuditData, AuditRepository } from '../storage/audit';
import { isAccessAllowed } from '../domain/access';
import type { AuthorizationDoc, AuthorizationsRepository } from '../storage/authorizations';
import type { ManifestEntry } from '../storage/records';
import type { VerifiersRepository } from '../storage/verifiers';
import { applyLimit, refuse, type AuthFailureThrottle } from './auth';
import { NO_STORE, RATE_LIMITED, refusal, route } from './routes';

/**
 * The Semi-Decrypted Data API (air-cak-platform.md §2.5), for Verifiers holding user consent.
 *
 *   GET /v1/verifier/data?userId=&schemaId=    Authorization: Bearer <Verifier JWT>
 *       403 unless an active authorization exists for (userId, token's verifierDid, schemaId);
 *       else the record's manifest with one signed, short-lived URL per item.
 *   GET /v1/verifier/packages/<token>          the item's inner CAK-ECIES package (outer layer removed)
 *
 * Verifier JWT (our choice; the platform documents none): ES256, `iss` = `sub` = the verifierDid,
 * `aud` = "cak-issuer", `exp` at most 10 minutes after `iat`, signed with a key an operator
 * registered for that DID (PUT /v1/admin/verifiers/keys); `kid` picks the key when given.
 * A refused JWT (401 VERIFIER_UNAUTHENTICATED) is told which claim or header parameter is at fault,
 * with `details` `{claim|header, reason, expected, got}`; those checks read only the token, so their
 * answers are the same for registered and unregistered verifierDids. A token that passes them but
 * whose signature no registered key verifies gets one message, whatever the reason (no such DID, no
 * such kid, another key), as before.
 * Every answer is an audit event: each grant on its own, denials in aggregate (`DeniedAccessLog`:
 * one `verifier.denied` event per verifierDid, reason and minute, with a count), so a Verifier
 * hammering a closed door cannot flood the chain. Both routes ask one rule, `isAccessAllowed`
 * (src/domain/access.ts), and nothing else, at the moment they hand data out: a URL issued while
 * access was open stops working the moment it is revoked or its window closes.
 */

export const VERIFIER_TOKEN_AUDIENCE = 'cak-issuer';
const VERIFIER_TOKEN_ALG = 'ES256';
const MAX_TOKEN_LIFETIME_SECONDS = 600;

export interface CurrentData {
  recordId: string;
  version: number;
  manifest: ManifestEntry[];
}

/** Where the data comes from (the issuance pipeline's records and packages, and the managed keyring). */
export interface PackageSource {
  /** the record of (userId, schemaId) at the issuer DID that issues the schema; undefined if none does */
  recordIdFor(userId: string, schemaId: string): string | undefined;
  /** the record with its current version's manifest */
  current(recordId: string): Promise<CurrentData | undefined>;
  /** the inner ECIES package: the stored package with the issuer-managed outer layer removed */
  openPackage(recordId: string, packageId: string): Promise<Buffer | undefined>;
}

export interface VerifierRouteDeps {
  authorizations: AuthorizationsRepository;
  audit: AuditRepository;
  verifiers: VerifiersRepository;
  packages: PackageSource;
  idSecret: string;
  signedUrlSecret: string;
  signedUrlTtlSeconds: number;
  /** per-Verifier request limit (keyed by `res.locals.verifierDid`) and the per-address failure budget */
  throttle?: { perVerifier: RequestHandler; failures: AuthFailureThrottle };
  /** where denials are counted and audited in aggregate; one with its own timer when not given */
  denials?: DeniedAccessLog;
}

/**
 * Denied Verifier requests, counted (a Prometheus counter by reason) and audited in aggregate: one
 * `verifier.denied` event per (verifierDid, reason, minute) per API process, with the count, appended
 * once the minute is over (and on close). Its audit key names the bucket and the process, so a
 * retried append is the same event and two API replicas never drop each other's counts. A bucket
 * whose append fails (database down) is kept and appended with the next flush.
 */
export interface DeniedAccessLog {
  record(verifierDid: string, reason: string, now?: Date): void;
  /** appends the buckets that are over (every bucket with `all`) */
  flush(options?: { now?: Date; all?: boolean }): Promise<void>;
  /** stops the timer and appends every bucket, the current one too */
  close(): Promise<void>;
}

const DENIAL_BUCKET_MS = 60_000;
const MAX_DENIAL_BUCKETS = 10_000;

export function deniedAccessLog(
  audit: Pick<AuditRepository, 'append'>,
  options: { counter?: Counter<'reason'>; bucketMs?: number; timer?: boolean } = {},
): DeniedAccessLog {
  const bucketMs = options.bucketMs ?? DENIAL_BUCKET_MS;
  const instance = randomUUID().slice(0, 8);
  const pending = new Map<string, { verifierDid: string; reason: string; bucket: number; count: number }>();
  let flushing: Promise<void> | undefined;

  const flush = async ({ now = new Date(), all = false }: { now?: Date; all?: boolean } = {}) => {
    await flushing;
    const due = [...pending].filter(([, b]) => all || b.bucket + bucketMs <= now.getTime());
    for (const [key] of due) pending.delete(key);
    flushing = (async () => {
      for (const [key, b] of due) {
        const from = new Date(b.bucket).toISOString();
        try {
          await audit.append(
            `verifier.denied:${b.verifierDid}:${b.reason}:${from}:${instance}`,
            AuditEventType.VerifierDenied,
            {
              verifierDid: b.verifierDid,
              reason: b.reason,
              count: b.count,
              from,
              until: new Date(b.bucket + bucketMs).toISOString(),
            },
          );
        } catch {
          const later = pending.get(key);
          pending.set(key, { ...b, count: b.count + (later?.count ?? 0) });
        }
      }
    })();
    await flushing;
  };

  const timer = options.timer === false ? undefined : setInterval(() => void flush(), bucketMs / 4);
  timer?.unref();

  return {
    record(verifierDid, reason, now = new Date()) {
      options.counter?.inc({ reason });
      const bucket = Math.floor(now.getTime() / bucketMs) * bucketMs;
      // Past the bound (a flood of distinct DIDs while the database is down), new keys share one bucket.
      const did = pending.size >= MAX_DENIAL_BUCKETS ? '(many)' : verifierDid;
      const key = `${did}\n${reason}\n${bucket}`;
      const entry = pending.get(key);
      if (entry) entry.count += 1;
      else pending.set(key, { verifierDid: did, reason, bucket, count: 1 });
    },
    flush,
    async close() {
      if (timer) clearInterval(timer);
      await flush({ all: true });
    },
  };
}

const dataQuery = z.strictObject({
  userId: callbackPayloadSchema.shape.userId,
  schemaId: callbackPayloadSchema.shape.schemaId,
});

const ACCESS_REFUSED = ['AUTHORIZATION_REQUIRED', 'AUTHORIZATION_REVOKED', 'AUTHORIZATION_EXPIRED'];

export const getVerifierData = route({
  method: 'get',
  path: '/v1/verifier/data',
  operationId: 'getVerifierData',
  summary: "A consented Verifier's manifest of a user's data, with signed package URLs",
  description:
    'Bearer JWT: ES256, `iss` = `sub` = the verifierDid, `aud` = `cak-issuer`, `exp` at most 10 minutes after `iat`, ' +
    'signed with a key registered for that DID. Every answer is an audit event.',
  tag: 'verifier',
  auth: 'verifierJwt',
  query: dataQuery,
  examples: { userId: 'user-123', schemaId: 'kyc-basic' },
  responses: {
    200: {
      description: 'the current record version’s manifest',
      name: 'VerifierManifest',
      headers: NO_STORE,
      schema: z.object({
        ...{ authorizationId: z.string(), userId: z.string(), schemaId: z.string(), recordId: z.string() },
        ...{ version: z.number().int(), expiresAt: z.iso.datetime() },
        items: z.array(
          z.object({
            ...{ itemId: z.string(), kind: z.string(), contentType: z.string(), curve: z.string() },
            url: z.string().meta({ description: 'signed, short-lived `/v1/verifier/packages/{token}`' }),
          }),
        ),
      }),
    },
  },
  errors: {
    400: refusal('invalid query', 'INVALID_FIELD'),
    401: refusal(
      'no valid Verifier JWT. The message and `details` name what is wrong: a header parameter ' +
        '(`{header: "alg", expected, got}`) or a claim (`{claim, reason, expected, got}`: `iss` not a DID, `sub` not ' +
        'the `iss`, `aud` not `cak-issuer`, `exp` past, `iat` in the future or too old, `exp - iat` over 600 s, a ' +
        'claim missing or not a number); these read only the token, never whether its verifierDid is registered. ' +
        'Past them, a signature that no key registered for the verifierDid verifies is `{check: "signature"}`, ' +
        'with one message whatever the reason',
      'VERIFIER_UNAUTHENTICATED',
    ),
    403: refusal(
      'the access rule refuses (userId, verifierDid, schemaId) now: no grant, an operator revocation, or a closed access window',
      ...ACCESS_REFUSED,
    ),
    404: refusal('no data held for this user and schema', 'NO_DATA'),
  },
});

export const getVerifierPackage = route({
  method: 'get',
  path: '/v1/verifier/packages/{token}',
  operationId: 'getVerifierPackage',
  summary: 'One item’s inner CAK-ECIES package (outer issuer layer removed)',
  description:
    'The URL is the credential: signed, short-lived, and the authorization is checked again on each download.',
  tag: 'verifier',
  auth: 'public',
  params: z.object({
    token: z
      .string()
      .regex(/^[A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{43}$/)
      .meta({ description: '`<base64url(claims)>.<base64url(HMAC)>` from the manifest' }),
  }),
  examples: { token: 'eyJwdXIiOiJwYWNrYWdlIn0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA' },
  responses: { 200: { description: 'the package bytes', mediaType: 'application/octet-stream', headers: NO_STORE } },
  errors: {
    403: refusal(
      'URL tampered with or expired, or the access rule refuses now (revoked, window closed)',
      ...['URL_INVALID', 'URL_EXPIRED', ...ACCESS_REFUSED],
    ),
    404: refusal('a newer version replaced the package', 'PACKAGE_NOT_FOUND'),
    429: RATE_LIMITED,
  },
});

const unauthenticated = (message: string, details?: Record<string, unknown>) =>
  new AppError('VERIFIER_UNAUTHENTICATED', message, 401, details);

const CLOCK_TOLERANCE_SECONDS = 30;
/** The compact header `{"alg":"none"}`: jose's claim checks run on the token's own payload bytes under it. */
const UNSECURED_HEADER = Buffer.from(JSON.stringify({ alg: 'none' })).toString('base64url');

/** What `jwtVerify` checks on the claims (the same options before and after the signature). */
function verifierClaimOptions(verifierDid: string) {
  return {
    algorithms: [VERIFIER_TOKEN_ALG],
    issuer: verifierDid,
    subject: verifierDid,
    audience: VERIFIER_TOKEN_AUDIENCE,
    requiredClaims: ['exp', 'iat'],
    maxTokenAge: MAX_TOKEN_LIFETIME_SECONDS,
    clockTolerance: CLOCK_TOLERANCE_SECONDS,
  };
}

/** A claim value as the caller sent it, cut short, for `details.got` (it is the caller's own token). */
function shown(value: unknown): unknown {
  if (typeof value === 'string') return value.length > 200 ? `${value.slice(0, 200)}…` : value;
  if (Array.isArray(value)) return value.slice(0, 5).map(shown);
  if (typeof value === 'number' || typeof value === 'boolean' || value === null) return value;
  return value === undefined ? undefined : typeof value;
}

const isoOf = (seconds: number) => {
  const date = new Date(seconds * 1000);
  return Number.isNaN(date.getTime()) ? String(seconds) : date.toISOString().replace('.000Z', 'Z');
};
/** NumericDate is seconds; a 13-digit value is almost surely Date.now() in milliseconds. */
const millisecondsHint = (value: unknown) =>
  typeof value === 'number' && value > 1e11 ? ' (this looks like milliseconds: NumericDate is Unix seconds)' : '';

/**
 * Checks everything about a Verifier JWT that does not depend on who it claims to be: it parses,
 * `alg` is ES256, `iss` is a DID, and jose's claim checks (the very options `jwtVerify` uses, run on
 * the token's payload by `UnsecuredJWT.decode`) and our lifetime bound pass. Each refusal names the
 * claim (or header parameter) at fault. These answers are the same whether or not the verifierDid
 * is registered, so they tell nothing about registrations; the signature is checked afterwards,
 * with the same options, and its refusal stays one message. Returns the token's verifierDid.
 */
function checkTokenAsSent(token: string): string {
  let alg: unknown;
  try {
    alg = decodeProtectedHeader(token).alg;
  } catch {
    throw unauthenticated('malformed Verifier JWT: its header (first part) is not base64url JSON', {
      part: 'header',
    });
  }
  if (alg !== VERIFIER_TOKEN_ALG) {
    const got = alg === undefined ? 'none' : JSON.stringify(shown(alg));
    throw unauthenticated(`the JWT header's alg must be ${VERIFIER_TOKEN_ALG}; got ${got}`, {
      header: 'alg',
      expected: VERIFIER_TOKEN_ALG,
      got: shown(alg),
    });
  }
  let payload: JWTPayload;
  try {
    payload = decodeJwt(token);
  } catch {
    throw unauthenticated('malformed Verifier JWT: its payload (second part) is not a base64url JSON object', {
      part: 'payload',
    });
  }
  if (payload.iss === undefined) {
    throw unauthenticated('the JWT has no "iss" claim: it must be the verifierDid', {
      claim: 'iss',
      reason: 'missing',
    });
  }
  const did = callbackPayloadSchema.shape.verifierDid.safeParse(payload.iss);
  if (!did.success) {
    throw unauthenticated(
      `the JWT's iss must be the verifierDid (did:<method>:<id>); got ${JSON.stringify(shown(payload.iss))}`,
      {
        claim: 'iss',
        reason: 'invalid',
        expected: 'a DID',
        got: shown(payload.iss),
      },
    );
  }
  const verifierDid = did.data;
  try {
    UnsecuredJWT.decode(`${UNSECURED_HEADER}.${token.split('.')[1]}.`, verifierClaimOptions(verifierDid));
  } catch (err) {
    if (err instanceof joseErrors.JWTClaimValidationFailed || err instanceof joseErrors.JWTExpired) {
      throw claimRefusal(err.claim, err.reason, payload, verifierDid);
    }
    throw unauthenticated('malformed Verifier JWT: its claims set is not a JSON object', { part: 'payload' });
  }
  const lifetime = (payload.exp as number) - (payload.iat as number);
  if (lifetime > MAX_TOKEN_LIFETIME_SECONDS) {
    throw unauthenticated(
      `the JWT lives ${lifetime} s (exp - iat); at most ${MAX_TOKEN_LIFETIME_SECONDS} s${millisecondsHint(payload.exp)}`,
      { claim: 'exp', reason: 'lifetime', expected: `exp - iat <= ${MAX_TOKEN_LIFETIME_SECONDS}`, got: lifetime },
    );
  }
  return verifierDid;
}

/** jose's claim failure (`claim`, `reason`) as a message and details that say what to fix. */
function claimRefusal(claim: string, reason: string, payload: JWTPayload, verifierDid: string): AppError {
  const got = shown(payload[claim]);
  const now = Math.floor(Date.now() / 1000);
  const skew = `${CLOCK_TOLERANCE_SECONDS} s of clock skew allowed`;
  const refusal = (message: string, extra: Record<string, unknown> = {}) =>
    unauthenticated(message, { claim, reason, ...extra, ...(got === undefined ? {} : { got }) });
  if (reason === 'missing') {
    return refusal(`the JWT has no "${claim}" claim (a Verifier JWT needs iss, sub, aud, iat and exp)`);
  }
  if (reason === 'invalid') {
    return refusal(`the JWT's ${claim} must be a number (NumericDate, Unix seconds); got ${JSON.stringify(got)}`, {
      expected: 'a number',
    });
  }
  switch (claim) {
    case 'sub':
      return refusal(`the JWT's sub must equal its iss (${verifierDid}); got ${JSON.stringify(got)}`, {
        expected: verifierDid,
      });
    case 'aud':
      return refusal(`the JWT's aud must be "${VERIFIER_TOKEN_AUDIENCE}"; got ${JSON.stringify(got)}`, {
        expected: VERIFIER_TOKEN_AUDIENCE,
      });
    case 'exp':
      return refusal(
        `the JWT expired: exp ${isoOf(payload.exp as number)} is before now (${isoOf(now)}; ${skew}); sign a fresh one`,
        { expected: 'a time in the future', now },
      );
    case 'nbf':
      return refusal(
        `the JWT is not valid yet: nbf ${isoOf(payload.nbf as number)} is after now (${isoOf(now)}; ${skew})`,
        { expected: 'a time in the past', now },
      );
    case 'iat':
      return (payload.iat as number) > now
        ? refusal(
            `the JWT's iat ${isoOf(payload.iat as number)} is in the future (now ${isoOf(now)}; ${skew})${millisecondsHint(payload.iat)}`,
            { expected: 'a time in the past', now },
          )
        : refusal(
            `the JWT was issued at ${isoOf(payload.iat as number)}, more than ${MAX_TOKEN_LIFETIME_SECONDS} s ago; sign a fresh one`,
            { expected: `at most ${MAX_TOKEN_LIFETIME_SECONDS} s before now`, now },
          );
    default:
      return refusal(`the JWT's ${claim} claim is not accepted`);
  }
}

function denied(code: string, message: string): AppError {
  return new AppError(code, message, 403);
}

/** The access rule on stored facts; throws a 403 with the rule's code after `onDenied`. */
function requireAccess(
  found: Awaited<ReturnType<AuthorizationsRepository['accessFacts']>>,
  onDenied: (reason: string) => void,
): AuthorizationDoc {
  const decision = isAccessAllowed(found?.facts, new Date());
  if (!decision.allowed) {
    onDenied(decision.code);
    throw denied(decision.code, decision.message);
  }
  return found!.doc;
}

function authenticateVerifier(verifiers: VerifiersRepository, failures?: AuthFailureThrottle): RequestHandler {
  const authenticate: RequestHandler = (req, res, next) => {
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(req.get('authorization') ?? '');
    if (!match || match[1]!.length > 4096) {
      next(
        unauthenticated(
          'a Verifier JWT is required: `Authorization: Bearer <header>.<payload>.<signature>` (compact JWS, at most 4096 characters)',
        ),
      );
      return;
    }
    const token = match[1]!;
    (async () => {
      const verifierDid = checkTokenAsSent(token);
      const verifier = await verifiers.get(verifierDid);
      const kid = decodeProtectedHeader(token).kid;
      const keys = (verifier?.keys ?? []).filter((k) => kid === undefined || k.kid === kid);
      for (const key of keys) {
        try {
          const publicKey = await importJWK({ kty: key.kty, crv: key.crv, x: key.x, y: key.y }, VERIFIER_TOKEN_ALG);
          await jwtVerify(token, publicKey, verifierClaimOptions(verifierDid));
          res.locals.verifierDid = verifierDid;
          return;
        } catch {
          /* try the next registered key */
        }
      }
      // The same answer for an unregistered verifierDid, an unknown kid and a wrong key: which DIDs
      // and keys are registered is not told to whoever holds a token.
      throw unauthenticated(
        `the JWT signature does not verify with a key registered for this verifierDid (${VERIFIER_TOKEN_ALG}, ` +
          'with the private half of a public JWK an operator registered for its iss; `kid`, when given, must be that key’s)',
        { check: 'signature' },
      );
    })().then(() => next(), next);
  };
  // A refusal counts against the address's failure budget (429 over it); a valid JWT never does.
  return (req, res, next) =>
    authenticate(req, res, (err?: unknown) => {
      if (err instanceof AppError && err.status === 401) refuse(failures, req, res, err).then(next, next);
      else next(err);
    });
}

export function verifierRoutes(deps: VerifierRouteDeps): Router {
  const router = Router();
  const denials = deps.denials ?? deniedAccessLog(deps.audit);
  const perVerifier: RequestHandler = deps.throttle?.perVerifier ?? ((_req, _res, next) => next());
  const failures = deps.throttle?.failures;

  const audit = (type: AuditEventTypeName, data: AuditData) => deps.audit.append(`access:${randomUUID()}`, type, data);

  getVerifierData.on(router, authenticateVerifier(deps.verifiers, failures), perVerifier, async (req, res) => {
    const verifierDid = String(res.locals.verifierDid);
    const query = dataQuery.safeParse({ ...req.query });
    if (!query.success) {
      const field = query.error.issues[0]?.path.map(String).join('.') ?? '';
      throw new AppError('INVALID_FIELD', `${field || 'query'}: ${query.error.issues[0]?.message}`, 400, { field });
    }
    const { userId, schemaId } = query.data;
    const authorizationId = authorizationIdFor(deps.idSecret, { userId, verifierDid, schemaId });
    requireAccess(await deps.authorizations.accessFacts(authorizationId), (reason) =>
      denials.record(verifierDid, reason),
    );
    const recordId = deps.packages.recordIdFor(userId, schemaId);
    const current = recordId === undefined ? undefined : await deps.packages.current(recordId);
    if (!current) throw new AppError('NO_DATA', 'no data is held for this user and schema', 404);
    const exp = Math.floor(Date.now() / 1000) + deps.signedUrlTtlSeconds;
    const items = current.manifest.map((entry) => ({
      itemId: entry.itemId,
      kind: entry.kind,
      contentType: entry.contentType,
      curve: entry.curve,
      url: `/v1/verifier/packages/${signPackageToken(deps.signedUrlSecret, {
        pur: PACKAGE_URL_PURPOSE,
        aid: authorizationId,
        rid: current.recordId,
        pid: entry.packageId,
        exp,
      })}`,
    }));
    await audit(AuditEventType.VerifierManifest, {
      authorizationId,
      userId,
      verifierDid,
      schemaId,
      recordId: current.recordId,
      version: current.version,
      items: items.length,
    });
    getVerifierData.send(res.set('cache-control', 'no-store'), 200, {
      authorizationId,
      userId,
      schemaId,
      recordId: current.recordId,
      version: current.version,
      expiresAt: new Date(exp * 1000).toISOString(),
      items,
    });
  });

  getVerifierPackage.on(router, async (req, res) => {
    const check = verifyPackageToken(deps.signedUrlSecret, String(req.params.token));
    if (!check.ok) {
      // The signed URL is the credential here: a forged or expired one counts as a failed authentication.
      const refusal = denied(check.reason === 'expired' ? 'URL_EXPIRED' : 'URL_INVALID', `package URL ${check.reason}`);
      throw await refuse(failures, req, res, refusal);
    }
    const { aid, rid, pid } = check.claims;
    const found = await deps.authorizations.accessFacts(aid);
    // The URL's authorization names the Verifier: downloads share its budget with its manifests.
    res.locals.verifierDid = found?.doc.verifierDid ?? `authorization:${aid}`;
    await applyLimit(perVerifier, req, res);
    const authorization = requireAccess(found, (reason) =>
      denials.record(found?.doc.verifierDid ?? '(unknown)', reason),
    );
    // the URL names the record, but the record is the one the authorization's (user, schema) derives
    if (deps.packages.recordIdFor(authorization.userId, authorization.schemaId) !== rid) {
      throw denied('URL_INVALID', 'package URL does not belong to this authorization');
    }
    const inner = await deps.packages.openPackage(rid, pid);
    if (!inner)
      throw new AppError('PACKAGE_NOT_FOUND', 'the package no longer exists (a newer version replaced it)', 404);
    await audit(AuditEventType.VerifierPackage, {
      authorizationId: aid,
      userId: authorization.userId,
      verifierDid: authorization.verifierDid,
      schemaId: authorization.schemaId,
      recordId: rid,
      packageId: pid,
      bytes: inner.length,
    });
    res.set('cache-control', 'no-store').type('application/octet-stream').send(inner);
  });

  return router;
}
