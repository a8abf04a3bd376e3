import express, { Router } from 'express';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import type { CallbackPayload } from '../domain/authorization';
import {
  authorizationIdFor,
  authorizationWorkflowId,
  CALLBACK_MAX_BODY_BYTES,
  callbackPayloadSchema,
  parseCallbackPayload,
} from '../domain/callback';
import { assertSafeJson } from '../domain/safe-json';
import type { Logger } from '../observability/logger';
import {
  DETACHED_JWS,
  JWS_SIGNATURE_HEADER,
  WEBHOOK_ID,
  WEBHOOK_TIMESTAMP,
  type CallbackSignatureVerifier,
} from '../platform/callback-signature';
import type { InboxRepository } from '../storage/inbox';
import { TemporalUnavailableError, type AuthorizationStarter } from './callback-relay';
import type { DeliveryLog } from './delivery-log';
import { refusal, route, SAFE_JSON_ERRORS } from './routes';

/**
 * POST /v1/cak/callbacks: the platform's authorization callback `{userId, verifierDid, schemaId}`.
 *
 * Order: content type -> raw body (4 KiB at most, no Content-Encoding) -> signature on the exact
 * bytes -> UTF-8 without BOM -> JSON.parse -> key safety -> zod. Nothing is started or stored
 * before all of them pass. Then the delivery is made durable, and only then acknowledged:
 *   200 {workflowId, duplicate}            Temporal has the run (new, or a duplicate of one it has)
 *   202 {workflowId, duplicate, queued}    Temporal could not take it; the inbox has it, the relay starts it
 *   503 CALLBACK_NOT_DURABLE               neither could take it: the platform must retry
 */

/** A consent as the platform sends it (also the admin routes' authorization key). */
export const CALLBACK_EXAMPLE = { userId: 'user-123', verifierDid: 'did:air:id:verifier', schemaId: 'kyc-basic' };
const callbackAck = z.object({ workflowId: z.string(), duplicate: z.boolean(), queued: z.boolean() });

export const receiveAuthorizationCallback = route({
  method: 'post',
  path: '/v1/cak/callbacks',
  operationId: 'receiveAuthorizationCallback',
  summary: "The AIR platform's authorization callback (a user consented to a Verifier)",
  description:
    `Signed by the platform; the body is read raw (at most ${CALLBACK_MAX_BODY_BYTES} bytes) and its signature ` +
    'checked on those bytes before it is parsed. Which headers carry the signature depends on ' +
    '`CALLBACK_SIGNATURE_SCHEME`: `standard-webhooks` (`webhook-id`, `webhook-timestamp`, `webhook-signature`) ' +
    `or \`jws-es256\` (\`${JWS_SIGNATURE_HEADER}\`). Acknowledged once durable. See docs/callbacks.md.`,
  tag: 'authorization',
  auth: 'public',
  headers: z.object({
    'webhook-id': z
      .string()
      .regex(WEBHOOK_ID)
      .optional()
      .meta({ description: 'standard-webhooks: the message id (stable across retries)' }),
    'webhook-timestamp': z
      .string()
      .regex(WEBHOOK_TIMESTAMP)
      .optional()
      .meta({ description: 'standard-webhooks: Unix seconds, within CALLBACK_TOLERANCE_SECONDS of now' }),
    'webhook-signature': z.string().max(4096).optional().meta({
      description: 'standard-webhooks: space-separated `v1,<base64 HMAC-SHA256 of id.timestamp.body>` entries',
    }),
    [JWS_SIGNATURE_HEADER]: z.string().regex(DETACHED_JWS).optional().meta({
      description: 'jws-es256: detached compact JWS over the raw body, protected header `{alg: ES256, kid, iat}`',
    }),
  }),
  examples: {
    'webhook-id': 'msg_2Z1nB0pVqYb5',
    'webhook-timestamp': '1735689600',
    'webhook-signature': 'v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=',
    [JWS_SIGNATURE_HEADER]: 'eyJhbGciOiJFUzI1NiIsImtpZCI6InBsYXRmb3JtLTEiLCJpYXQiOjE3MzU2ODk2MDB9..c2lnbmF0dXJl',
  },
  body: {
    description: '`application/json` (charset, if given, `utf-8`); keys are checked for safety before the schema',
    content: {
      'application/json': {
        name: 'CallbackPayload',
        schema: callbackPayloadSchema,
        examples: { consent: { summary: 'a user consented to a Verifier', value: CALLBACK_EXAMPLE } },
      },
    },
  },
  responses: {
    200: {
      description: 'Temporal has the run (`duplicate` for any later delivery)',
      schema: callbackAck,
      name: 'CallbackAck',
    },
    202: {
      description: 'Temporal could not take it in time; the inbox has it (`queued: true`)',
      schema: callbackAck,
      name: 'CallbackAck',
    },
  },
  errors: {
    400: refusal(
      'body checks',
      ...['MALFORMED_JSON', 'INVALID_BODY', 'MISSING_FIELD', 'UNKNOWN_FIELD', 'INVALID_FIELD', ...SAFE_JSON_ERRORS],
      'REQUEST_ABORTED',
    ),
    401: refusal(
      'signature checks; the message and `details` (`{header, expected}`) name the header at fault, e.g. a ' +
        '`webhook-timestamp` in milliseconds (it is Unix seconds)',
      ...['SIGNATURE_MISSING', 'SIGNATURE_MALFORMED', 'SIGNATURE_INVALID', 'SIGNATURE_TIMESTAMP_STALE'],
      ...['SIGNATURE_TIMESTAMP_FUTURE', 'SIGNATURE_KEY_UNKNOWN'],
    ),
    413: refusal(`body over ${CALLBACK_MAX_BODY_BYTES} bytes`, 'BODY_TOO_LARGE'),
    415: refusal(
      'not `application/json` (charset, if any, `utf-8`), or any Content-Encoding but identity',
      ...['UNSUPPORTED_MEDIA_TYPE', 'UNSUPPORTED_ENCODING'],
    ),
    503: refusal(
      "the platform's JWKS cannot be fetched (jws-es256), or neither Temporal nor the database could take the delivery: retry",
      ...['SIGNATURE_KEYS_UNAVAILABLE', 'CALLBACK_NOT_DURABLE'],
    ),
  },
});

