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

/** The workflow input: the payload plus the keyed id of its dedup key. */
export interface AuthorizationInput extends CallbackPayload {
  authorizationId: string;
  /** ISO time the first delivery was acknowledged (by the API or the inbox relay) */
  receivedAt: string;
  /** how long an unrouted / no-data authorization waits for a re-drive signal (ms) */
  redriveWindowMs: number;
  /** the delivery that started this run directly (absent when the inbox relay started it): the
   * run logs it, so the acknowledgement path writes nothing for a first delivery */
  firstDelivery?: { messageId?: string };
}

/**
 * States of an authorization record. `received` (delivery acknowledged, workflow not yet past
 * verify) -> `no-data` | `unrouted` | `active` (grant-access ran) | `routed` (handlers without
 * grant-access ran); `revoked` is terminal and set only by an operator.
 */
export type AuthorizationState = 'received' | 'no-data' | 'unrouted' | 'active' | 'routed' | 'revoked';

export const CALLBACK_HANDLERS = ['grant-access', 'notify', 'log-only'] as const;
export type CallbackHandlerName = (typeof CALLBACK_HANDLERS)[number];

/** What `resolveRoute` hands the workflow: the handlers registered for the schema, in order. */
export interface ResolvedRoute {
  handlers: CallbackHandlerName[];
}

export type AuthorizationOutcome = 'routed' | 'active' | 'no-data' | 'unrouted' | 'revoked';

export interface AuthorizationResult {
  authorizationId: string;
  outcome: AuthorizationOutcome;
  handlers: CallbackHandlerName[];
  redriven: number;
}

/** Signal an operator sends (via the admin API) to re-drive an unrouted or no-data authorization. */
export const REDRIVE_SIGNAL = 'redrive';

/** ApplicationFailure types that end an authorization step (non-retryable). */
export const AuthorizationFailureType = {
  NotifyRejected: 'NotifyRejected',
  NotifyTargetMissing: 'NotifyTargetMissing',
} as const;

/** Audit event types. */
export const AuditEventType = {
  Authorization: 'authorization',
  AuthorizationRedriven: 'authorization.redriven',
  AuthorizationRevoked: 'authorization.revoked',
  VerifierManifest: 'verifier.manifest',
  VerifierPackage: 'verifier.package',
  VerifierDenied: 'verifier.denied',
} as const;
export type AuditEventTypeName = (typeof AuditEventType)[keyof typeof AuditEventType];
