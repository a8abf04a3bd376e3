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
import { CALLBACK_EXAMPLE } from './callbacks';
import { FRAMING_400, refusal, route, SAFE_JSON_ERRORS, type Refusal } from './routes';

/** Operator routes (declared below), behind an admin credential (ADMIN_TOKENS, `Authorization: Bearer <token>`). */

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
const keyBody = z.strictObject({
  verifierDid: callbackPayloadSchema.shape.verifierDid,
  jwk: z.strictObject({ kty: z.literal('EC'), crv: z.literal('P-256'), x: b64url, y: b64url, kid }),
});
const removeKeyBody = z.strictObject({ verifierDid: callbackPayloadSchema.shape.verifierDid, kid });
const listQuery = z.strictObject({
  state: z.enum(AUTHORIZATION_STATES).optional(),
  limit: z.coerce.number().int().min(1).max(500).default(100),
});

const JSON_ERRORS: Record<number, Refusal> = {
  400: refusal('invalid body', 'INVALID_FIELD', 'MALFORMED_JSON', ...SAFE_JSON_ERRORS, ...FRAMING_400),
  413: refusal('body over 8 KiB', 'BODY_TOO_LARGE'),
};
const NOT_FOUND = refusal('no such authorization', 'AUTHORIZATION_NOT_FOUND');
const admin = { tag: 'admin', auth: 'adminBearer' } as const;
/** A JSON body and its one example, `[key, summary]`. */
const json = (name: string, schema: z.ZodType, [key, summary]: [string, string], value: unknown) => ({
  content: { 'application/json': { name, schema, examples: { [key]: { summary, value } } } },
});
const authorizationKey = (action: string) =>
  json('AuthorizationKey', callbackPayloadSchema, [action, 'the authorization’s dedup key'], CALLBACK_EXAMPLE);
const date = z.iso.datetime();

export const listAuthorizationsRoute = route({
  ...admin,
  method: 'get',
  path: '/v1/admin/authorizations',
  operationId: 'listAuthorizations',
  summary: 'List authorizations (e.g. unrouted / no-data re-drive candidates)',
  query: listQuery,
  examples: { state: 'unrouted', limit: 50 },
  responses: {
    200: {
      description: 'the authorizations',
      name: 'AuthorizationList',
      schema: z.object({
        authorizations: z.array(
          z.object({
            ...{ authorizationId: z.string(), workflowId: z.string(), userId: z.string(), verifierDid: z.string() },
            ...{ schemaId: z.string(), state: z.enum(AUTHORIZATION_STATES), accessUntil: date.optional() },
            ...{ handlers: z.array(z.string()), deliveries: z.number().int(), redriven: z.number().int() },
            updatedAt: date,
          }),
        ),
      }),
    },
  },
  errors: { 400: refusal('invalid query', 'INVALID_FIELD', ...SAFE_JSON_ERRORS) },
});

export const revokeAuthorization = route({
  ...admin,
  method: 'post',
  path: '/v1/admin/authorizations/revoke',
  operationId: 'revokeAuthorization',
  summary: 'Revoke an authorization (stands against later consents until reinstated)',
  body: authorizationKey('revoke'),
  responses: {
    200: {
      description: 'revoked (`revoked: false` when it already was)',
      schema: z.object({ authorizationId: z.string(), revoked: z.boolean(), state: z.literal('revoked') }),
    },
  },
  errors: { ...JSON_ERRORS, 404: NOT_FOUND },
});

export const reinstateAuthorization = route({
  ...admin,
  method: 'post',
  path: '/v1/admin/authorizations/reinstate',
  operationId: 'reinstateAuthorization',
  summary: 'Lift a revocation: access is again what the current access window allows',
  body: authorizationKey('reinstate'),
  responses: {
    200: {
      description: 'reinstated (`reinstated: false` when no revocation stood)',
      schema: z.object({ authorizationId: z.string(), reinstated: z.boolean() }),
    },
  },
  errors: { ...JSON_ERRORS, 404: NOT_FOUND },
});

export const redriveAuthorizationRoute = route({
  ...admin,
  method: 'post',
  path: '/v1/admin/authorizations/redrive',
  operationId: 'redriveAuthorization',
  summary: 'Re-drive an unrouted or no-data authorization',
  body: authorizationKey('redrive'),
  responses: {
    202: {
      description: 'the run was signalled',
      schema: z.object({ authorizationId: z.string(), workflowId: z.string(), redrive: z.literal('signalled') }),
    },
  },
  errors: {
    ...JSON_ERRORS,
    404: NOT_FOUND,
    409: refusal('not unrouted / no-data, or the run no longer waits', 'NOT_REDRIVABLE', 'REDRIVE_RUN_CLOSED'),
  },
});

export const putVerifierKey = route({
  ...admin,
  method: 'put',
  path: '/v1/admin/verifiers/keys',
  operationId: 'putVerifierKey',
  summary: "Register a Verifier's ES256 public key",
  body: json('VerifierKey', keyBody, ['p256', 'a P-256 public JWK'], {
    verifierDid: CALLBACK_EXAMPLE.verifierDid,
    jwk: {
      ...{ kty: 'EC', crv: 'P-256', x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU' },
      ...{ y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0', kid: 'verifier-key-1' },
    },
  }),
  responses: { 200: { description: 'registered', schema: z.object({ verifierDid: z.string(), kid: z.string() }) } },
  errors: JSON_ERRORS,
});

export const removeVerifierKey = route({
  ...admin,
  method: 'post',
  path: '/v1/admin/verifiers/keys/remove',
  operationId: 'removeVerifierKey',
  summary: "Remove a Verifier's key",
  body: json('VerifierKeyRemoval', removeKeyBody, ['remove', 'by kid'], {
    verifierDid: CALLBACK_EXAMPLE.verifierDid,
    kid: 'verifier-key-1',
  }),
  responses: { 200: { description: 'whether a key was removed', schema: z.object({ removed: z.boolean() }) } },
  errors: JSON_ERRORS,
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

  listAuthorizationsRoute.on(router, async (req, res) => {
    const query = parse(listQuery, { ...req.query });
    listAuthorizationsRoute.send(res, 200, {
      authorizations: await listAuthorizations(deps.authorizations, query),
    });
  });

  const revocation = (action: 'revoke' | 'reinstate'): RequestHandler =>
    async function (req, res) {
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
      const changed = result.outcome === 'changed';
      if (action === 'revoke')
        revokeAuthorization.send(res, 200, { authorizationId, revoked: changed, state: 'revoked' });
      else reinstateAuthorization.send(res, 200, { authorizationId, reinstated: changed });
    };
  revokeAuthorization.on(router, revocation('revoke'));
  reinstateAuthorization.on(router, revocation('reinstate'));

  redriveAuthorizationRoute.on(router, async (req, res) => {
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
        redriveAuthorizationRoute.send(res, 202, {
          authorizationId,
          workflowId: result.workflowId,
          redrive: 'signalled',
        });
    }
  });

  putVerifierKey.on(router, async (req, res) => {
    const body = parse(keyBody, req.body);
    await deps.verifiers.putKey(body.verifierDid, body.jwk);
    putVerifierKey.send(res, 200, { verifierDid: body.verifierDid, kid: body.jwk.kid });
  });

  removeVerifierKey.on(router, async (req, res) => {
    const body = parse(removeKeyBody, req.body);
    removeVerifierKey.send(res, 200, { removed: await deps.verifiers.removeKey(body.verifierDid, body.kid) });
  });

  return router;
}
