import { createHash, createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import { p256 } from '@noble/curves/p256';
import { z } from 'zod';

/**
 * Our Partner JWT signing keys. Every configured key is published in the JWKS (so a new key can be
 * published before it signs, and an old one kept until its tokens expire); one of them signs.
 */

type PartnerAlg = 'ES256' | 'RS256';

export interface SigningKey {
  kid: string;
  alg: PartnerAlg;
  privateKey: KeyObject;
  publicJwk: PublicJwk;
}

export interface PublicJwk {
  kty: string;
  kid: string;
  alg: PartnerAlg;
  use: 'sig';
  crv?: string;
  x?: string;
  y?: string;
  n?: string;
  e?: string;
}

export interface PartnerKeys {
  active: SigningKey;
  all: SigningKey[];
  jwks: { keys: PublicJwk[] };
}

class PartnerKeyError extends Error {
  readonly code = 'PARTNER_KEYS_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'PartnerKeyError';
    Object.setPrototypeOf(this, PartnerKeyError.prototype);
  }
}

const privateJwk = z.union([
  z.object({
    kty: z.literal('EC'),
    crv: z.literal('P-256'),
    kid: z.string().min(1).max(128),
    x: z.string(),
    y: z.string(),
    d: z.string(),
    alg: z.literal('ES256').optional(),
  }),
  z.object({
    kty: z.literal('RSA'),
    kid: z.string().min(1).max(128),
    n: z.string(),
    e: z.string(),
    d: z.string(),
    p: z.string(),
    q: z.string(),
    dp: z.string(),
    dq: z.string(),
    qi: z.string(),
    alg: z.literal('RS256').optional(),
  }),
]);

function toSigningKey(jwk: z.infer<typeof privateJwk>): SigningKey {
  const { kid } = jwk;
  const privateKey = createPrivateKey({ key: { ...jwk }, format: 'jwk' });
  const pub = createPublicKey(privateKey).export({ format: 'jwk' });
  if (jwk.kty === 'EC') {
    return {
      kid,
      alg: 'ES256',
      privateKey,
      publicJwk: { kty: 'EC', crv: 'P-256', x: pub.x, y: pub.y, kid, alg: 'ES256', use: 'sig' },
    };
  }
  const bits = (pub.n ?? '').length * 6;
  if (bits < 2048) throw new PartnerKeyError(`RSA key ${kid} is shorter than 2048 bits`);
  return {
    kid,
    alg: 'RS256',
    privateKey,
    publicJwk: { kty: 'RSA', n: pub.n, e: pub.e, kid, alg: 'RS256', use: 'sig' },
  };
}

/** A fixed P-256 key derived from a public label: for local runs only (production must configure keys). */
export function devPartnerJwk(partnerId: string, label = 'dev-1'): z.infer<typeof privateJwk> {
  const seed = createHash('sha256').update(`cak-issuer dev partner key ${partnerId} ${label}`).digest();
  const d = p256.utils.normPrivateKeyToScalar(seed);
  const scalar = Buffer.from(d.toString(16).padStart(64, '0'), 'hex');
  const point = Buffer.from(p256.getPublicKey(scalar, false));
  return {
    kty: 'EC',
    crv: 'P-256',
    kid: `${partnerId}-${label}`,
    x: point.subarray(1, 33).toString('base64url'),
    y: point.subarray(33, 65).toString('base64url'),
    d: scalar.toString('base64url'),
  };
}

/** Parses PARTNER_SIGNING_KEYS (JSON array of private JWKs); without it, the dev key for the partner. */
export function loadPartnerKeys(options: { partnerId: string; signingKeys?: string; activeKid?: string }): PartnerKeys {
  let jwks: z.infer<typeof privateJwk>[];
  if (options.signingKeys === undefined) {
    jwks = [devPartnerJwk(options.partnerId)];
  } else {
    let raw: unknown;
    try {
      raw = JSON.parse(options.signingKeys);
    } catch {
      throw new PartnerKeyError('PARTNER_SIGNING_KEYS is not valid JSON');
    }
    const parsed = z.array(privateJwk).min(1).max(4).safeParse(raw);
    if (!parsed.success) throw new PartnerKeyError(`PARTNER_SIGNING_KEYS: ${parsed.error.issues[0]?.message}`);
    jwks = parsed.data;
  }
  let all: SigningKey[];
  try {
    all = jwks.map(toSigningKey);
  } catch (err) {
    if (err instanceof PartnerKeyError) throw err;
    throw new PartnerKeyError(
      `PARTNER_SIGNING_KEYS: unusable key (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  if (new Set(all.map((k) => k.kid)).size !== all.length)
    throw new PartnerKeyError('PARTNER_SIGNING_KEYS: duplicate kid');
  const active = options.activeKid ? all.find((k) => k.kid === options.activeKid) : all[0];
  if (!active) throw new PartnerKeyError(`PARTNER_ACTIVE_KID ${options.activeKid} is not among PARTNER_SIGNING_KEYS`);
  return { active, all, jwks: { keys: all.map((k) => k.publicJwk) } };
}
