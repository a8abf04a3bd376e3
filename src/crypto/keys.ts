import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/p256';
import { secp256k1 } from '@noble/curves/secp256k1';

/**
 * CAK key parsing and validation. Every key that reaches ECDH has been through here: the curve is
 * always stated by the caller, the encoding is strict, and the point is on the named curve.
 */

export type Curve = 'secp256r1' | 'secp256k1';
export const CURVES: readonly Curve[] = Object.freeze(['secp256r1', 'secp256k1'] as const);

/** Stable error codes; docs/crypto.md lists what each means. */
type CryptoErrorCode =
  | 'KEY_EMPTY'
  | 'KEY_ENCODING'
  | 'KEY_LENGTH'
  | 'KEY_PREFIX'
  | 'KEY_NOT_ON_CURVE'
  | 'KEY_IDENTITY'
  | 'KEY_NON_CANONICAL'
  | 'KEY_CURVE_AMBIGUOUS'
  | 'KEY_CURVE_UNKNOWN'
  | 'KEY_SPKI_INVALID'
  | 'KEY_WRONG_CURVE'
  | 'KEY_PRIVATE_RANGE'
  | 'CIPHERTEXT_TOO_SHORT'
  | 'CIPHERTEXT_INVALID'
  | 'PLAINTEXT_TOO_LARGE'
  | 'KEYRING_INVALID'
  | 'OUTER_FORMAT'
  | 'OUTER_KEY_UNKNOWN'
  | 'OUTER_CONTEXT_MISMATCH'
  | 'OUTER_BODY_INVALID'
  | 'CODEC_KEY_UNKNOWN'
  | 'CODEC_PAYLOAD_INVALID'
  | 'CODEC_PAYLOAD_UNENCRYPTED';

export class CryptoError extends Error {
  constructor(
    readonly code: CryptoErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'CryptoError';
    Object.setPrototypeOf(this, CryptoError.prototype);
  }
}

export interface CakPublicKey {
  curve: Curve;
  /** SEC1 uncompressed point, 0x04 || x || y (65 bytes). */
  uncompressed: Buffer;
}

export interface CakPrivateKey {
  curve: Curve;
  /** Big-endian scalar in [1, n-1], 32 bytes. */
  scalar: Buffer;
}

export const NOBLE = { secp256r1: p256, secp256k1 } as const;
/** node:crypto's names for the same curves. */
export const NODE_CURVE = { secp256r1: 'prime256v1', secp256k1: 'secp256k1' } as const;

export const FIELD_BYTES = 32;
const COMPRESSED_LENGTH = 33;
const UNCOMPRESSED_LENGTH = 65;

function isCurve(value: string): value is Curve {
  return (CURVES as readonly string[]).includes(value);
}

export function assertCurve(value: string): Curve {
  if (!isCurve(value))
    throw new CryptoError('KEY_CURVE_UNKNOWN', `unknown curve "${value}" (expected ${CURVES.join(' or ')})`);
  return value;
}

const HEX = /^[0-9a-fA-F]+$/;
const BASE64 = /^[A-Za-z0-9+/]+={0,2}$/;
const BASE64URL = /^[A-Za-z0-9_-]+$/;

/**
 * Hex (optionally `0x`-prefixed) or base64 (standard or URL alphabet). A string of hex digits with
 * even length is read as hex; everything else must be canonical base64 (it re-encodes to itself).
 */
function decodeKeyText(input: string): Buffer {
  const text = input.trim();
  if (text.length === 0) throw new CryptoError('KEY_EMPTY', 'key is empty');
  const hex = /^0[xX]/.test(text) ? text.slice(2) : undefined;
  if (hex !== undefined || (HEX.test(text) && text.length % 2 === 0)) {
    const digits = hex ?? text;
    if (digits.length === 0 || digits.length % 2 !== 0 || !HEX.test(digits)) {
      throw new CryptoError('KEY_ENCODING', 'key is neither valid hex nor base64');
    }
    return Buffer.from(digits, 'hex');
  }
  if (BASE64.test(text) && text.length % 4 === 0) {
    const bytes = Buffer.from(text, 'base64');
    if (bytes.toString('base64') === text) return bytes;
  } else if (BASE64URL.test(text)) {
    const bytes = Buffer.from(text, 'base64url');
    if (bytes.toString('base64url') === text) return bytes;
  }
  throw new CryptoError('KEY_ENCODING', 'key is neither valid hex nor base64');
}

