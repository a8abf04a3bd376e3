import type { AuthorizationState } from './authorization';

/**
 * The one access rule. Every path that hands out personal data (the manifest, the signed-URL
 * download, anything added later) asks `isAccessAllowed` and nothing else.
 *
 * Access is open while all of these hold:
 * - the authorization exists and its route granted access (`active`, set by grant-access);
 * - no operator revocation stands (only an operator's reinstatement lifts one; a new consent does not);
 * - `now` is inside the access window, which the delivery that opened it started; a retried
 *   delivery never moves it, a delivery after it closed is a new consent and opens a new one.
 */

export interface AccessFacts {
  state: AuthorizationState;
  /** end of the current access window (exclusive); absent until a grant opened one */
  accessUntil?: Date;
  revoked: boolean;
}

type AccessDenialCode = 'AUTHORIZATION_REQUIRED' | 'AUTHORIZATION_REVOKED' | 'AUTHORIZATION_EXPIRED';

type AccessDecision = { allowed: true; until: Date } | { allowed: false; code: AccessDenialCode; message: string };

const deny = (code: AccessDenialCode, message: string): AccessDecision => ({ allowed: false, code, message });

export function isAccessAllowed(facts: AccessFacts | undefined, now: Date): AccessDecision {
  if (!facts || facts.state !== 'active' || facts.accessUntil === undefined) {
    return deny('AUTHORIZATION_REQUIRED', 'no authorization grants this verifier access to this user and schema');
  }
  if (facts.revoked) return deny('AUTHORIZATION_REVOKED', 'the authorization was revoked by an operator');
  if (now.getTime() >= facts.accessUntil.getTime()) {
    return deny(
      'AUTHORIZATION_EXPIRED',
      'the access window of this authorization has closed; a new consent reopens it',
    );
  }
  return { allowed: true, until: facts.accessUntil };
}
