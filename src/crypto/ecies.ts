import { createCipheriv, createDecipheriv, createECDH, createHmac, randomFillSync, type ECDH } from 'node:crypto';
import type { ProjPointType } from '@noble/curves/abstract/weierstrass';
import {
  NOBLE,
  NODE_CURVE,
  CryptoError,
  assertCurve,
  bigIntToBytes,
  bytesToBigInt,
  checkScalar,
  pointMath,
  randomScalar,
  validatePointBytes,
  type CakPrivateKey,
  type CakPublicKey,
  type Curve,
} from './keys';
import { nativeEc, type NativeEc } from './native-ec';

/**
 * "cak-ecies-v1", one profile for both curves (docs/crypto.md):
 *
 *   package = ephemeral public key (65 B, uncompressed) || nonce (16 B) || tag (16 B) || ciphertext
 *   key     = HKDF-SHA256(ikm = ephemeral public key || shared point, both uncompressed; no salt, no info; 32 B)
 *   cipher  = AES-256-GCM, no associated data
 *
 * On secp256k1 this is byte for byte what eciesjs 0.5 (default config) writes and reads.
 */

export const EPHEMERAL_LENGTH = 65;
export const NONCE_LENGTH = 16;
export const TAG_LENGTH = 16;
export const ECIES_OVERHEAD = EPHEMERAL_LENGTH + NONCE_LENGTH + TAG_LENGTH;
/** The largest item the issuer encrypts (architecture: items up to 25 MB each). */
export const MAX_ITEM_BYTES = 25 * 1024 * 1024;

const CHUNK_BYTES = 1024 * 1024;

export function eciesEncrypt(publicKey: CakPublicKey, plaintext: Uint8Array): Buffer {
  const { ephemeral, shared } = encryptKeyAgreement(publicKey);
  return seal(ephemeral, shared, randomFillSync(Buffer.allocUnsafe(NONCE_LENGTH)), plaintext);
}

/**
 * Deterministic encryption for the committed test vectors only: a fixed ephemeral scalar and
 * nonce make the output reproducible. Never use it for real data (a reused ephemeral key and
 * nonce would expose the plaintext).
 */
export function eciesEncryptForTestVector(
  publicKey: CakPublicKey,
  plaintext: Uint8Array,
  fixed: { ephemeralScalar: Buffer; nonce: Buffer },
): Buffer {
  const { ephemeral, shared } = encryptKeyAgreement(publicKey, checkScalar(fixed.ephemeralScalar, publicKey.curve));
  return seal(ephemeral, shared, fixed.nonce, plaintext);
}

export function eciesDecrypt(privateKey: CakPrivateKey, pkg: Uint8Array): Buffer {
  const { curve } = privateKey;
  if (pkg.length < ECIES_OVERHEAD) {
    throw new CryptoError('CIPHERTEXT_TOO_SHORT', `package must be at least ${ECIES_OVERHEAD} bytes`);
  }
  const bytes = Buffer.from(pkg.buffer, pkg.byteOffset, pkg.length);
  const ephemeral = bytes.subarray(0, EPHEMERAL_LENGTH);
  try {
    if (ephemeral[0] !== 0x04) throw new Error('compressed ephemeral key');
    validatePointBytes(ephemeral, curve);
  } catch {
    throw new CryptoError('CIPHERTEXT_INVALID', 'package does not start with a valid ephemeral public key');
  }
  const shared = sharedPoint(curve, checkScalar(privateKey.scalar, curve), ephemeral);
  return open(ephemeral, shared, bytes.subarray(EPHEMERAL_LENGTH));
}

/** Full ECDH shared point (65 bytes, uncompressed): the same code path ECIES uses. */
export function ecdhSharedPoint(privateKey: CakPrivateKey, publicKey: CakPublicKey): Buffer {
  if (privateKey.curve !== publicKey.curve) throw new CryptoError('KEY_WRONG_CURVE', 'keys are on different curves');
  return sharedPoint(privateKey.curve, checkScalar(privateKey.scalar, privateKey.curve), recipientFor(publicKey).point);
}

/** S = k·P with both coordinates, for a validated uncompressed P: the addon, else x-only ECDH and recovery. */
function sharedPoint(curve: Curve, scalar: Buffer, peer: Buffer): Buffer {
  const addon = addonInUse();
  if (addon) return addon.multiply(curve, scalar, peer);
  const ecdh = createECDH(NODE_CURVE[curve]);
  ecdh.setPrivateKey(scalar);
  return sharedPointPlusOwn(curve, ecdh, ecdh.getPublicKey(), peer, addGenerator(curve, peer));
}

