import { Router } from 'express';
import { z } from 'zod';
import { AUTHORIZATION_STATES } from '../operations/authorizations';
import { DEV_ISSUER_DID } from '../config';
import { SESSION_COOKIE, bodySchema as codecBodySchema } from '../crypto/codec-server';
import { callbackPayloadSchema, CALLBACK_MAX_BODY_BYTES } from '../domain/callback';
import { ISSUANCE_ID_PATTERN } from '../domain/ids';
import {
  ALLOWED_FILE_TYPES,
  IDEMPOTENCY_KEY_PATTERN,
  issuanceJsonSchema,
  kindSchema,
  multipartTextSchema,
} from '../domain/issuance-request';
import { DETACHED_JWS, JWS_SIGNATURE_HEADER, WEBHOOK_ID, WEBHOOK_TIMESTAMP } from '../platform/callback-signature';
import { keyBody as verifierKeyBody, listQuery as authorizationListQuery, removeKeyBody } from './admin';
import { tokenRequest as partnerTokenRequest } from './partner-tokens';
import { dataQuery as verifierDataQuery } from './verifier';

/**
 * The OpenAPI 3.1 document of every route the API registers, served at `GET /openapi.json`.
 *
 * Request schemas are the zod schemas the routes validate with (imported, never copied), turned
 * into JSON Schema (draft 2020-12, OpenAPI 3.1's dialect) by `z.toJSONSchema` in its input mode:
 * the request as the client sends it (defaults optional, coercions as their input). Where a route
 * checks something without zod (multipart parts, the callback's signature headers, the codec
 * sign-in form), the schema here is built from the same constants the check uses.
 * `test/unit/openapi.test.ts` checks every example against its zod schema and the document
 * against the OpenAPI 3.1 meta-schema; `test/integration/openapi-routes.test.ts` checks that
 * the operations below are exactly the routes the app registers.
 */

export type HttpMethod = 'get' | 'post' | 'put' | 'delete' | 'patch';

export interface Example {
  summary: string;
  value: unknown;
}

export interface BodyDoc {
  /** media type, e.g. application/json */
  mediaType: string;
  /** component name under #/components/schemas */
  name: string;
  /** the zod schema the route validates the body with (examples are checked against it) */
  schema: z.ZodType;
  examples: Record<string, Example>;
  /** OpenAPI encoding object (multipart parts) */
  encoding?: Record<string, { contentType: string }>;
}

export interface ParameterDoc {
  name: string;
  in: 'query' | 'path' | 'header' | 'cookie';
  required: boolean;
  description?: string;
  schema: z.ZodType;
  example: unknown;
}

export interface ResponseDoc {
  description: string;
  /** the error codes this status carries (`{error: {code, ...}}`); omit for a success body */
  codes?: readonly string[];
  /** success body: media type and zod schema (documentation only; responses are not validated) */
  content?: { mediaType: string; schema?: z.ZodType; name?: string; binary?: boolean };
  headers?: Record<string, { description: string; schema: Record<string, unknown> }>;
}

export interface OperationDoc {
  method: HttpMethod;
  /** OpenAPI form: `/v1/issuances/{id}` */
  path: string;
  operationId: string;
  summary: string;
  description?: string;
  tags: string[];
  /** security requirement objects; `[]` for a public route */
  security: Record<string, string[]>[];
  parameters?: ParameterDoc[];
  /** a zod object the route validates its whole query with (one parameter per key) */
  query?: { schema: z.ZodObject; example: Record<string, unknown> };
  body?: { required: boolean; description?: string; content: BodyDoc[] };
  responses: Record<string, ResponseDoc>;
}

// ---------------------------------------------------------------------------------------------
// Shared pieces

/** The one error body every `/v1/*` route, health route and the 404 answer with (src/api/errors.ts). */
export const errorBodySchema = z.strictObject({
  error: z.strictObject({
    code: z.string().meta({ description: 'stable, machine-readable; clients branch on it' }),
    message: z.string().meta({ description: 'for people; may change' }),
    details: z
      .record(z.string(), z.unknown())
      .optional()
      .meta({ description: 'e.g. `field`, the path of the offending input' }),
  }),
});

/** The codec endpoint's own, deliberately generic error body (src/crypto/codec-server.ts). */

type Security = Record<string, string[]>[];
const apiKey: Security = [{ apiKey: [] }];
const adminBearer: Security = [{ adminBearer: [] }];
const verifierJwt: Security = [{ verifierJwt: [] }];
const codecAuth: Security = [{ codecBearer: [] }, { codecSession: [] }];
const publicRoute: Security = [];

const json = 'application/json';
/** A refusal by the codec endpoint, in the API's error envelope (no detail of the keys or payloads). */
const codecError = (description: string, codes: string[]): ResponseDoc => ({ description, codes });
const INTERNAL: ResponseDoc = { description: 'unexpected failure', codes: ['INTERNAL'] };
const JSON_BODY_ERRORS = ['MALFORMED_JSON'] as const;
const SAFE_JSON_ERRORS = ['UNSAFE_KEY', 'JSON_TOO_DEEP', 'JSON_TOO_MANY_KEYS'] as const;
/** What every admin route with a JSON body can refuse. */
/** Over the caller's per-minute budget, or (its credential failing) over its address's failed-authentication budget. */
const rateLimited: ResponseDoc = {
  description: "over the caller's per-minute rate limit, or too many failed authentications from this address",
  codes: ['RATE_LIMITED', 'AUTH_RATE_LIMITED'],
  headers: { 'Retry-After': { description: 'seconds', schema: { type: 'integer' } } },
};
/** A body that cannot be read: cut short, or a Content-Encoding that does not decode. */
const FRAMING_400 = ['REQUEST_ABORTED', 'MALFORMED_ENCODING'] as const;
const ADMIN_JSON_ERRORS: Record<'400' | '401' | '413' | '429', ResponseDoc> = {
  '400': {
    description: 'invalid body',
    codes: ['INVALID_FIELD', ...JSON_BODY_ERRORS, ...SAFE_JSON_ERRORS, ...FRAMING_400],
  },
  '401': { description: 'no valid admin token', codes: ['ADMIN_UNAUTHENTICATED'] },
  '413': { description: 'body over 8 KiB', codes: ['BODY_TOO_LARGE'] },
  '429': rateLimited,
};
const noStore = { 'Cache-Control': { description: '`no-store`', schema: { type: 'string' } } };

