import { SignJWT } from 'jose';
import type { PartnerKeys } from './partner-keys';

/** Partner JWT scopes the platform knows. */
export type PartnerScope = 'issue' | 'verify';

export interface PartnerToken {
  token: string;
  kid: string;
  expiresAt: Date;
}

export interface PartnerTokenMinter {
  mint(claims: { scope: PartnerScope; userId?: string }): Promise<PartnerToken>;
}

/**
 * Mints Partner JWTs the way the AIR platform requires: header `kid` + `typ: "JWT"`, claims
 * `partnerId`, `scope`, `exp` (5 minutes by default). `sub` carries our pseudonymous userId when the
 * token is for a server-side issuance (the emulator reads the user from it; the browser SDK has
 * its own logged-in session instead).
 */
export function partnerTokenMinter(keys: PartnerKeys, partnerId: string, ttlSeconds = 300): PartnerTokenMinter {
  return {
    async mint({ scope, userId }) {
      const { active } = keys;
      const now = Math.floor(Date.now() / 1000);
      const exp = now + ttlSeconds;
      const jwt = new SignJWT({ partnerId, scope })
        .setProtectedHeader({ alg: active.alg, kid: active.kid, typ: 'JWT' })
        .setIssuedAt(now)
        .setExpirationTime(exp);
      if (userId !== undefined) jwt.setSubject(userId);
      return { token: await jwt.sign(active.privateKey), kid: active.kid, expiresAt: new Date(exp * 1000) };
    },
  };
}
