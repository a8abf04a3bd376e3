/**
 * Types shared by the callback API, AuthorizationWorkflow and its activities. Type-only and free of
 * Node imports, so workflow code may import it.
 */

/** The documented callback payload: pseudonymous identifiers only (no PII, no key material). */
export interface CallbackPayload {
  userId: string;
  verifierDid: string;
  schemaId: string;
}

/**
 * The workflow input: the payload plus the keyed id of its dedup key. Nothing in it is trusted:
 * the activities recompute `authorizationId` from the payload and check `deliveryProof`, a keyed
 * hash of (authorizationId, receivedAt) that only a process holding ID_HMAC_SECRET can make.
 */
export interface AuthorizationInput extends CallbackPayload {
  authorizationId: string;
  /** ISO time the delivery that opens this run was acknowledged (by the API or the inbox relay) */
  receivedAt: string;
  deliveryProof: string;
  /** how long an unrouted / no-data authorization waits for a re-drive signal (ms) */
  redriveWindowMs: number;
  /** the delivery that started this run directly (absent when the inbox relay started it): the
   * run logs it, so the acknowledgement path writes nothing for a first delivery */
  firstDelivery?: { messageId?: string };
}

/**
 * The routing state of an authorization record, written by its run only: `received` (delivery
 * acknowledged, run not yet past verify) -> `no-data` | `unrouted` | `active` (grant-access ran) |
 * `routed` (handlers without grant-access ran). Revocation and the access window are kept beside
 * it (src/domain/access.ts decides from all three); listings show them as `revoked` / `expired`.
 */
export type AuthorizationState = 'received' | 'no-data' | 'unrouted' | 'active' | 'routed';
export type AuthorizationViewState = AuthorizationState | 'revoked' | 'expired';

/** A later delivery of the same key, signalled to the run that holds it. */
export interface DeliverySignal {
  receivedAt: string;
  deliveryProof: string;
}
export const DELIVERY_SIGNAL = 'delivery';

export const CALLBACK_HANDLERS = ['grant-access', 'notify', 'log-only'] as const;
export type CallbackHandlerName = (typeof CALLBACK_HANDLERS)[number];

/** What `resolveRoute` hands the workflow: the handlers registered for the schema, in order. */
export interface ResolvedRoute {
  handlers: CallbackHandlerName[];
  accessWindowMs: number;
}

export type AuthorizationOutcome = 'routed' | 'active' | 'no-data' | 'unrouted' | 'revoked';

export interface AuthorizationResult {
  authorizationId: string;
  outcome: AuthorizationOutcome;
  handlers: CallbackHandlerName[];
  redriven: number;
  /** end of the access window this run held */
  accessUntil?: string;
}

/** Signal an operator sends (via the admin API) to re-drive an unrouted or no-data authorization. */
export const REDRIVE_SIGNAL = 'redrive';

/** ApplicationFailure types that end an authorization step (non-retryable). */
export const AuthorizationFailureType = {
  NotifyRejected: 'NotifyRejected',
  NotifyTargetMissing: 'NotifyTargetMissing',
  /** the input's ids or delivery proof do not match what they derive from: not our run */
  ForgedInput: 'ForgedInput',
} as const;

/** Audit event types. */
export const AuditEventType = {
  Authorization: 'authorization',
  AuthorizationRedriven: 'authorization.redriven',
  AuthorizationRevoked: 'authorization.revoked',
  AuthorizationReinstated: 'authorization.reinstated',
  AuthorizationExpired: 'authorization.expired',
  VerifierManifest: 'verifier.manifest',
  VerifierPackage: 'verifier.package',
  VerifierDenied: 'verifier.denied',
} as const;
export type AuditEventTypeName = (typeof AuditEventType)[keyof typeof AuditEventType];