const userId = 'user-123';
const verifierDid = 'did:air:id:verifier';
const schemaId = 'kyc-basic';
const PNG_1PX = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';

/** The multipart form: the text parts of `multipartTextSchema` plus one file part per item kind. */
export const issuanceMultipartForm = multipartTextSchema
  .catchall(
    z.string().meta({
      description:
        'a file part: its name is the item kind (lowercase letters, digits and -, max 32; not "fields"), ' +
        `its Content-Type one of ${ALLOWED_FILE_TYPES.join(', ')}`,
      contentMediaType: 'application/octet-stream',
    }),
  )
  .superRefine((form, ctx) => {
    for (const name of Object.keys(form)) {
      if (name in multipartTextSchema.shape) continue;
      const kind = kindSchema.safeParse(name);
      if (!kind.success) ctx.addIssue({ code: 'custom', path: [name], message: kind.error.issues[0]!.message });
    }
  });

/** The codec sign-in form (`token`, checked as a string against CODEC_AUTH_TOKENS). */
const codecSessionForm = z.object({ token: z.string().meta({ description: 'one of CODEC_AUTH_TOKENS' }) });

// Success bodies (documentation only).
const issuanceAccepted = z.object({
  issuanceId: z.string().regex(ISSUANCE_ID_PATTERN),
  status: z.enum(['accepted', 'running', 'stored', 'completed', 'failed']),
  statusUrl: z.string(),
});
const stepState = z.object({
  state: z.enum(['pending', 'running', 'completed', 'failed']),
  at: z.iso.datetime().optional(),
});
const issuanceStatus = z.object({
  issuanceId: z.string(),
  status: issuanceAccepted.shape.status,
  workflowId: z.string().meta({
    description: 'the Temporal workflow id of the issuance run (`issuance-<keyed hash>`, no personal data)',
    examples: ['issuance-79wqeCUbk1ECdfhC1NpfCeby'],
  }),
  webUiUrl: z
    .url()
    .optional()
    .meta({
      description:
        'the run in the Temporal Web UI: `TEMPORAL_UI_URL` + `/namespaces/<TEMPORAL_NAMESPACE>/workflows/<workflowId>`; ' +
        'its payloads show decoded only to an operator signed in to the codec endpoint (docs/operations.md)',
      examples: ['http://127.0.0.1:8233/namespaces/default/workflows/issuance-79wqeCUbk1ECdfhC1NpfCeby'],
    }),
  schemaId: z.string(),
  curve: z.enum(['secp256r1', 'secp256k1']),
  keySource: z.enum(['client', 'platform']),
  steps: z.object({ issue: stepState, encrypt: stepState, store: stepState, shred: stepState }),
  error: z.object({ type: z.string(), message: z.string() }).optional(),
  record: z
    .object({
      recordId: z.string(),
      version: z.number().int(),
      items: z.array(
        z.object({
          itemId: z.string(),
          kind: z.string(),
          contentType: z.string(),
          size: z.number().int(),
          sha256: z.string(),
          curve: z.string(),
          keyId: z.string(),
          packageId: z.string(),
        }),
      ),
    })
    .optional(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});
const partnerToken = z.object({
  token: z.string(),
  tokenType: z.literal('JWT'),
  kid: z.string(),
  expiresAt: z.iso.datetime(),
});
const callbackAck = z.object({
  workflowId: z.string(),
  duplicate: z.boolean(),
  queued: z.boolean(),
});
const authorizationState = z.enum(AUTHORIZATION_STATES);
const authorizationList = z.object({
  authorizations: z.array(
    z.object({
      authorizationId: z.string(),
      workflowId: z.string(),
      userId: z.string(),
      verifierDid: z.string(),
      schemaId: z.string(),
      state: authorizationState,
      accessUntil: z.iso.datetime().optional(),
      handlers: z.array(z.string()),
      deliveries: z.number().int(),
      redriven: z.number().int(),
      updatedAt: z.iso.datetime(),
    }),
  ),
});
const verifierManifest = z.object({
  authorizationId: z.string(),
  userId: z.string(),
  schemaId: z.string(),
  recordId: z.string(),
  version: z.number().int(),
  expiresAt: z.iso.datetime(),
  items: z.array(
    z.object({
      itemId: z.string(),
      kind: z.string(),
      contentType: z.string(),
      curve: z.string(),
      url: z.string().meta({ description: 'signed, short-lived `/v1/verifier/packages/{token}`' }),
    }),
  ),
});
/** Up or down only: why a dependency is down goes to the log, never to this public answer. */
const checkResult = z.object({ status: z.enum(['up', 'down']) });
const readiness = z.object({
  status: z.enum(['ready', 'not-ready', 'draining']),
  checks: z
    .object({ temporal: checkResult, database: checkResult })
    .optional()
    .meta({ description: 'absent when `draining`' }),
});
const jwks = z.object({ keys: z.array(z.record(z.string(), z.unknown())) });
const codecPayloads = z.object({
  payloads: z.array(z.object({ metadata: z.record(z.string(), z.string()), data: z.string() })),
});

const issuanceBodyErrors = [
  ...JSON_BODY_ERRORS,
  'INVALID_BODY',
  'UNKNOWN_PROGRAM',
  'PROGRAM_SCHEMA_MISMATCH',
  'ISSUER_SCHEMA_MISMATCH',
  'MALFORMED_MULTIPART',
  'TEXT_PART_AFTER_FILE',
  'REQUEST_ABORTED',
  'MISSING_FIELD',
  'UNKNOWN_FIELD',
  'INVALID_FIELD',
  'INVALID_CURVE',
  'UNSUPPORTED_FILE_TYPE',
  ...SAFE_JSON_ERRORS,
  'SUBJECT_TOO_LARGE',
  'INVALID_BASE64',
  'FILE_TOO_LARGE',
  'NO_ITEMS',
  'TOO_MANY_FIELDS',
  'TOO_MANY_FILES',
  'DUPLICATE_ITEM',
  'EMPTY_FILE',
  'FILE_CONTENT_MISMATCH',
  'UNKNOWN_SCHEMA',
  'ITEM_NOT_ALLOWED',
  'INVALID_CAK_PUBLIC_KEY',
  'INVALID_IDEMPOTENCY_KEY',
] as const;

const callbackPayloadExample = { userId, verifierDid, schemaId };

const signatureHeader = (name: string, description: string, schema: z.ZodType, example: string): ParameterDoc => ({
  name,
  in: 'header',
  required: false,
  description,
  schema,
  example,
});

// ---------------------------------------------------------------------------------------------
// Every operation the API registers

export const operations: OperationDoc[] = [
  {
    method: 'get',
    path: '/healthz',
    operationId: 'getHealth',
    summary: 'Liveness: the process is up',
    tags: ['operations'],
    security: publicRoute,
    responses: {
      '200': { description: 'up', content: { mediaType: json, schema: z.object({ status: z.literal('ok') }) } },
    },
  },
  {
    method: 'get',
    path: '/readyz',
    operationId: 'getReadiness',
    summary: 'Readiness: Temporal and the database each answer',
    tags: ['operations'],
    security: publicRoute,
    responses: {
      '200': { description: 'both up', content: { mediaType: json, schema: readiness, name: 'Readiness' } },
      '503': {
        description: 'either is down (named in `checks`), or the process is shutting down (`draining`)',
        content: { mediaType: json, schema: readiness, name: 'Readiness' },
      },
    },
  },
  {
    method: 'get',
    path: '/openapi.json',
    operationId: 'getOpenApi',
    summary: 'This document',
    tags: ['operations'],
    security: publicRoute,
    responses: {
      '200': {
        description: 'the OpenAPI 3.1 document',
        content: { mediaType: json, schema: z.record(z.string(), z.unknown()) },
        headers: { 'Cache-Control': { description: '`public, max-age=300`', schema: { type: 'string' } } },
      },
    },
  },
  {
    method: 'get',
    path: '/.well-known/jwks.json',
    operationId: 'getPartnerJwks',
    summary: 'Public halves of every Partner JWT signing key',
    description: 'The AIR platform verifies our Partner JWTs with these keys. Rate-limited per IP.',
    tags: ['issuance'],
    security: publicRoute,
    responses: {
      '200': {
        description: 'a JWK Set',
        content: { mediaType: json, schema: jwks },
        headers: { 'Cache-Control': { description: '`public, max-age=3600`', schema: { type: 'string' } } },
      },
      '429': rateLimited,
    },
  },
  {
    method: 'post',
    path: '/v1/partner-tokens',
    operationId: 'createPartnerToken',
    summary: 'Mint a short-lived Partner JWT for the SDK',
    description:
      "For the issuer's own front end: `issueCredential()` / `verifyCredential()` need a Partner JWT " +
      '(claims `partnerId`, `scope`, `sub` = userId when given).',
    tags: ['issuance'],
    security: apiKey,
    body: {
      required: true,
      content: [
        {
          mediaType: json,
          name: 'PartnerTokenRequest',
          schema: partnerTokenRequest,
          examples: {
            issue: { summary: 'a token to issue a credential for a user', value: { scope: 'issue', userId } },
            verify: { summary: 'a token for the browser SDK to verify', value: { scope: 'verify' } },
          },
        },
      ],
    },
    responses: {
      '201': {
        description: 'the token',
        content: { mediaType: json, schema: partnerToken, name: 'PartnerToken' },
        headers: noStore,
      },
      '400': {
        description: 'invalid request',
        codes: ['INVALID_TOKEN_REQUEST', ...JSON_BODY_ERRORS, ...FRAMING_400],
      },
      '401': { description: 'no valid `x-api-key`', codes: ['UNAUTHENTICATED'] },
      '413': { description: 'body over 4 KB', codes: ['BODY_TOO_LARGE'] },
      '415': {
        description: 'a charset other than UTF-8, or an unknown Content-Encoding',
        codes: ['UNSUPPORTED_CHARSET', 'UNSUPPORTED_ENCODING'],
      },
      '429': rateLimited,
    },
  },
  {
    method: 'post',
    path: '/v1/issuances',
    operationId: 'createIssuance',
    summary: 'Issue a credential and store its sensitive items encrypted',
    description:
      'Validates everything, stages the raw items (encrypted, short-lived) and starts the issuance workflow ' +
      '(issue -> encrypt -> store -> shred). Nothing is recorded, staged or started before every check passed. ' +
      'Same `Idempotency-Key` and same request: the same issuance, `Idempotent-Replayed: true`.',
    tags: ['issuance'],
    security: apiKey,
    parameters: [
      {
        name: 'Idempotency-Key',
        in: 'header',
        required: false,
        description: 'repeats with the same key and request land on the same issuance (per API client)',
        schema: z.string().regex(IDEMPOTENCY_KEY_PATTERN),
        example: 'order-2024-0001',
      },
    ],
    body: {
      required: true,
      content: [
        {
          mediaType: json,
          name: 'IssuanceRequest',
          schema: issuanceJsonSchema,
          examples: {
            withFile: {
              summary: 'text fields and one ID image (base64)',
              value: {
                userId,
                issuerDid: DEV_ISSUER_DID,
                credentialId: 'prog-kyc-basic',
                schemaId,
                credentialSubject: { level: 'basic', country: 'DE' },
                fields: { fullName: 'Ada Lovelace', dateOfBirth: '1815-12-10' },
                files: [{ kind: 'id-front', contentType: 'image/png', data: PNG_1PX }],
              },
            },
            fieldsOnly: {
              summary: 'text fields only, on secp256k1, with the CAK key from the SDK',
              value: {
                userId,
                issuerDid: DEV_ISSUER_DID,
                credentialId: 'prog-kyc-basic',
                schemaId,
                curve: 'secp256k1',
                cakPublicKey: '0271ee9620458a3251d92b94a72aa9302306775604eb057dd39d6af8384ec050e1',
                credentialSubject: { level: 'basic' },
                fields: { fullName: 'Ada Lovelace' },
              },
            },
          },
        },
        {
          mediaType: 'multipart/form-data',
          name: 'IssuanceMultipartForm',
          schema: issuanceMultipartForm,
          encoding: {
            credentialSubject: { contentType: json },
            fields: { contentType: json },
          },
          examples: {
            withFile: {
              summary: 'the same scalars as text parts, JSON parts, one file part per kind',
              value: {
                userId,
                issuerDid: DEV_ISSUER_DID,
                credentialId: 'prog-kyc-basic',
                schemaId,
                credentialSubject: { level: 'basic' },
                fields: { fullName: 'Ada Lovelace' },
                'id-front': '<PNG bytes>',
              },
            },
          },
        },
      ],
    },
    responses: {
      '202': {
        description: 'accepted (or replayed); poll `statusUrl`',
        content: { mediaType: json, schema: issuanceAccepted, name: 'IssuanceAccepted' },
        headers: {
          Location: { description: 'the status URL', schema: { type: 'string' } },
          'Idempotent-Replayed': { description: '`true` on a replay', schema: { type: 'string' } },
        },
      },
      '400': { description: 'invalid request (nothing stored or started)', codes: issuanceBodyErrors },
      '401': { description: 'no valid `x-api-key`', codes: ['UNAUTHENTICATED'] },
      '403': {
        description:
          'the issuer DID is not served, the client is not granted it (or the schema), or another client holds the record',
        codes: ['ISSUER_NOT_SERVED', 'CLIENT_NOT_PERMITTED', 'RECORD_OWNED_BY_ANOTHER_CLIENT'],
      },
      '409': { description: 'the Idempotency-Key was used with another request', codes: ['IDEMPOTENCY_KEY_REUSED'] },
      '413': { description: 'body or files over the limits', codes: ['BODY_TOO_LARGE', 'ITEMS_TOO_LARGE'] },
      '415': {
        description: 'neither JSON nor multipart/form-data, a charset other than UTF-8, or an unknown Content-Encoding',
        codes: ['UNSUPPORTED_MEDIA_TYPE', 'UNSUPPORTED_CHARSET', 'UNSUPPORTED_ENCODING'],
      },
      '429': rateLimited,
      '503': { description: 'could not stage or start; retry with the same key', codes: ['UNAVAILABLE'] },
    },
  },
  {
    method: 'get',
    path: '/v1/issuances/{id}',
    operationId: 'getIssuance',
    summary: 'State of an issuance, per step, and its stored record version',
    description:
      'Also names the Temporal run (`workflowId`) and links it in the Web UI (`webUiUrl`), where an operator ' +
      'signed in to the codec endpoint reads its decoded input (docs/operations.md, "Inspect runs in the Web UI").',
    tags: ['issuance'],
    security: apiKey,
    parameters: [
      {
        name: 'id',
        in: 'path',
        required: true,
        description: 'the issuance id (another client’s is not found)',
        schema: z.string().regex(ISSUANCE_ID_PATTERN),
        example: 'iss_AAAAAAAAAAAAAAAAAAAAAAAA',
      },
    ],
    responses: {
      '200': {
        description: 'the issuance',
        content: { mediaType: json, schema: issuanceStatus, name: 'IssuanceStatus' },
        headers: noStore,
      },
      '401': { description: 'no valid `x-api-key`', codes: ['UNAUTHENTICATED'] },
      '404': { description: 'no such issuance for this client', codes: ['ISSUANCE_NOT_FOUND'] },
      '429': rateLimited,
    },
  },
  {
    method: 'post',
    path: '/v1/cak/callbacks',
    operationId: 'receiveAuthorizationCallback',
    summary: "The AIR platform's authorization callback (a user consented to a Verifier)",
    description:
      `Signed by the platform; the body is read raw (at most ${CALLBACK_MAX_BODY_BYTES} bytes) and its signature ` +
      'checked on those bytes before it is parsed. Which headers carry the signature depends on ' +
      '`CALLBACK_SIGNATURE_SCHEME`: `standard-webhooks` (`webhook-id`, `webhook-timestamp`, `webhook-signature`) ' +
      `or \`jws-es256\` (\`${JWS_SIGNATURE_HEADER}\`). Acknowledged once durable. See docs/callbacks.md.`,
    tags: ['authorization'],
    security: publicRoute,
    parameters: [
      signatureHeader(
        'webhook-id',
        'standard-webhooks: the message id (stable across retries)',
        z.string().regex(WEBHOOK_ID),
        'msg_2Z1nB0pVqYb5',
      ),
      signatureHeader(
        'webhook-timestamp',
        'standard-webhooks: Unix seconds, within CALLBACK_TOLERANCE_SECONDS of now',
        z.string().regex(WEBHOOK_TIMESTAMP),
        '1735689600',
      ),
      signatureHeader(
        'webhook-signature',
        'standard-webhooks: space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>` entries',
        z.string().max(4096),
        'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
      ),
      signatureHeader(
        JWS_SIGNATURE_HEADER,
        'jws-es256: detached compact JWS over the raw body, protected header `{alg: ES256, kid, iat}`',
        z.string().regex(DETACHED_JWS),
        'eyJhbGciOiJFUzI1NiIsImtpZCI6InBsYXRmb3JtLTEiLCJpYXQiOjE3MzU2ODk2MDB9..c2lnbmF0dXJl',
      ),
    ],
    body: {
      required: true,
      description: '`application/json` (charset, if given, `utf-8`); keys are checked for safety before the schema',
      content: [
        {
          mediaType: json,
          name: 'CallbackPayload',
          schema: callbackPayloadSchema,
          examples: { consent: { summary: 'a user consented to a Verifier', value: callbackPayloadExample } },
        },
      ],
    },
    responses: {
      '200': {
        description: 'Temporal has the run (`duplicate` for any later delivery)',
        content: { mediaType: json, schema: callbackAck, name: 'CallbackAck' },
      },
      '202': {
        description: 'Temporal could not take it in time; the inbox has it (`queued: true`)',
        content: { mediaType: json, schema: callbackAck, name: 'CallbackAck' },
      },
      '400': {
        description: 'body checks',
        codes: [
          'MALFORMED_JSON',
          'INVALID_BODY',
          'MISSING_FIELD',
          'UNKNOWN_FIELD',
          'INVALID_FIELD',
          ...SAFE_JSON_ERRORS,
          'REQUEST_ABORTED',
        ],
      },
      '401': {
        description:
          'signature checks; the message and `details` (`{header, expected}`) name the header at fault, e.g. a ' +
          '`webhook-timestamp` in milliseconds (it is Unix seconds)',
        codes: [
          'SIGNATURE_MISSING',
          'SIGNATURE_MALFORMED',
          'SIGNATURE_INVALID',
          'SIGNATURE_TIMESTAMP_STALE',
          'SIGNATURE_TIMESTAMP_FUTURE',
          'SIGNATURE_KEY_UNKNOWN',
        ],
      },
      '413': { description: `body over ${CALLBACK_MAX_BODY_BYTES} bytes`, codes: ['BODY_TOO_LARGE'] },
      '415': {
        description: 'not `application/json` (charset, if any, `utf-8`), or any Content-Encoding but identity',
        codes: ['UNSUPPORTED_MEDIA_TYPE', 'UNSUPPORTED_ENCODING'],
      },
      '503': {
        description:
          "the platform's JWKS cannot be fetched (jws-es256), or neither Temporal nor the database could take the delivery: retry",
        codes: ['SIGNATURE_KEYS_UNAVAILABLE', 'CALLBACK_NOT_DURABLE'],
      },
    },
  },
  {
    method: 'get',
    path: '/v1/verifier/data',
    operationId: 'getVerifierData',
    summary: "A consented Verifier's manifest of a user's data, with signed package URLs",
    description:
      'Bearer JWT: ES256, `iss` = `sub` = the verifierDid, `aud` = `cak-issuer`, `exp` at most 10 minutes after `iat`, ' +
      'signed with a key registered for that DID. Every answer is an audit event.',
    tags: ['verifier'],
    security: verifierJwt,
    query: { schema: verifierDataQuery, example: { userId, schemaId } },
    responses: {
      '200': {
        description: 'the current record version’s manifest',
        content: { mediaType: json, schema: verifierManifest, name: 'VerifierManifest' },
        headers: noStore,
      },
      '400': { description: 'invalid query', codes: ['INVALID_FIELD'] },
      '401': {
        description:
          'no valid Verifier JWT. The message and `details` name what is wrong: a header parameter ' +
          '(`{header: "alg", expected, got}`) or a claim (`{claim, reason, expected, got}`: `iss` not a DID, `sub` not ' +
          'the `iss`, `aud` not `cak-issuer`, `exp` past, `iat` in the future or too old, `exp - iat` over 600 s, a ' +
          'claim missing or not a number); these read only the token, never whether its verifierDid is registered. ' +
          'Past them, a signature that no key registered for the verifierDid verifies is `{check: "signature"}`, ' +
          'with one message whatever the reason',
        codes: ['VERIFIER_UNAUTHENTICATED'],
      },
      '403': {
        description:
          'the access rule refuses (userId, verifierDid, schemaId) now: no grant, an operator revocation, or a closed access window',
        codes: ['AUTHORIZATION_REQUIRED', 'AUTHORIZATION_REVOKED', 'AUTHORIZATION_EXPIRED'],
      },
      '404': { description: 'no data held for this user and schema', codes: ['NO_DATA'] },
      '429': rateLimited,
    },
  },
  {
    method: 'get',
    path: '/v1/verifier/packages/{token}',
    operationId: 'getVerifierPackage',
    summary: 'One item’s inner CAK-ECIES package (outer issuer layer removed)',
    description:
      'The URL is the credential: signed, short-lived, and the authorization is checked again on each download.',
    tags: ['verifier'],
    security: publicRoute,
    parameters: [
      {
        name: 'token',
        in: 'path',
        required: true,
        description: '`<base64url(claims)>.<base64url(HMAC)>` from the manifest',
        schema: z.string().regex(/^[A-Za-z0-9_-]{1,1024}\.[A-Za-z0-9_-]{43}$/),
        example: 'eyJwdXIiOiJwYWNrYWdlIn0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
      },
    ],
    responses: {
      '200': {
        description: 'the package bytes',
        content: { mediaType: 'application/octet-stream', binary: true },
        headers: noStore,
      },
      '403': {
        description: 'URL tampered with or expired, or the access rule refuses now (revoked, window closed)',
        codes: [
          'URL_INVALID',
          'URL_EXPIRED',
          'AUTHORIZATION_REQUIRED',
          'AUTHORIZATION_REVOKED',
          'AUTHORIZATION_EXPIRED',
        ],
      },
      '404': { description: 'a newer version replaced the package', codes: ['PACKAGE_NOT_FOUND'] },
      '429': rateLimited,
    },
  },
  {
    method: 'get',
    path: '/v1/admin/authorizations',
    operationId: 'listAuthorizations',
    summary: 'List authorizations (e.g. unrouted / no-data re-drive candidates)',
    tags: ['admin'],
    security: adminBearer,
    query: { schema: authorizationListQuery, example: { state: 'unrouted', limit: 50 } },
    responses: {
      '200': {
        description: 'the authorizations',
        content: { mediaType: json, schema: authorizationList, name: 'AuthorizationList' },
      },
      '400': { description: 'invalid query', codes: ['INVALID_FIELD', ...SAFE_JSON_ERRORS] },
      '401': { description: 'no valid admin token', codes: ['ADMIN_UNAUTHENTICATED'] },
      '429': rateLimited,
    },
  },
  {
    method: 'post',
    path: '/v1/admin/authorizations/revoke',
    operationId: 'revokeAuthorization',
    summary: 'Revoke an authorization (stands against later consents until reinstated)',
    tags: ['admin'],
    security: adminBearer,
    body: {
      required: true,
      content: [
        {
          mediaType: json,
          name: 'AuthorizationKey',
          schema: callbackPayloadSchema,
          examples: { revoke: { summary: 'the authorization’s dedup key', value: callbackPayloadExample } },
        },
      ],
    },
    responses: {
      '200': {
        description: 'revoked (`revoked: false` when it already was)',
        content: {
          mediaType: json,
          schema: z.object({ authorizationId: z.string(), revoked: z.boolean(), state: z.literal('revoked') }),
        },
      },
      ...ADMIN_JSON_ERRORS,
      '404': { description: 'no such authorization', codes: ['AUTHORIZATION_NOT_FOUND'] },
    },
  },
  {
    method: 'post',
    path: '/v1/admin/authorizations/reinstate',
    operationId: 'reinstateAuthorization',
    summary: 'Lift a revocation: access is again what the current access window allows',
    tags: ['admin'],
    security: adminBearer,
    body: {
      required: true,
      content: [
        {
          mediaType: json,
          name: 'AuthorizationKey',
          schema: callbackPayloadSchema,
          examples: { reinstate: { summary: 'the authorization’s dedup key', value: callbackPayloadExample } },
        },
      ],
    },
    responses: {
      '200': {
        description: 'reinstated (`reinstated: false` when no revocation stood)',
        content: {
          mediaType: json,
          schema: z.object({ authorizationId: z.string(), reinstated: z.boolean() }),
        },
      },
      ...ADMIN_JSON_ERRORS,
      '404': { description: 'no such authorization', codes: ['AUTHORIZATION_NOT_FOUND'] },
    },
  },
  {
    method: 'post',
    path: '/v1/admin/authorizations/redrive',
    operationId: 'redriveAuthorization',
    summary: 'Re-drive an unrouted or no-data authorization',
    tags: ['admin'],
    security: adminBearer,
    body: {
      required: true,
      content: [
        {
          mediaType: json,
          name: 'AuthorizationKey',
          schema: callbackPayloadSchema,
          examples: { redrive: { summary: 'the authorization’s dedup key', value: callbackPayloadExample } },
        },
      ],
    },
    responses: {
      '202': {
        description: 'the run was signalled',
        content: {
          mediaType: json,
          schema: z.object({ authorizationId: z.string(), workflowId: z.string(), redrive: z.literal('signalled') }),
        },
      },
      ...ADMIN_JSON_ERRORS,
      '404': { description: 'no such authorization', codes: ['AUTHORIZATION_NOT_FOUND'] },
      '409': {
        description: 'not unrouted / no-data, or the run no longer waits',
        codes: ['NOT_REDRIVABLE', 'REDRIVE_RUN_CLOSED'],
      },
    },
  },
  {
    method: 'put',
    path: '/v1/admin/verifiers/keys',
    operationId: 'putVerifierKey',
    summary: "Register a Verifier's ES256 public key",
    tags: ['admin'],
    security: adminBearer,
    body: {
      required: true,
      content: [
        {
          mediaType: json,
          name: 'VerifierKey',
          schema: verifierKeyBody,
          examples: {
            p256: {
              summary: 'a P-256 public JWK',
              value: {
                verifierDid,
                jwk: {
                  kty: 'EC',
                  crv: 'P-256',
                  x: 'f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU',
                  y: 'x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0',
                  kid: 'verifier-key-1',
                },
              },
            },
          },
        },
      ],
    },
    responses: {
      '200': {
        description: 'registered',
        content: { mediaType: json, schema: z.object({ verifierDid: z.string(), kid: z.string() }) },
      },
      ...ADMIN_JSON_ERRORS,
    },
  },
  {
    method: 'post',
    path: '/v1/admin/verifiers/keys/remove',
    operationId: 'removeVerifierKey',
    summary: "Remove a Verifier's key",
    tags: ['admin'],
    security: adminBearer,
    body: {
      required: true,
      content: [
        {
          mediaType: json,
          name: 'VerifierKeyRemoval',
          schema: removeKeyBody,
          examples: { remove: { summary: 'by kid', value: { verifierDid, kid: 'verifier-key-1' } } },
        },
      ],
    },
    responses: {
      '200': {
        description: 'whether a key was removed',
        content: { mediaType: json, schema: z.object({ removed: z.boolean() }) },
      },
      ...ADMIN_JSON_ERRORS,
    },
  },
  {
    method: 'get',
    path: '/codec/session',
    operationId: 'getCodecSignIn',
    summary: 'Codec sign-in form (HTML) for Temporal Web UI operators',
    tags: ['codec'],
    security: publicRoute,
    responses: {
      '200': { description: 'the sign-in form', content: { mediaType: 'text/html', schema: z.string() } },
      '403': codecError('cross-origin request from an origin not allowed', ['CODEC_ORIGIN_NOT_ALLOWED']),
    },
  },
  {
    method: 'post',
    path: '/codec/session',
    operationId: 'signInToCodec',
    summary: 'Sign in with a codec token; sets the session cookie',
    tags: ['codec'],
    security: publicRoute,
    body: {
      required: true,
      content: [
        {
          mediaType: 'application/x-www-form-urlencoded',
          name: 'CodecSignIn',
          schema: codecSessionForm,
          examples: { signIn: { summary: 'the form post', value: { token: 'a-codec-token' } } },
        },
      ],
    },
    responses: {
      '200': {
        description: 'signed in',
        content: { mediaType: 'text/html', schema: z.string() },
        headers: {
          'Set-Cookie': {
            description: `\`${SESSION_COOKIE}\`, HttpOnly, SameSite=Strict, Path=/codec`,
            schema: { type: 'string' },
          },
        },
      },
      '400': { description: 'the form has no `token` field', codes: ['MISSING_FIELD'] },
      '401': codecError('unknown token', ['CODEC_UNAUTHENTICATED']),
      '403': codecError('origin not allowed', ['CODEC_ORIGIN_NOT_ALLOWED']),
      '415': {
        description: 'not an `application/x-www-form-urlencoded` form (a JSON body, say)',
        codes: ['SESSION_FORM_REQUIRED'],
      },
      '429': codecError('too many failed sign-ins from this address', ['AUTH_RATE_LIMITED']),
    },
  },
  {
    method: 'delete',
    path: '/codec/session',
    operationId: 'signOutOfCodec',
    summary: 'Clear the codec session cookie',
    tags: ['codec'],
    security: publicRoute,
    responses: {
      '204': { description: 'signed out' },
      '403': codecError('origin not allowed', ['CODEC_ORIGIN_NOT_ALLOWED']),
    },
  },
  ...(['encode', 'decode'] as const).map((direction): OperationDoc => ({
    method: 'post',
    path: `/codec/${direction}`,
    operationId: `codec${direction === 'encode' ? 'Encode' : 'Decode'}`,
    summary: `${direction === 'encode' ? 'Encrypt' : 'Decrypt'} Temporal payloads (the Web UI's remote codec)`,
    tags: ['codec'],
    security: codecAuth,
    body: {
      required: true,
      content: [
        {
          mediaType: json,
          name: 'CodecPayloads',
          schema: codecBodySchema,
          examples: {
            payloads: {
              summary: 'protobuf-JSON payloads (metadata values and data base64)',
              value: { payloads: [{ metadata: { encoding: 'anNvbi9wbGFpbg==' }, data: 'eyJhIjoxfQ==' }] },
            },
          },
        },
      ],
    },
    responses: {
      '200': {
        description: 'the payloads, transformed',
        content: { mediaType: json, schema: codecPayloads, name: 'CodecPayloadsResult' },
      },
      '400': codecError('not `{payloads: [...]}`, or a payload the keyring cannot open', [
        'INVALID_PAYLOADS',
        'MALFORMED_JSON',
        'CODEC_PAYLOAD_INVALID',
        'CODEC_KEY_UNKNOWN',
      ]),
      '401': codecError('no valid bearer token or session', ['CODEC_UNAUTHENTICATED']),
      '403': codecError('origin not allowed', ['CODEC_ORIGIN_NOT_ALLOWED']),
      '429': codecError('over the per-session rate limit, or too many failed tokens from this address', [
        'RATE_LIMITED',
        'AUTH_RATE_LIMITED',
      ]),
      '500': INTERNAL,
    },
  })),
];

// ---------------------------------------------------------------------------------------------
// Building the document

type JsonSchema = Record<string, unknown>;

/**
 * zod -> JSON Schema (2020-12) for OpenAPI: the request as sent (`io: 'input'`); refinements have
 * no JSON Schema form and are left out (`unrepresentable: 'any'`). Local `$defs` (recursive
 * schemas) are hoisted into components, since `#/$defs/...` would resolve against the document root.
 */
function toJsonSchema(schema: z.ZodType, owner: string, components: Record<string, JsonSchema>): JsonSchema {
  const {
    $schema: _dialect,
    $defs = {},
    ...rest
  } = z.toJSONSchema(schema, {
    io: 'input',
    unrepresentable: 'any',
    target: 'draft-2020-12',
  });
  const renamed = new Map<string, string>();
  for (const name of Object.keys($defs)) {
    renamed.set(`#/$defs/${name}`, `#/components/schemas/${owner}.${name.replace(/^_+/, '')}`);
  }
  const rewrite = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(rewrite);
    if (value === null || typeof value !== 'object') return value;
    return Object.fromEntries(
      Object.entries(value).map(([k, v]) => [
        k,
        k === '$ref' && typeof v === 'string' ? (renamed.get(v) ?? v) : rewrite(v),
      ]),
    );
  };
  for (const [name, def] of Object.entries($defs)) {
    components[`${owner}.${name.replace(/^_+/, '')}`] = rewrite(def) as JsonSchema;
  }
  return rewrite(rest) as JsonSchema;
}