/** Tests switch the addon off to exercise the x-only route on a machine that has it. */
let addonEnabled = true;
function addonInUse(): NativeEc | null {
  return addonEnabled ? nativeEc() : null;
}

const ZERO_SALT = Buffer.alloc(32);
const FIRST_BLOCK = Buffer.from([0x01]);

/** HKDF-SHA256 (RFC 5869) with no salt (= 32 zero bytes), no info, L = 32: one expand block. */
function deriveKey(ephemeral: Buffer, shared: Buffer): Buffer {
  const prk = createHmac('sha256', ZERO_SALT).update(ephemeral).update(shared).digest();
  return createHmac('sha256', prk).update(FIRST_BLOCK).digest();
}

function seal(ephemeral: Buffer, shared: Buffer, nonce: Buffer, plaintext: Uint8Array): Buffer {
  if (plaintext.length > MAX_ITEM_BYTES) {
    throw new CryptoError('PLAINTEXT_TOO_LARGE', `an item is at most ${MAX_ITEM_BYTES} bytes`);
  }
  // One output buffer, written in place: a 25 MB item costs its own size once more, not twice.
  const out = Buffer.allocUnsafe(ECIES_OVERHEAD + plaintext.length);
  ephemeral.copy(out, 0);
  nonce.copy(out, EPHEMERAL_LENGTH);
  const cipher = createCipheriv('aes-256-gcm', deriveKey(ephemeral, shared), nonce, { authTagLength: TAG_LENGTH });
  let written = ECIES_OVERHEAD;
  for (let i = 0; i < plaintext.length; i += CHUNK_BYTES) {
    written += cipher.update(plaintext.subarray(i, i + CHUNK_BYTES)).copy(out, written);
  }
  written += cipher.final().copy(out, written);
  if (written !== out.length) throw new Error('AES-GCM output length mismatch');
  cipher.getAuthTag().copy(out, EPHEMERAL_LENGTH + NONCE_LENGTH);
  return out;
}