export function bytesToBigInt(bytes: Uint8Array): bigint {
  return bytes.length === 0
    ? 0n
    : BigInt('0x' + Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length).toString('hex'));
}

export function bigIntToBytes(value: bigint, length = FIELD_BYTES): Buffer {
  const hex = value.toString(16).padStart(length * 2, '0');
  // Buffer.from would silently drop an odd trailing digit: a value that does not fit is a bug.
  if (value < 0n || hex.length > length * 2) throw new RangeError(`value does not fit in ${length} bytes`);
  return Buffer.from(hex, 'hex');
}

/** Validates SEC1 point bytes on `curve` and returns the uncompressed form. */
export function validatePointBytes(bytes: Uint8Array, curve: Curve): Buffer {
  const { Fp, ProjectivePoint } = pointMath(curve);
  if (bytes.length === 1 && bytes[0] === 0x00) throw new CryptoError('KEY_IDENTITY', 'key is the point at infinity');
  if (bytes.length !== COMPRESSED_LENGTH && bytes.length !== UNCOMPRESSED_LENGTH) {
    throw new CryptoError('KEY_LENGTH', `key must be 33 (compressed) or 65 (uncompressed) bytes, got ${bytes.length}`);
  }
  const prefix = bytes[0];
  const compressed = bytes.length === COMPRESSED_LENGTH;
  // Hybrid encodings (06/07) are refused here, before any library could accept them.
  if (compressed ? prefix !== 0x02 && prefix !== 0x03 : prefix !== 0x04) {
    throw new CryptoError('KEY_PREFIX', `bad SEC1 prefix byte 0x${(prefix ?? 0).toString(16).padStart(2, '0')}`);
  }
  const x = bytesToBigInt(bytes.subarray(1, 33));
  const y = compressed ? 0n : bytesToBigInt(bytes.subarray(33));
  if (!compressed && x === 0n && y === 0n) throw new CryptoError('KEY_IDENTITY', 'key is the point at infinity');
  if (x >= Fp.ORDER || y >= Fp.ORDER)
    throw new CryptoError('KEY_NON_CANONICAL', 'a coordinate is not below the field prime');
  let point;
  try {
    // an uncompressed key is checked from its coordinates, without parsing the bytes a second time
    point = compressed ? ProjectivePoint.fromHex(bytes) : ProjectivePoint.fromAffine({ x, y });
    point.assertValidity();
  } catch {
    throw new CryptoError('KEY_NOT_ON_CURVE', `key is not a point on ${curve}`);
  }
  if (point.is0()) throw new CryptoError('KEY_IDENTITY', 'key is the point at infinity');
  return compressed ? Buffer.from(point.toRawBytes(false)) : Buffer.from(bytes);
}

/** Parses a `cakPublicKey` (hex or base64 SEC1, compressed or uncompressed) on the stated curve. */
export function parsePublicKey(input: string, curve: Curve): CakPublicKey {
  assertCurve(curve);
  return { curve, uncompressed: validatePointBytes(decodeKeyText(input), curve) };
}

/**
 * For callers that were not told the curve: accepts the key only when it is valid on exactly one
 * curve. About half of all compressed secp256k1 keys are also valid P-256 points, so those are
 * refused with KEY_CURVE_AMBIGUOUS rather than guessed.
 */
export function parsePublicKeyUnknownCurve(input: string): CakPublicKey {
  const bytes = decodeKeyText(input);
  const results = CURVES.map((curve) => {
    try {
      return { curve, uncompressed: validatePointBytes(bytes, curve) };
    } catch (err) {
      if (err instanceof CryptoError && err.code === 'KEY_NOT_ON_CURVE') return err;
      throw err;
    }
  });
  const valid = results.filter((r): r is CakPublicKey => !(r instanceof CryptoError));
  if (valid.length > 1) {
    throw new CryptoError('KEY_CURVE_AMBIGUOUS', 'key is a valid point on both curves: state the curve');
  }
  if (valid[0]) return valid[0];
  throw new CryptoError('KEY_NOT_ON_CURVE', 'key is not a point on any supported curve');
}

