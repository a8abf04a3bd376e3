import { createRemoteJWKSet, decodeProtectedHeader, errors, jwtVerify, type JWTVerifyGetKey } from 'jose';

/**
 * Partner JWT verification as the AIR platform documents it: the JWKS is fetched from the partner's
 * registered URL (no discovery), the header `kid` must match one of its keys, ES256 or RS256,
 * `typ: "JWT"`, `exp` required and in the future, `partnerId` must be the partner the URL is
 * registered for, and `scope` must allow the call. When the JWKS cannot be fetched (the partner's
 * server down, timing out, or answering anything but a JSON Web Key Set) the answer is a 503: that
 * says nothing about the token, so the partner may retry. A token that does not verify against a
 * JWKS that was fetched is a 401.
 */

export class PartnerAuthError extends Error {
  constructor(
    readonly code:
      'PARTNER_ACCESS_TOKEN_INVALID' | 'PARTNER_TOKEN_EXPIRED' | 'SCOPE_MISMATCH' | 'PARTNER_JWKS_UNAVAILABLE',
    message: string,
    readonly status: 401 | 403 | 503,
  ) {
    super(message);
    this.name = 'PartnerAuthError';
    Object.setPrototypeOf(this, PartnerAuthError.prototype);
  }
}

export interface VerifiedPartner {
  partnerId: string;
  scope: string;
  sub?: string;
}

/** The JWKS could not be had (no answer, a timeout, not a 200, not a key set), as opposed to no key matching. */
function jwksUnavailable(err: unknown): boolean {
  if (!(err instanceof errors.JOSEError)) return true; // the request failed (ECONNREFUSED, ECONNRESET, ...)
  // a plain JOSEError is jose's "Expected 200 OK" or "Failed to parse" of the JWKS response
  return err instanceof errors.JWKSTimeout || err instanceof errors.JWKSInvalid || err.code === errors.JOSEError.code;
}

export function partnerVerifier(options: { partnerId: string; jwksUrl: string }) {
  const remote = createRemoteJWKSet(new URL(options.jwksUrl), { cacheMaxAge: 60_000, cooldownDuration: 1_000 });
  const jwks: JWTVerifyGetKey = async (header, token) => {
    try {
      return await remote(header, token);
    } catch (err) {
      if (!jwksUnavailable(err)) throw err;
      throw new PartnerAuthError('PARTNER_JWKS_UNAVAILABLE', 'the partner JWKS could not be fetched', 503);
    }
  };
  return async function verify(token: string | undefined, scope: 'issue' | 'verify'): Promise<VerifiedPartner> {
    if (!token) throw new PartnerAuthError('PARTNER_ACCESS_TOKEN_INVALID', 'x-partner-auth is missing', 401);
    let kid: string | undefined;
    try {
      kid = decodeProtectedHeader(token).kid;
    } catch {
      throw new PartnerAuthError('PARTNER_ACCESS_TOKEN_INVALID', 'not a JWT', 401);
    }
    if (!kid) throw new PartnerAuthError('PARTNER_ACCESS_TOKEN_INVALID', 'JWT header has no kid', 401);
    try {
      const { payload } = await jwtVerify(token, jwks, {
        algorithms: ['ES256', 'RS256'],
        typ: 'JWT',
        requiredClaims: ['exp', 'partnerId', 'scope'],
      });
      if (payload.partnerId !== options.partnerId) {
        throw new PartnerAuthError('PARTNER_ACCESS_TOKEN_INVALID', 'partnerId does not match the JWKS URL', 401);
      }
      if (payload.scope !== scope) throw new PartnerAuthError('SCOPE_MISMATCH', `scope "${scope}" required`, 403);
      return { partnerId: options.partnerId, scope, ...(typeof payload.sub === 'string' ? { sub: payload.sub } : {}) };
    } catch (err) {
      if (err instanceof PartnerAuthError) throw err;
      if (err instanceof errors.JWTExpired) throw new PartnerAuthError('PARTNER_TOKEN_EXPIRED', 'token expired', 401);
      throw new PartnerAuthError(
        'PARTNER_ACCESS_TOKEN_INVALID',
        err instanceof Error ? err.message : 'invalid token',
        401,
      );
    }
  };
}