function open(ephemeral: Buffer, shared: Buffer, body: Buffer): Buffer {
  const nonce = body.subarray(0, NONCE_LENGTH);
  const tag = body.subarray(NONCE_LENGTH, NONCE_LENGTH + TAG_LENGTH);
  const ciphertext = body.subarray(NONCE_LENGTH + TAG_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', deriveKey(ephemeral, shared), nonce, { authTagLength: TAG_LENGTH });
  decipher.setAuthTag(tag);
  const out = Buffer.allocUnsafe(ciphertext.length);
  let written = 0;
  try {
    for (let i = 0; i < ciphertext.length; i += CHUNK_BYTES) {
      written += decipher.update(ciphertext.subarray(i, i + CHUNK_BYTES)).copy(out, written);
    }
    written += decipher.final().copy(out, written);
  } catch {
    out.fill(0); // never hand out unauthenticated plaintext, not even by accident
    throw new CryptoError('CIPHERTEXT_INVALID', 'package failed authentication');
  }
  return out.subarray(0, written);
}

/*
 * Without the addon: the ECDH shared point S = k·B with both coordinates. node:crypto's ECDH
 * returns only x(S), and x alone cannot tell y from -y. A second native ECDH gives x(S + A) for a point A we know in
 * full (the "anchor"). With S = (x1, y1), A = (x2, y2), x3 = x(S + A), the chord through S and A
 * has slope (y2 - y1)/(x2 - x1), so (y2 - y1)^2 = (x3 + x1 + x2)(x2 - x1)^2; with
 * y1^2 = x1^3 + a·x1 + b this is linear in y1:
 *
 *     y1 = (y2^2 + x1^3 + a·x1 + b - (x3 + x1 + x2)(x2 - x1)^2) / (2·y2)
 *
 * No square root, no sign to guess. Two anchors are used (docs/crypto.md has the measurements):
 *   - A = our own public key k·G: x(S + k·G) = x(k·(B + G)), one more ECDH with the same scalar
 *     on B + G; costs one field inversion per message.
 *   - A = B: x(S + B) = x((k+1)·B), an ECDH with scalar k + 1; 1/(2·y2) is cached per recipient,
 *     but node has to derive (k+1)·G, which is cheap on P-256 and slow on secp256k1.
 * The degenerate cases (x1 = x2, an anchor sum at infinity, k + 1 = n) fall back to the full-point
 * ECDH of @noble/curves; they need B = ±G or k = ±1.
 */

interface Anchor {
  x: bigint;
  y: bigint;
  inv2y: bigint;
}

function anchorOf(curve: Curve, point: Buffer): Anchor {
  const { Fp } = pointMath(curve);
  const y = bytesToBigInt(point.subarray(33, 65));
  return { x: bytesToBigInt(point.subarray(1, 33)), y, inv2y: Fp.inv(Fp.add(y, y)) };
}

function recoverSharedPoint(curve: Curve, x1Bytes: Buffer, x3Bytes: Buffer, anchor: Anchor): Buffer | null {
  const { Fp, a, b } = pointMath(curve);
  const x1 = bytesToBigInt(x1Bytes);
  const x3 = bytesToBigInt(x3Bytes);
  if (x1 === anchor.x) return null;
  const rhs = Fp.add(Fp.add(Fp.mul(Fp.sqr(x1), x1), Fp.mul(a, x1)), b);
  const chord = Fp.mul(Fp.add(Fp.add(x3, x1), anchor.x), Fp.sqr(Fp.sub(anchor.x, x1)));
  const y1 = Fp.mul(Fp.sub(Fp.add(Fp.sqr(anchor.y), rhs), chord), anchor.inv2y);
  if (!Fp.eql(Fp.sqr(y1), rhs)) return null;
  return Buffer.concat([Buffer.from([0x04]), x1Bytes, bigIntToBytes(y1)]);
}

/** How many shared points came from the fallback below; read by tests, so a silent fallback cannot hide a broken fast path. */
let fallbackCount = 0;

function fullPointFallback(curve: Curve, ecdh: ECDH, peer: Buffer): Buffer {
  fallbackCount++;
  // node returns the scalar without leading zero bytes (1 byte for e = 1); noble wants exactly 32.
  const scalar = bigIntToBytes(bytesToBigInt(ecdh.getPrivateKey()));
  return Buffer.from(NOBLE[curve].getSharedSecret(scalar, peer, false));
}

/** Anchor = our own public key (`own` = k·G); `peerPlusG` = B + G, or null at infinity. */
function sharedPointPlusOwn(curve: Curve, ecdh: ECDH, own: Buffer, peer: Buffer, peerPlusG: Buffer | null): Buffer {
  const x1 = ecdh.computeSecret(peer);
  const shared =
    peerPlusG === null ? null : recoverSharedPoint(curve, x1, ecdh.computeSecret(peerPlusG), anchorOf(curve, own));
  return shared ?? fullPointFallback(curve, ecdh, peer);
}

/*
 * Encrypt side: a fresh ephemeral scalar e, its public key E = e·G and the full shared point
 * S = e·Q for the recipient key Q. Three routes, chosen per curve from `npm run bench`
 * (docs/crypto.md, "Encrypt fast path"):
 *
 *   - addon (P-256 always; secp256k1 for a recipient seen for the first time), when the native
 *     addon is built: E and S each from one constant-time multiplication in node's OpenSSL, both
 *     coordinates at once. P-256 has assembly in OpenSSL that JavaScript cannot approach.
 *   - table (secp256k1, from the second message to a recipient on): both multiplications in
 *     @noble/curves with precomputed windows, E with noble's built-in table for G and S with a
 *     table built once for Q. It is the same constant-time windowed multiplication noble uses
 *     for public keys (every window does one addition, real or dummy). S comes out with both
 *     coordinates. OpenSSL has no fast secp256k1 code, so two table multiplications in JavaScript
 *     cost less than OpenSSL's generic ones.
 *   - x-only (where the addon would be, when it is absent): node:crypto ECDH with y recovered as
 *     above; about a third of the addon's rate for small P-256 messages.
 */

type TablePoint = ProjPointType<bigint>;

/** Window width of a recipient table: 1376 points, ~10 ms to build, ~0.37 ms per multiplication. */
const TABLE_WINDOW_BITS = 6;
/** A recipient gets a table on its second message: a one-off recipient never pays for one. */
const TABLE_AFTER_ENCRYPTS = 2;
const TABLE_CURVES: Record<Curve, boolean> = { secp256r1: false, secp256k1: true };

/** How a shared point was computed; returned to tests, never part of the output. */
export type KeyAgreementRoute = 'addon' | 'table' | 'x-only';

interface KeyAgreement {
  ephemeral: Buffer;
  shared: Buffer;
  route: KeyAgreementRoute;
}

/** `fixedScalar` only for test vectors; otherwise e is drawn here. */
function encryptKeyAgreement(publicKey: CakPublicKey, fixedScalar?: Buffer): KeyAgreement {
  const recipient = recipientFor(publicKey);
  recipient.encrypts++;
  const table = tableFor(recipient);
  if (table) {
    const e = fixedScalar ? bytesToBigInt(fixedScalar) : bytesToBigInt(randomScalar(recipient.curve));
    return tableKeyAgreement(recipient.curve, table, e);
  }
  const addon = addonInUse();
  return addon ? addonKeyAgreement(addon, recipient, fixedScalar) : xOnlyKeyAgreement(recipient, fixedScalar);
}

function addonKeyAgreement(addon: NativeEc, recipient: Recipient, fixedScalar?: Buffer): KeyAgreement {
  const { curve } = recipient;
  const e = fixedScalar ?? randomScalar(curve);
  const ephemeral = addon.multiply(curve, e, null);
  const shared = addon.multiply(curve, e, recipient.point);
  if (!fixedScalar) e.fill(0);
  return { ephemeral, shared, route: 'addon' };
}

function tableKeyAgreement(curve: Curve, table: TablePoint, e: bigint): KeyAgreement {
  const { ProjectivePoint } = pointMath(curve);
  // multiply() (not multiplyUnsafe): the constant-time path, e is secret.
  const ephemeral = ProjectivePoint.BASE.multiply(e).toRawBytes(false);
  const shared = table.multiply(e).toRawBytes(false);
  return { ephemeral: asBuffer(ephemeral), shared: asBuffer(shared), route: 'table' };
}

function xOnlyKeyAgreement(recipient: Recipient, fixedScalar?: Buffer): KeyAgreement {
  const { curve } = recipient;
  const { ecdh, next } = ephemeralEcdh(curve);
  let ephemeral: Buffer;
  if (fixedScalar) {
    ecdh.setPrivateKey(fixedScalar);
    ephemeral = ecdh.getPublicKey();
  } else {
    ephemeral = ecdh.generateKeys();
  }
  const shared = ANCHOR_ON_RECIPIENT[curve]
    ? sharedPointPlusRecipient(recipient, ecdh, next)
    : sharedPointPlusOwn(curve, ecdh, ephemeral, recipient.point, addGenerator(curve, recipient.point));
  return { ephemeral, shared, route: 'x-only' };
}

/** Anchor = the recipient key Q: x(S + Q) = x((e + 1)·Q); `next` is a spare ECDH object for e + 1. */
function sharedPointPlusRecipient(recipient: Recipient, ecdh: ECDH, next: ECDH): Buffer {
  const { curve } = recipient;
  const x1 = ecdh.computeSecret(recipient.point);
  const e1 = bytesToBigInt(ecdh.getPrivateKey()) + 1n;
  let shared: Buffer | null = null;
  if (e1 < pointMath(curve).n) {
    next.setPrivateKey(bigIntToBytes(e1));
    recipient.anchor ??= anchorOf(curve, recipient.point);
    shared = recoverSharedPoint(curve, x1, next.computeSecret(recipient.point), recipient.anchor);
  }
  return shared ?? fullPointFallback(curve, ecdh, recipient.point);
}

/** Which x-only anchor is faster, measured with `npm run bench` (docs/crypto.md). */
const ANCHOR_ON_RECIPIENT: Record<Curve, boolean> = { secp256r1: true, secp256k1: false };

/** B + G (uncompressed), or null when it is the point at infinity. */
function addGenerator(curve: Curve, point: Buffer): Buffer | null {
  const { ProjectivePoint } = pointMath(curve);
  const sum = ProjectivePoint.fromHex(point).add(ProjectivePoint.BASE);
  return sum.equals(ProjectivePoint.ZERO) ? null : Buffer.from(sum.toRawBytes(false));
}

function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
}