const KNOWN_MAX = 10_000;
const KNOWN_TTL_MS = 10 * 60_000;

export interface CallbackRouteDeps {
  verifier: CallbackSignatureVerifier;
  starter: AuthorizationStarter;
  inbox: InboxRepository;
  deliveries: DeliveryLog;
  idSecret: string;
  /** the access window of a schema's route (ms), which bounds how long a started run is remembered */
  accessWindowMs: (schemaId: string) => number | undefined;
  log: Logger;
  /** called after a delivery went to the inbox (wakes the relay) */
  onQueued?: () => void;
  /** after a failed start, skip Temporal for this long and go straight to the inbox */
  breakerMs?: number;
}

export interface DeliveryResult {
  workflowId: string;
  duplicate: boolean;
  queued: boolean;
}

/** The platform's message id (`webhook-id`) as a log field: an id's characters only, at most 64 of them. */
export function loggableMessageId(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  return /^[A-Za-z0-9._:-]+$/.test(value) ? value.slice(0, 64) : '(invalid)';
}

/** The header a signature refusal names in its details (`header`, or the missing ones), if any. */
function signatureHeaderAtFault(err: unknown): string | undefined {
  if (!(err instanceof AppError) || !err.details) return undefined;
  const { header, missing } = err.details;
  if (typeof header === 'string') return header;
  return Array.isArray(missing) ? missing.filter((m) => typeof m === 'string').join(',') || undefined : undefined;
}

function isJsonContentType(value: string | undefined): boolean {
  if (!value) return false;
  const [type, ...params] = value.split(';').map((p) => p.trim().toLowerCase());
  return type === 'application/json' && params.every((p) => p === '' || p === 'charset=utf-8');
}

const UTF8_BOM = Buffer.from([0xef, 0xbb, 0xbf]);
const strictUtf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/**
 * JSON text as RFC 8259 puts it on the wire: UTF-8, without a byte order mark (§8.1). A BOM or a
 * byte sequence that is not UTF-8 is a 400 MALFORMED_JSON saying which, never silently repaired.
 */
export function parseJsonBytes(raw: Buffer): unknown {
  if (raw.subarray(0, 3).equals(UTF8_BOM)) {
    throw new AppError('MALFORMED_JSON', 'request body starts with a byte order mark; send JSON without one', 400);
  }
  let text: string;
  try {
    text = strictUtf8.decode(raw);
  } catch {
    throw new AppError('MALFORMED_JSON', 'request body is not UTF-8', 400);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new AppError('MALFORMED_JSON', 'request body is not valid JSON', 400);
  }
}

