import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';

/**
 * Signed, short-lived, single-purpose package URLs for Verifiers: an opaque token
 * `<b64url(claims)>.<b64url(HMAC-SHA256(SIGNED_URL_SECRET, b64url(claims)))>` naming one package
 * of one record version for one authorization, and an expiry. Any change to the token breaks the
 * MAC; the purpose is part of the claims, so a token minted for one use is refused by another.
 */

export const PACKAGE_URL_PURPOSE = 'package';

const claimsSchema = z.strictObject({
  pur: z.literal(PACKAGE_URL_PURPOSE),
  aid: z.string().max(64),
  rid: z.string().max(128),
  pid: z.string().max(256),
  exp: z.number().int().positive(),
});

type PackageUrlClaims = z.infer<typeof claimsSchema>;

function mac(secret: string, body: string): Buffer {
  return createHmac('sha256', secret).update(`cak-package-url.${body}`).digest();
}

export function signPackageToken(secret: string, claims: PackageUrlClaims): string {
  const body = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${body}.${mac(secret, body).toString('base64url')}`;
}

type TokenCheck = { ok: true; claims: PackageUrlClaims } | { ok: false; reason: 'malformed' | 'signature' | 'expired' };

export function verifyPackageToken(secret: string, token: string, nowMs = Date.now()): TokenCheck {
  const match = /^([A-Za-z0-9_-]{1,1024})\.([A-Za-z0-9_-]{43})$/.exec(token);
  if (!match) return { ok: false, reason: 'malformed' };
  const presented = Buffer.from(match[2]!, 'base64url');
  const expected = mac(secret, match[1]!);
  if (presented.length !== expected.length || !timingSafeEqual(presented, expected))
    return { ok: false, reason: 'signature' };
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(match[1]!, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed' };
  }
  const claims = claimsSchema.safeParse(parsed);
  if (!claims.success) return { ok: false, reason: 'malformed' };
  if (claims.data.exp * 1000 <= nowMs) return { ok: false, reason: 'expired' };
  return { ok: true, claims: claims.data };
}