/** A small least-recently-used map (a Map iterates in insertion order; a hit re-inserts). */
class Lru<V> {
  private readonly entries = new Map<string, V>();
  constructor(public limit: number) {}

  get(key: string): V | undefined {
    const value = this.entries.get(key);
    if (value !== undefined) {
      this.entries.delete(key);
      this.entries.set(key, value);
    }
    return value;
  }

  set(key: string, value: V): void {
    this.entries.delete(key);
    this.entries.set(key, value);
    for (const oldest of this.entries.keys()) {
      if (this.entries.size <= this.limit) break;
      this.entries.delete(oldest);
    }
  }

  get size(): number {
    return this.entries.size;
  }

  clear(): void {
    this.entries.clear();
  }
}

/** Everything per recipient key that does not depend on the message: computed once, validated first. */
interface Recipient {
  curve: Curve;
  cacheKey: string;
  point: Buffer;
  /** The x-only route's cached 1/(2·y) for Q, computed on that route's first use. */
  anchor?: Anchor;
  encrypts: number;
}

const RECIPIENT_CACHE_LIMIT = 1024;
/** Tables are ~0.2 MB each (1376 points), so far fewer of them are kept than recipients. */
const TABLE_CACHE_LIMIT = 32;
const recipients = new Lru<Recipient>(RECIPIENT_CACHE_LIMIT);
const tables = new Lru<TablePoint>(TABLE_CACHE_LIMIT);

