import { randomUUID } from 'node:crypto';
import { Router, type RequestHandler } from 'express';
import type { Counter } from 'prom-client';
import { decodeJwt, decodeProtectedHeader, importJWK, jwtVerify } from 'jose';
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
 * Every answer is an audit event: each grant on its own, denials in aggregate (`DeniedAccessLog`:
 * one `verifier.denied` event per verifierDid, reason and minute, with a count), so a Verifier
 * hammering a closed door cannot flood the chain. Both routes ask one rule, `isAccessAllowed`
 * (src/domain/access.ts), and nothing else, at the moment they hand data out: a URL issued while
 * access was open stops working the moment it is revoked or its window closes.
 */

export const VERIFIER_TOKEN_AUDIENCE = 'cak-issuer';
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

export const DENIAL_BUCKET_MS = 60_000;
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

export const dataQuery = z.strictObject({
  userId: callbackPayloadSchema.shape.userId,
  schemaId: callbackPayloadSchema.shape.schemaId,
});

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
  const unauthenticated = (message: string) => new AppError('VERIFIER_UNAUTHENTICATED', message, 401);
  const authenticate: RequestHandler = (req, res, next) => {
    const match = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(req.get('authorization') ?? '');
    if (!match || match[1]!.length > 4096) {
      next(unauthenticated('a Verifier bearer JWT is required'));
      return;
    }
    const token = match[1]!;
    (async () => {
      let iss: unknown;
      let kid: unknown;
      try {
        iss = decodeJwt(token).iss;
        kid = decodeProtectedHeader(token).kid;
      } catch {
        throw unauthenticated('malformed Verifier JWT');
      }
      const parsedDid = callbackPayloadSchema.shape.verifierDid.safeParse(iss);
      if (!parsedDid.success) throw unauthenticated('the JWT iss must be the verifierDid');
      const verifier = await verifiers.get(parsedDid.data);
      const keys = (verifier?.keys ?? []).filter((k) => kid === undefined || k.kid === kid);
      for (const key of keys) {
        try {
          const publicKey = await importJWK({ kty: key.kty, crv: key.crv, x: key.x, y: key.y }, 'ES256');
          const { payload } = await jwtVerify(token, publicKey, {
            algorithms: ['ES256'],
            issuer: parsedDid.data,
            subject: parsedDid.data,
            audience: VERIFIER_TOKEN_AUDIENCE,
            requiredClaims: ['exp', 'iat'],
            maxTokenAge: MAX_TOKEN_LIFETIME_SECONDS,
            clockTolerance: 30,
          });
          if (payload.exp! - payload.iat! > MAX_TOKEN_LIFETIME_SECONDS) throw unauthenticated('JWT lifetime too long');
          res.locals.verifierDid = parsedDid.data;
          return;
        } catch {
          /* try the next registered key */
        }
      }
      throw unauthenticated('the JWT does not verify with a key registered for this verifierDid');
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

  router.get('/v1/verifier/data', authenticateVerifier(deps.verifiers, failures), perVerifier, async (req, res) => {
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
    res.set('cache-control', 'no-store').json({
      authorizationId,
      userId,
      schemaId,
      recordId: current.recordId,
      version: current.version,
      expiresAt: new Date(exp * 1000).toISOString(),
      items,
    });
  });

  router.get('/v1/verifier/packages/:token', async (req, res) => {
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
