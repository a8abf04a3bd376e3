import { createHmac, randomBytes } from 'node:crypto';

/**
 * Identifiers derived from client data. Temporal stores workflow ids in plain text and MongoDB
 * indexes ids, so anything derived from a client-chosen key goes through a keyed hash first.
 */

export function keyedHash(secret: string, parts: readonly string[], bytes = 18): string {
  const mac = createHmac('sha256', secret);
  // length-prefixed, so ('ab','c') and ('a','bc') differ
  for (const part of parts) mac.update(`${Buffer.byteLength(part)}:${part};`);
  return mac.digest().subarray(0, bytes).toString('base64url');
}

/**
 * The issuance id: a keyed hash of (client, Idempotency-Key) when the client sent one, so repeats
 * land on the same issuance (and the same workflow id); otherwise random.
 */
export function issuanceIdFor(secret: string, clientId: string, idempotencyKey: string | undefined): string {
  if (idempotencyKey === undefined) return `iss_${randomBytes(18).toString('base64url')}`;
  return `iss_${keyedHash(secret, ['issuance', clientId, idempotencyKey])}`;
}

/** One record per (issuerDid, userId, schemaId): a pseudonymous, stable id. */
export function recordIdFor(secret: string, issuerDid: string, userId: string, schemaId: string): string {
  return `rec_${keyedHash(secret, ['record', issuerDid, userId, schemaId])}`;
}

/** The workflow id is itself a keyed hash of the issuance id (which may derive from the client's key). */
export function issuanceWorkflowId(secret: string, issuanceId: string): string {
  return `issuance-${keyedHash(secret, ['workflow', issuanceId])}`;
}

export const ISSUANCE_ID_PATTERN = /^iss_[A-Za-z0-9_-]{24}$/;

/** A keyed fingerprint of the CAK key the client sent (none: the platform supplies it), kept with the issuance. */
export function cakKeyFingerprint(secret: string, cakPublicKey: string | undefined): string | undefined {
  return cakPublicKey === undefined ? undefined : keyedHash(secret, ['cak-key', cakPublicKey]);
}
