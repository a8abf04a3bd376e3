import express, { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { authorizationIdFor, callbackPayloadSchema } from '../domain/callback';
import { AppError } from '../domain/errors';
import { assertSafeJson } from '../domain/safe-json';
import {
  AUTHORIZATION_STATES,
  listAuthorizations,
  redriveAuthorization,
  setRevocation,
  type Redriver,
} from '../operations/authorizations';
import type { AuditRepository } from '../storage/audit';
import type { AuthorizationsRepository } from '../storage/authorizations';
import type { VerifiersRepository } from '../storage/verifiers';
import { authenticateClient, refuse, type ApiClients, type AuthFailureThrottle } from './auth';

/**
 * Operator routes, behind an admin credential (ADMIN_TOKENS, `Authorization: Bearer <token>`):
 *   GET  /v1/admin/authorizations?state=unrouted|no-data|...   list (re-drive candidates)
 *   POST /v1/admin/authorizations/revoke    {userId, verifierDid, schemaId}
 *   POST /v1/admin/authorizations/reinstate {userId, verifierDid, schemaId}   lifts a revocation
 *   POST /v1/admin/authorizations/redrive   {userId, verifierDid, schemaId}
 *   PUT  /v1/admin/verifiers/keys           {verifierDid, jwk: {kty: EC, crv: P-256, x, y, kid}}
 *   POST /v1/admin/verifiers/keys/remove    {verifierDid, kid}
 */

export interface AdminRouteDeps {
  admins: ApiClients;
  authorizations: AuthorizationsRepository;
  audit: AuditRepository;
  verifiers: VerifiersRepository;
  idSecret: string;
  /** signals the run to re-drive; false when no run is waiting for one */
  redrive: Redriver;
  /** per-admin request limit (keyed by `res.locals.admin`) and the per-address failure budget */
  throttle?: { perAdmin: RequestHandler; failures: AuthFailureThrottle };
}

const b64url = z.string().regex(/^[A-Za-z0-9_-]{43}$/, 'a P-256 coordinate (base64url, 32 bytes)');
const kid = z.string().regex(/^[A-Za-z0-9._:-]{1,128}$/);
export const keyBody = z.strictObject({
  verifierDid: callbackPayloadSchema.shape.verifierDid,
  jwk: z.strictObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: b64url, y: b64url, kid }),
});
export const removeKeyBody = z.strictObject({ verifierDid: callbackPayloadSchema.shape.verifierDid, kid });
export const listQuery = z.strictObject({
  state: z.enum(AUTHORIZATION_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

function parse<T>(schema: z.ZodType<T>, value: unknown): T {
  assertSafeJson(value, { maxDepth: 3, maxKeys: 20 });
  const parsed = schema.safeParse(value);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  const field = issue.path.map(String).join('.');
  throw new AppError('INVALID_FIELD', `${field || 'body'}: ${issue.message}`, 400, { field });
}

function requireAdmin(admins: ApiClients, failures?: AuthFailureThrottle): RequestHandler {
  return (req, res, next) => {
    const match = /^Bearer ([\x21-\x7e]{1,256})$/.exec(req.get('authorization') ?? '');
    const name = authenticateClient(admins, match?.[1]);
    if (!name) {
      const error = new AppError('ADMIN_UNAUTHENTICATED', 'an admin bearer token is required', 401);
      refuse(failures, req, res, error).then(next, next);
      return;
    }
    res.locals.admin = name;
    next();
  };
}

export function adminRoutes(deps: AdminRouteDeps): Router {
  const router = Router();
  const perAdmin: RequestHandler = deps.throttle?.perAdmin ?? ((_req, _res, next) => next());
  router.use(
    '/v1/admin',
    requireAdmin(deps.admins, deps.throttle?.failures),
    perAdmin,
    express.json({ limit: 8 * 1024, strict: true }),
  );

  router.get('/v1/admin/authorizations', async (req, res) => {
    const query = parse(listQuery, { ...req.query });
    res.json({ authorizations: await listAuthorizations(deps.authorizations, query) });
  });

  for (const action of ['revoke', 'reinstate'] as const) {
    router.post(`/v1/admin/authorizations/${action}`, async (req, res) => {
      const payload = parse(callbackPayloadSchema, req.body);
      const authorizationId = authorizationIdFor(deps.idSecret, payload);
      const result = await setRevocation(
        deps.authorizations,
        deps.audit,
        authorizationId,
        action,
        String(res.locals.admin),
      );
      if (result.outcome === 'not-found') {
        throw new AppError('AUTHORIZATION_NOT_FOUND', 'no authorization for this user, verifier and schema', 404);
      }
      res.json(
        action === 'revoke'
          ? { authorizationId, revoked: result.outcome === 'changed', state: 'revoked' }
          : { authorizationId, reinstated: result.outcome === 'changed' },
      );
    });
  }

  router.post('/v1/admin/authorizations/redrive', async (req, res) => {
    const payload = parse(callbackPayloadSchema, req.body);
    const authorizationId = authorizationIdFor(deps.idSecret, payload);
    const result = await redriveAuthorization(deps.authorizations, deps.redrive, authorizationId);
    switch (result.outcome) {
      case 'not-found':
        throw new AppError('AUTHORIZATION_NOT_FOUND', 'no authorization for this user, verifier and schema', 404);
      case 'not-redrivable':
        throw new AppError(
          'NOT_REDRIVABLE',
          `authorization is ${result.state}; only unrouted and no-data are re-driven`,
          409,
        );
      case 'run-closed':
        throw new AppError(
          'REDRIVE_RUN_CLOSED',
          'the run is no longer waiting for a re-drive (see docs/callbacks.md)',
          409,
        );
      case 'signalled':
        res.status(202).json({ authorizationId, workflowId: result.workflowId, redrive: 'signalled' });
    }
  });

  router.put('/v1/admin/verifiers/keys', async (req, res) => {
    const body = parse(keyBody, req.body);
    await deps.verifiers.putKey(body.verifierDid, body.jwk);
    res.json({ verifierDid: body.verifierDid, kid: body.jwk.kid });
  });

  router.post('/v1/admin/verifiers/keys/remove', async (req, res) => {
    const body = parse(removeKeyBody, req.body);
    res.json({ removed: await deps.verifiers.removeKey(body.verifierDid, body.kid) });
  });

  return router;
}
