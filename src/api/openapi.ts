import { Router } from 'express';
import { z } from 'zod';
import { SESSION_COOKIE } from '../crypto/codec-server';
import {
  listAuthorizationsRoute,
  putVerifierKey,
  redriveAuthorizationRoute,
  reinstateAuthorization,
  removeVerifierKey,
  revokeAuthorization,
} from './admin';
import { receiveAuthorizationCallback } from './callbacks';
import { CODEC_ROUTES } from './codec-routes';
import { getHealth, getReadiness } from './health';
import { createIssuance, getIssuance } from './issuances';
import { getPartnerJwks } from './jwks';
import { createPartnerToken } from './partner-tokens';
import { AUTH_ERRORS, cacheFor, errorBodySchema, INTERNAL, route, type Auth, type Route } from './routes';
import { getVerifierData, getVerifierPackage } from './verifier';

/**
 * The OpenAPI 3.1 document, generated from the route declarations (src/api/routes.ts) and served
 * at `GET /openapi.json`. zod schemas become JSON Schema (draft 2020-12, OpenAPI 3.1's dialect)
 * through `z.toJSONSchema`: requests as the client sends them (`io: 'input'`), answers as the
 * route sends them (`io: 'output'`). `test/unit/openapi.test.ts` checks the document and its
 * examples; `test/integration/openapi-routes.test.ts` checks the app's routes and real answers against it.
 */

export const getOpenApi = route({
  method: 'get',
  path: '/openapi.json',
  operationId: 'getOpenApi',
  summary: 'This document',
  tag: 'operations',
  auth: 'public',
  responses: {
    200: {
      description: 'the OpenAPI 3.1 document',
      schema: z.record(z.string(), z.unknown()),
      headers: cacheFor(300),
    },
  },
});

/** Every route the API registers (the integration test holds the app to exactly these). */
export const ROUTES: Route[] = [
  ...[getHealth, getReadiness, getOpenApi, getPartnerJwks, createPartnerToken, createIssuance, getIssuance],
  ...[receiveAuthorizationCallback, getVerifierData, getVerifierPackage, listAuthorizationsRoute],
  ...[revokeAuthorization, reinstateAuthorization, redriveAuthorizationRoute, putVerifierKey, removeVerifierKey],
  ...CODEC_ROUTES,
];

type JsonSchema = Record<string, unknown>;

const SECURITY: Record<Auth, Record<string, string[]>[]> = {
  public: [],
  apiKey: [{ apiKey: [] }],
  adminBearer: [{ adminBearer: [] }],
  verifierJwt: [{ verifierJwt: [] }],
  codec: [{ codecBearer: [] }, { codecSession: [] }],
};

/** A route's refusals: its auth's, 500, and its own. */
export const errorsOf = (r: Route) => ({ ...AUTH_ERRORS[r.auth], 500: INTERNAL, ...r.errors });

/** A route's parameters: one per key of its path, query and header zod objects. */
export function parametersOf(r: Route): { name: string; in: 'path' | 'query' | 'header'; schema: z.ZodType }[] {
  const from = (where: 'path' | 'query' | 'header', o: z.ZodObject | undefined) =>
    Object.entries((o?.shape ?? {}) as Record<string, z.ZodType>).map(([name, schema]) => ({
      name,
      in: where,
      schema,
    }));
  return [...from('path', r.params), ...from('query', r.query), ...from('header', r.headers)];
}

/**
 * zod -> JSON Schema; refinements have no JSON Schema form and are left out (`unrepresentable:
 * 'any'`). Local `$defs` (recursive schemas) are hoisted into components, since `#/$defs/...`
 * would resolve against the document root.
 */
function toJsonSchema(
  schema: z.ZodType,
  owner: string,
  components: Record<string, JsonSchema>,
  io: 'input' | 'output',
): JsonSchema {
  const { $schema: _dialect, $defs = {}, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  const renamed = (name: string) => `${owner}.${name.replace(/^_+/, '')}`;
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        k === '$ref' && typeof v === 'string' && v.startsWith('#/$defs/')
          ? `#/components/schemas/${renamed(v.slice(8))}`
          : rewrite(v),
      ]),
    );
  };
  for (const [name, def] of Object.entries($defs)) components[renamed(name)] = rewrite(def) as JsonSchema;
  return rewrite(rest) as JsonSchema;
}