/** The cache key is the curve and the exact key bytes; only a validated key is ever stored. */
function cacheKeyOf(curve: Curve, bytes: Buffer): string {
  return `${curve}:${bytes.toString('hex')}`;
}

/** Validates the recipient key (it may have been built by hand) unless these exact bytes were validated before. */
function recipientFor(publicKey: CakPublicKey): Recipient {
  const curve = assertCurve(publicKey.curve);
  const cached = recipients.get(cacheKeyOf(curve, publicKey.uncompressed));
  if (cached) return cached;
  const point = validatePointBytes(publicKey.uncompressed, curve);
  const entry: Recipient = {
    curve,
    cacheKey: cacheKeyOf(curve, point),
    point,
    encrypts: 0,
  };
  recipients.set(entry.cacheKey, entry);
  return entry;
}

function tableFor(recipient: Recipient): TablePoint | undefined {
  if (!TABLE_CURVES[recipient.curve]) return undefined;
  const cached = tables.get(recipient.cacheKey);
  if (cached || recipient.encrypts < TABLE_AFTER_ENCRYPTS) return cached;
  const table = pointMath(recipient.curve).ProjectivePoint.fromHex(recipient.point);
  table.precompute(TABLE_WINDOW_BITS, false); // noble keeps the windows with this point object
  tables.set(recipient.cacheKey, table);
  return table;
}

// Two ECDH objects per curve for ephemeral keys (e and e + 1): generateKeys() and setPrivateKey()
// replace the key each time, and creating an object costs about as much as generating a key.
// Calls are synchronous, so no two messages ever share an ephemeral key.
const ephemeralObjects = new Map<Curve, { ecdh: ECDH; next: ECDH }>();
function ephemeralEcdh(curve: Curve): { ecdh: ECDH; next: ECDH } {
  let pair = ephemeralObjects.get(curve);
  if (!pair) {
    pair = { ecdh: createECDH(NODE_CURVE[curve]), next: createECDH(NODE_CURVE[curve]) };
    ephemeralObjects.set(curve, pair);
  }
  return pair;
}

/** For tests only: the encrypt-side key agreement with a given scalar, the caches, the addon switch. */
export const eciesInternalsForTests = {
  /** Whether the addon is used when it is loaded (on by default; resetCaches() turns it back on). */
  setAddonEnabled(enabled: boolean): void {
    addonEnabled = enabled;
  },
  keyAgreement: (publicKey: CakPublicKey, ephemeralScalar: Buffer): KeyAgreement =>
    encryptKeyAgreement(publicKey, checkScalar(ephemeralScalar, publicKey.curve)),
  cacheSizes: () => ({ recipients: recipients.size, tables: tables.size }),
  /** Shared points computed by the full-point fallback since the process started. */
  fallbacks: () => fallbackCount,
  setCacheLimits(limits: { recipients: number; tables: number }): void {
    recipients.limit = limits.recipients;
    tables.limit = limits.tables;
  },
  resetCaches(): void {
    recipients.clear();
    tables.clear();
    recipients.limit = RECIPIENT_CACHE_LIMIT;
    tables.limit = TABLE_CACHE_LIMIT;
    addonEnabled = true;
  },
};