export function callbackRoutes(deps: CallbackRouteDeps): Router {
  const router = Router();
  let temporalSuspectUntil = 0;

  /**
   * Workflow ids whose run this process started, until (at the latest) that run's access window
   * closes. A repeat delivery of one of them is a duplicate inside the window: it is answered
   * without another round trip. Bounded (oldest evicted) and short-lived, so it only spares
   * Temporal the platform's retry bursts; a delivery that may be a new consent always reaches the run.
   */
  const known = new Map<string, number>();
  const remember = (workflowId: string, schemaId: string) => {
    const windowMs = deps.accessWindowMs(schemaId) ?? KNOWN_TTL_MS;
    known.delete(workflowId);
    known.set(workflowId, Date.now() + Math.min(KNOWN_TTL_MS, windowMs));
    if (known.size > KNOWN_MAX) known.delete(known.keys().next().value!);
  };
  const isKnown = (workflowId: string) => (known.get(workflowId) ?? 0) > Date.now();

  async function accept(
    payload: CallbackPayload,
    messageId: string | undefined,
    now: Date,
  ): Promise<DeliveryResult & { authorizationId: string }> {
    const authorizationId = authorizationIdFor(deps.idSecret, payload);
    const workflowId = authorizationWorkflowId(authorizationId);
    if (isKnown(workflowId)) return { authorizationId, workflowId, duplicate: true, queued: false };
    if (Date.now() >= temporalSuspectUntil) {
      try {
        const started = await deps.starter.start(authorizationId, payload, now, messageId ? { messageId } : {});
        if (!started.duplicate) remember(workflowId, payload.schemaId);
        return { authorizationId, ...started, queued: false };
      } catch (err) {
        if (!(err instanceof TemporalUnavailableError)) throw err;
        temporalSuspectUntil = Date.now() + (deps.breakerMs ?? 1_000);
        deps.log.warn({ workflowId, err: err.message }, 'workflow start failed; queueing the delivery in the inbox');
      }
    }
    try {
      const queued = await deps.inbox.put(authorizationId, payload, now);
      deps.onQueued?.();
      return { authorizationId, workflowId, duplicate: queued.duplicate, queued: true };
    } catch (err) {
      deps.log.error({ workflowId, err: err instanceof Error ? err.message : String(err) }, 'inbox unavailable');
      throw new AppError('CALLBACK_NOT_DURABLE', 'cannot record the callback right now; retry later', 503);
    }
  }

  receiveAuthorizationCallback.on(
    router,
    (req, res, next) => {
      // One line per refused delivery, whichever step refused it (the error handler sets the code):
      // the code and the platform's message id, never the body.
      res.once('finish', () => {
        if (res.statusCode < 400 || res.statusCode >= 500) return;
        const code = typeof res.locals.errorCode === 'string' ? res.locals.errorCode : undefined;
        const messageId = loggableMessageId(req.get('webhook-id'));
        const header = typeof res.locals.signatureHeader === 'string' ? res.locals.signatureHeader : undefined;
        deps.log.warn({ status: res.statusCode, code, messageId, ...(header ? { header } : {}) }, 'callback refused');
      });
      next();
    },
    (req, _res, next) => {
      if (!isJsonContentType(req.get('content-type'))) {
        next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'content-type must be application/json', 415));
        return;
      }
      next();
    },
    // The signature covers the bytes on the wire: no Content-Encoding is undone before it (any but
    // identity is a 415 UNSUPPORTED_ENCODING), and nothing decodes them before the HMAC.
    express.raw({ type: () => true, limit: CALLBACK_MAX_BODY_BYTES, inflate: false }),
    async (req, res) => {
      const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
      try {
        await deps.verifier.verify(raw, req.headers);
      } catch (err) {
        // Which signature header was at fault (one of our fixed names, never a value) for the refusal's log line.
        res.locals.signatureHeader = signatureHeaderAtFault(err);
        throw err;
      }
      const json = parseJsonBytes(raw);
      assertSafeJson(json, { maxDepth: 1, maxKeys: 8 });
      const payload = parseCallbackPayload(json);
      const now = new Date();
      const messageId = req.get('webhook-id');
      const { authorizationId, ...result } = await accept(payload, messageId, now);
      res.locals.callbackOutcome = result.queued ? 'inboxed' : result.duplicate ? 'duplicate' : 'started';
      receiveAuthorizationCallback.send(res, result.queued ? 202 : 200, result);
      // The delivery log is bookkeeping (counts per authorization), written in batches off the ack
      // path; a delivery that started its run is logged by that run (`verify`), not here.
      if (result.duplicate) {
        deps.deliveries.record({
          authorizationId,
          ...(messageId ? { messageId } : {}),
          path: result.queued ? 'queued' : 'duplicate',
          at: now,
        });
      } else if (result.queued) {
        deps.deliveries.first(authorizationId, messageId, now);
      }
    },
  );
  return router;
}