export function buildOpenApiDocument(routes: Route[] = ROUTES): Record<string, unknown> {
  const schemas: Record<string, JsonSchema> = {};
  const named = (name: string | undefined, schema: z.ZodType, owner: string, io: 'input' | 'output') => {
    if (!name) return toJsonSchema(schema, owner, schemas, io);
    schemas[name] ??= toJsonSchema(schema, name, schemas, io);
    return { $ref: `#/components/schemas/${name}` };
  };
  schemas.ErrorBody = toJsonSchema(errorBodySchema, 'ErrorBody', schemas, 'output');
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of routes) {
    const responses: Record<string, unknown> = {};
    for (const [status, a] of Object.entries(r.responses)) {
      const mediaType = a.mediaType ?? 'application/json';
      const schema = a.schema
        ? named(a.name, a.schema, `${r.operationId}.${status}`, 'output')
        : { type: 'string', contentMediaType: mediaType };
      responses[status] = {
        description: a.description,
        ...(a.headers ? { headers: a.headers } : {}),
        ...(a.schema || a.mediaType ? { content: { [mediaType]: { schema } } } : {}),
      };
    }
    for (const [status, e] of Object.entries(errorsOf(r))) {
      const code = { type: 'object', properties: { code: { enum: [...e.codes] } } };
      responses[status] = {
        description: `${e.description}: ${e.codes.map((c) => `\`${c}\``).join(', ')}`,
        ...(e.headers ? { headers: e.headers } : {}),
        content: {
          'application/json': {
            schema: {
              allOf: [{ $ref: '#/components/schemas/ErrorBody' }, { type: 'object', properties: { error: code } }],
            },
          },
        },
      };
    }
    const parameters = parametersOf(r).map((p) => {
      const { description, ...schema } = toJsonSchema(p.schema, `${r.operationId}.${p.name}`, schemas, 'input');
      return {
        name: p.name,
        in: p.in,
        required: p.in === 'path' || !p.schema.safeParse(undefined).success,
        ...(description ? { description } : {}),
        schema,
        ...(r.examples && p.name in r.examples ? { example: r.examples[p.name] } : {}),
      };
    });
    const body = r.body && {
      required: true,
      ...(r.body.description ? { description: r.body.description } : {}),
      content: Object.fromEntries(
        Object.entries(r.body.content).map(([mediaType, c]) => [
          mediaType,
          {
            schema: named(c.name, c.schema, c.name, 'input'),
            examples: c.examples,
            ...(c.encoding ? { encoding: c.encoding } : {}),
          },
        ]),
      ),
    };
    (paths[r.path] ??= {})[r.method] = {
      operationId: r.operationId,
      summary: r.summary,
      ...(r.description ? { description: r.description } : {}),
      tags: [r.tag],
      security: SECURITY[r.auth],
      ...(parameters.length ? { parameters } : {}),
      ...(body ? { requestBody: body } : {}),
      responses,
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'cak-issuer API',
      version: '0.1.0',
      description:
        'Issuer-side service for the AIR Credential Compliance Access Key (CAK). Every error of the API proper is ' +
        '`{error: {code, message, details?}}` with a stable `code`; unknown routes answer 404 `NOT_FOUND`.',
    },
    servers: [{ url: '/', description: 'the API that serves this document (API_HOST:API_PORT)' }],
    tags: [
      { name: 'issuance', description: 'encrypt and store sensitive data at issuance (docs/issuance.md)' },
      { name: 'authorization', description: 'platform callbacks (docs/callbacks.md)' },
      { name: 'verifier', description: 'the Semi-Decrypted Data API for consented Verifiers' },
      { name: 'admin', description: 'operator routes' },
      { name: 'codec', description: "the Temporal Web UI's remote payload codec" },
      { name: 'operations', description: 'health, readiness, metrics, this document' },
    ],
    paths,
    components: {
      schemas,
      securitySchemes: {
        apiKey: { type: 'apiKey', in: 'header', name: 'x-api-key', description: 'an API client key (API_KEYS)' },
        adminBearer: { type: 'http', scheme: 'bearer', description: 'an admin token (ADMIN_TOKENS)' },
        verifierJwt: {
          type: 'http',
          scheme: 'bearer',
          bearerFormat: 'JWT',
          description: 'an ES256 Verifier JWT signed with a key registered for its verifierDid',
        },
        codecBearer: { type: 'http', scheme: 'bearer', description: 'a codec token (CODEC_AUTH_TOKENS)' },
        codecSession: {
          type: 'apiKey',
          in: 'cookie',
          name: SESSION_COOKIE,
          description: 'the session cookie set by `POST /codec/session`',
        },
      },
    },
  };
}

/** `GET /openapi.json`: public and cacheable (it changes only with a deployment). */
export function openapiRoutes(): Router {
  const router = Router();
  let body: string | undefined;
  getOpenApi.on(router, (_req, res) => {
    body ??= JSON.stringify(buildOpenApiDocument());
    res.set('Cache-Control', 'public, max-age=300').type('application/json').send(body);
  });
  return router;
}
