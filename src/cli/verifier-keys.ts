import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { calculateJwkThumbprint, SignJWT, type JWK } from 'jose';
import { UsageError } from './exit-codes';

/**
 * The Verifier's ES256 (P-256) key, read from a file, and the bearer JWT the issuer's Verifier API
 * takes (src/api/verifier.ts): header `alg` ES256 (`kid` when known), claims `iss` = `sub` = the
 * verifierDid, `aud` = "cak-issuer", `iat`, `exp` (5 minutes; the API accepts at most 10).
 *
 * A key file is a JWK (JSON, `{kty: "EC", crv: "P-256", x, y[, d][, kid]}`), a JWK Set with one
 * such key, or PEM: PKCS#8 (`BEGIN PRIVATE KEY`), SEC1 (`BEGIN EC PRIVATE KEY`, what
 * `openssl ecparam -genkey` writes) or SPKI (`BEGIN PUBLIC KEY`, public half only).
 */

export interface VerifierKey {
  publicKey: KeyObject;
  /** absent when the file holds only the public half */
  privateKey?: KeyObject;
  /** the JWK's `kid`, when the file is a JWK that has one */
  kid?: string;
}

/** The API's audience (VERIFIER_TOKEN_AUDIENCE in src/api/verifier.ts, which the cli may not import; a test compares them). */
export const VERIFIER_TOKEN_AUDIENCE = 'cak-issuer';
export const VERIFIER_TOKEN_TTL_SECONDS = 300;
const KID = /^[A-Za-z0-9._:-]{1,128}$/;

function invalid(file: string, why: string): UsageError {
  return new UsageError(`--verifier-key ${file}: ${why}`);
}

function fromJwk(file: string, jwk: JWK): VerifierKey {
  if (jwk.kty !== 'EC' || jwk.crv !== 'P-256') throw invalid(file, 'not an EC P-256 key (kty "EC", crv "P-256")');
  const kid = typeof jwk.kid === 'string' ? jwk.kid : undefined;
  try {
    if (jwk.d !== undefined) {
      const privateKey = createPrivateKey({ key: jwk as never, format: 'jwk' });
      return { privateKey, publicKey: createPublicKey(privateKey), ...(kid ? { kid } : {}) };
    }
    return { publicKey: createPublicKey({ key: jwk as never, format: 'jwk' }), ...(kid ? { kid } : {}) };
  } catch (err) {
    throw invalid(file, `not a valid P-256 JWK (${err instanceof Error ? err.message : String(err)})`);
  }
}

function fromPem(file: string, pem: string): VerifierKey {
  let key: VerifierKey;
  try {
    if (/-----BEGIN PUBLIC KEY-----/.test(pem)) key = { publicKey: createPublicKey(pem) };
    else {
      const privateKey = createPrivateKey(pem);
      key = { privateKey, publicKey: createPublicKey(privateKey) };
    }
  } catch (err) {
    throw invalid(file, `not a readable PEM key (${err instanceof Error ? err.message : String(err)})`);
  }
  const details = key.publicKey.asymmetricKeyDetails;
  if (key.publicKey.asymmetricKeyType !== 'ec' || details?.namedCurve !== 'prime256v1') {
    throw invalid(file, 'not an EC P-256 (prime256v1) key');
  }
  return key;
}

/** Reads a Verifier key file (JWK JSON, a one-key JWK Set, or PEM). */
export async function readVerifierKey(file: string, shownAs = file): Promise<VerifierKey> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw invalid(shownAs, `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`);
  }
  if (text.startsWith('{')) {
    let json: { keys?: unknown } & JWK;
    try {
      json = JSON.parse(text) as typeof json;
    } catch {
      throw invalid(shownAs, 'looks like JSON but does not parse');
    }
    if (Array.isArray(json.keys)) {
      if (json.keys.length !== 1)
        throw invalid(shownAs, `a JWK Set must hold exactly one key, it holds ${json.keys.length}`);
      return fromJwk(shownAs, json.keys[0] as JWK);
    }
    return fromJwk(shownAs, json);
  }
  if (text.includes('-----BEGIN')) return fromPem(shownAs, text);
  throw invalid(shownAs, 'expected a JWK (JSON) or a PEM key');
}

/** The public JWK the issuer registers: `{kty, crv, x, y}`. */
export function publicJwk(key: VerifierKey): { kty: 'EC'; crv: 'P-256'; x: string; y: string } {
  const { x, y } = key.publicKey.export({ format: 'jwk' });
  return { kty: 'EC', crv: 'P-256', x: x!, y: y! };
}

/** The key's id: the given one, the JWK's own, or its RFC 7638 thumbprint (the same for the same key). */
export async function keyIdOf(key: VerifierKey, given?: string): Promise<string> {
  const kid = given ?? key.kid ?? (await calculateJwkThumbprint(publicJwk(key), 'sha256'));
  if (!KID.test(kid)) throw new UsageError(`kid "${kid}" must be 1-128 of A-Z a-z 0-9 . _ : -`);
  return kid;
}

/** A fresh P-256 key as a private JWK with a thumbprint kid. */
export async function generateVerifierKey(kid?: string): Promise<JWK & { kid: string }> {
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const jwk = privateKey.export({ format: 'jwk' }) as JWK;
  const key = { privateKey, publicKey: createPublicKey(privateKey) };
  return { kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, d: jwk.d, kid: await keyIdOf(key, kid) };
}

/** The bearer JWT for `GET /v1/verifier/data`; `kid` in the header only when known (else the API tries each registered key). */
export async function verifierToken(
  verifierDid: string,
  key: VerifierKey,
  options: { kid?: string; ttlSeconds?: number; shownAs?: string } = {},
): Promise<string> {
  if (!key.privateKey) {
    throw invalid(options.shownAs ?? 'file', 'holds only a public key; signing needs the private key');
  }
  const kid = options.kid ?? key.kid;
  return new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', typ: 'JWT', ...(kid ? { kid } : {}) })
    .setIssuer(verifierDid)
    .setSubject(verifierDid)
    .setAudience(VERIFIER_TOKEN_AUDIENCE)
    .setIssuedAt()
    .setExpirationTime(`${options.ttlSeconds ?? VERIFIER_TOKEN_TTL_SECONDS}s`)
    .sign(key.privateKey);
}