// DER is canonical, so a SubjectPublicKeyInfo for a named-curve EC key is exactly one of these
// prefixes followed by the point. Anything else (BER lengths, explicit parameters, other OIDs,
// trailing bytes, unused bits) is refused without a general ASN.1 parser.
const SPKI_PREFIX: Record<Curve, { compressed: string; uncompressed: string; curveOid: string }> = {
  secp256r1: {
    uncompressed: '3059301306072a8648ce3d020106082a8648ce3d030107034200',
    compressed: '3039301306072a8648ce3d020106082a8648ce3d030107032200',
    curveOid: '06082a8648ce3d030107',
  },
  secp256k1: {
    uncompressed: '3056301006072a8648ce3d020106052b8104000a034200',
    compressed: '3036301006072a8648ce3d020106052b8104000a032200',
    curveOid: '06052b8104000a',
  },
};

/** Parses a DER SubjectPublicKeyInfo (id-ecPublicKey with a named curve) for the stated curve. */
export function parseSpkiPublicKey(der: Uint8Array, curve: Curve): CakPublicKey {
  const hex = Buffer.from(der.buffer, der.byteOffset, der.length).toString('hex');
  const expected = SPKI_PREFIX[curve];
  for (const prefix of [expected.uncompressed, expected.compressed]) {
    const pointLength = prefix === expected.uncompressed ? UNCOMPRESSED_LENGTH : COMPRESSED_LENGTH;
    if (hex.startsWith(prefix) && hex.length === prefix.length + pointLength * 2) {
      return { curve, uncompressed: validatePointBytes(Buffer.from(hex.slice(prefix.length), 'hex'), curve) };
    }
  }
  const other = CURVES.find((c) => c !== curve);
  if (other && hex.includes(SPKI_PREFIX[other].curveOid) && !hex.includes(expected.curveOid)) {
    throw new CryptoError('KEY_WRONG_CURVE', `SPKI names a different curve than ${curve}`);
  }
  throw new CryptoError('KEY_SPKI_INVALID', `not a strict DER SubjectPublicKeyInfo for a named ${curve} key`);
}

/** Parses a `cakPrivateKey`: 32-byte big-endian scalar in [1, n-1], hex or base64. */
export function parsePrivateKey(input: string, curve: Curve): CakPrivateKey {
  assertCurve(curve);
  const bytes = decodeKeyText(input);
  if (bytes.length !== FIELD_BYTES) {
    throw new CryptoError('KEY_LENGTH', `private key must be 32 bytes, got ${bytes.length}`);
  }
  return { curve, scalar: checkScalar(bytes, curve) };
}

export function checkScalar(bytes: Buffer, curve: Curve): Buffer {
  const d = bytesToBigInt(bytes);
  if (d === 0n || d >= NOBLE[curve].CURVE.n) {
    throw new CryptoError('KEY_PRIVATE_RANGE', 'private key is outside [1, n-1]');
  }
  return bytes;
}

/**
 * A fresh secret scalar: 32 bytes, uniform in [1, n-1] by rejection sampling (a retry has
 * probability < 2^-32), followed by `extra` more random bytes from the same draw (one RNG call).
 */
export function randomScalar(curve: Curve, extra = 0): Buffer {
  const { n } = NOBLE[curve].CURVE;
  for (;;) {
    const bytes = randomBytes(FIELD_BYTES + extra);
    const d = bytesToBigInt(bytes.subarray(0, FIELD_BYTES));
    if (d !== 0n && d < n) return bytes;
  }
}

/** A fresh key pair; the public key is uncompressed (65 bytes), the private key 32 bytes. */
export function generateKeyPair(curve: Curve): { publicKey: Buffer; privateKey: Buffer } {
  const privateKey = randomScalar(assertCurve(curve));
  return { publicKey: Buffer.from(NOBLE[curve].getPublicKey(privateKey, false)), privateKey };
}

export function pointMath(curve: Curve) {
  const c = NOBLE[curve];
  return { Fp: c.CURVE.Fp, a: c.CURVE.a, b: c.CURVE.b, n: c.CURVE.n, ProjectivePoint: c.ProjectivePoint };
}