function componentRef(name: string, schema: z.ZodType, components: Record<string, JsonSchema>): { $ref: string } {
  components[name] ??= toJsonSchema(schema, name, components);
  return { $ref: `#/components/schemas/${name}` };
}

function errorResponse(codes: readonly string[], description: string): Record<string, unknown> {
  return {
    description: `${description}: ${codes.map((c) => `\`${c}\``).join(', ')}`,
    content: {
      [json]: {
        schema: {
          allOf: [
            { $ref: '#/components/schemas/ErrorBody' },
            { type: 'object', properties: { error: { type: 'object', properties: { code: { enum: [...codes] } } } } },
          ],
        },
      },
    },
  };
}

function parameterObject(p: ParameterDoc, components: Record<string, JsonSchema>): Record<string, unknown> {
  return {
    name: p.name,
    in: p.in,
    required: p.required,
    ...(p.description ? { description: p.description } : {}),
    schema: toJsonSchema(p.schema, `param.${p.name}`, components),
    example: p.example,
  };
}

/** Query parameters, one per key of the zod object the route validates the query with. */
export function queryParameters(query: NonNullable<OperationDoc['query']>): ParameterDoc[] {
  return Object.entries(query.schema.shape as Record<string, z.ZodType>).map(([name, schema]) => ({
    name,
    in: 'query' as const,
    required: !schema.safeParse(undefined).success,
    schema,
    example: query.example[name],
  }));
}

export function buildOpenApiDocument(): Record<string, unknown> {
  const schemas: Record<string, JsonSchema> = {};
  schemas.ErrorBody = toJsonSchema(errorBodySchema, 'ErrorBody', schemas);
  const paths: Record<string, Record<string, unknown>> = {};
  for (const op of operations) {
    const parameters = [...(op.parameters ?? []), ...(op.query ? queryParameters(op.query) : [])];
    const responses: Record<string, unknown> = {};
    for (const [status, r] of Object.entries({
      ...op.responses,
      ...(op.responses['500'] ? {} : { '500': INTERNAL }),
    })) {
      if (r.codes) {
        responses[status] = errorResponse(r.codes, r.description);
        continue;
      }
      const content = r.content;
      responses[status] = {
        description: r.description,
        ...(r.headers ? { headers: r.headers } : {}),
        ...(content
          ? {
              content: {
                [content.mediaType]: content.binary
                  ? { schema: { type: 'string', contentMediaType: content.mediaType } }
                  : content.schema
                    ? {
                        schema: content.name
                          ? componentRef(content.name, content.schema, schemas)
                          : toJsonSchema(content.schema, `${op.operationId}.${status}`, schemas),
                      }
                    : {},
              },
            }
          : {}),
      };
    }
    (paths[op.path] ??= {})[op.method] = {
      operationId: op.operationId,
      summary: op.summary,
      ...(op.description ? { description: op.description } : {}),
      tags: op.tags,
      security: op.security,
      ...(parameters.length ? { parameters: parameters.map((p) => parameterObject(p, schemas)) } : {}),
      ...(op.body
        ? {
            requestBody: {
              required: op.body.required,
              ...(op.body.description ? { description: op.body.description } : {}),
              content: Object.fromEntries(
                op.body.content.map((c) => [
                  c.mediaType,
                  {
                    schema: componentRef(c.name, c.schema, schemas),
                    examples: c.examples,
                    ...(c.encoding ? { encoding: c.encoding } : {}),
                  },
                ]),
              ),
            },
          }
        : {}),
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
  router.get('/openapi.json', (_req, res) => {
    body ??= JSON.stringify(buildOpenApiDocument());
    res.set('Cache-Control', 'public, max-age=300').type('application/json').send(body);
  });
  return router;
}
