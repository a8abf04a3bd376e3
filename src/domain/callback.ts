import { z } from 'zod';
import type { CallbackPayload } from './authorization';
import { AppError } from './errors';
import { keyedHash } from './ids';
import { didSchema } from './issuance-request';

/**
 * The callback payload as it arrives from the platform, validated at the edge, and the keyed ids
 * derived from its dedup key (userId, verifierDid, schemaId).
 */

/** Printable ASCII only: no control characters, no whitespace, nothing a query language treats specially. */
const identifier = z
  .string()
  .min(1)
  .max(128)
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]*$/, 'letters, digits, . _ : - (max 128)');

export const callbackPayloadSchema = z.strictObject({
  userId: identifier,
  verifierDid: didSchema,
  schemaId: identifier,
});

/** The callback body is small; anything bigger is not a callback. */
export const CALLBACK_MAX_BODY_BYTES = 4 * 1024;

/** Turns the parsed JSON (already signature-checked) into a payload, or a 400 AppError with a code. */
export function parseCallbackPayload(body: unknown): CallbackPayload {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('INVALID_BODY', 'the body must be a JSON object', 400);
  }
  // Own keys only: `__proto__` parsed by JSON.parse is an own key, and is refused like any unknown key.
  const parsed = callbackPayloadSchema.safeParse(body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const field = issue.keys[0] ?? '';
    return reject('UNKNOWN_FIELD', `unknown field "${field}"`, field);
  }
  const field = issue.path.map(String).join('.');
  const value = (body as Record<string, unknown>)[field];
  if (value === undefined) return reject('MISSING_FIELD', `"${field}" is required`, field);
  if (typeof value !== 'string') return reject('INVALID_FIELD', `"${field}" must be a string`, field);
  return reject('INVALID_FIELD', `${field}: ${issue.message}`, field);
}

function reject(code: string, message: string, field: string): never {
  throw new AppError(code, message, 400, { field });
}

/** The authorization id: a keyed hash of the dedup key, stable across deliveries and processes. */
export function authorizationIdFor(secret: string, payload: CallbackPayload): string {
  return `auth_${keyedHash(secret, ['authorization', payload.userId, payload.verifierDid, payload.schemaId])}`;
}

/** Proof that a process holding the id secret acknowledged this delivery (checked by the run's activities). */
export function deliveryProofFor(secret: string, authorizationId: string, receivedAt: string): string {
  return keyedHash(secret, ['delivery', authorizationId, receivedAt], 32);
}

/** Temporal stores workflow ids in plain text: the id carries only the keyed hash. */
export function authorizationWorkflowId(authorizationId: string): string {
  return `authorization-${authorizationId}`;
}
