import {
  createCipheriv,
  createDecipheriv,
  ECDH,
  createECDH,
  createHmac,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
} from 'node:crypto';
import {
  FIELD_BYTES,
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
  // the ephemeral scalar and the nonce from one RNG call (each call costs a few µs of a 1 KB encrypt)
  const drawn = randomScalar(assertCurve(publicKey.curve), NONCE_LENGTH);
  return encrypt(publicKey, plaintext, drawn.subarray(0, FIELD_BYTES), drawn.subarray(FIELD_BYTES));
}

/**
 * Deterministic encryption for the committed test vectors only (scripts/gen-crypto-vectors.ts): a
 * fixed ephemeral scalar and nonce make the output reproducible. Never use it for real data (a
 * reused ephemeral key and nonce would expose the plaintext).
 */
export function eciesEncryptForTestVector(
  publicKey: CakPublicKey,
  plaintext: Uint8Array,
  fixed: { ephemeralScalar: Buffer; nonce: Buffer },
): Buffer {
  const curve = assertCurve(publicKey.curve);
  return encrypt(publicKey, plaintext, checkScalar(fixed.ephemeralScalar, curve), fixed.nonce);
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
  const { shared } = keyAgreement(curve, checkScalar(privateKey.scalar, curve), ephemeral);
  return open(ephemeral, shared, bytes.subarray(EPHEMERAL_LENGTH));
}

/** Full ECDH shared point (65 bytes, uncompressed): the same code path ECIES uses. */
export function ecdhSharedPoint(privateKey: CakPrivateKey, publicKey: CakPublicKey): Buffer {
  if (privateKey.curve !== publicKey.curve) throw new CryptoError('KEY_WRONG_CURVE', 'keys are on different curves');
  const curve = assertCurve(publicKey.curve);
  const scalar = checkScalar(privateKey.scalar, curve);
  return keyAgreement(curve, scalar, validatePointBytes(publicKey.uncompressed, curve)).shared;
}

/** The recipient key is validated on every call: it may have been built by hand. */
function encrypt(publicKey: CakPublicKey, plaintext: Uint8Array, scalar: Buffer, nonce: Buffer): Buffer {
  const recipient = validatePointBytes(publicKey.uncompressed, publicKey.curve);
  const { own, shared } = keyAgreement(publicKey.curve, scalar, recipient);
  return seal(own, shared, nonce, plaintext);
}

/*
 * Key agreement: for a scalar k in [1, n-1] and a validated point P, our public key k·G and the
 * full shared point S = k·P, both uncompressed. node:crypto's ECDH returns only x(S) = x1, and x
 * alone cannot tell y from -y. OpenSSL's square root (ECDH.convertKey of the compressed x) gives
 * one root y; a second ECDH with the scalar k + 1 gives x3 = x((k + 1)·P) = x(S + P), which picks
 * the sign. With P = (x2, y2), the chord through S and P satisfies
 *
 *     (y2 - y1)^2 = (x3 + x1 + x2)(x2 - x1)^2
 *
 * while for -S the left side would be (y2 + y1)^2, which differs by 4·y1·y2, never 0 (neither curve
 * has a point with y = 0). So no field inversion, and a result that fits neither sign is refused.
 * The chord exists unless S = ±P, that is k = 1 or k = n - 1 (both curves have prime order), and
 * then S is ±P itself.
 */

interface Agreement {
  own: Buffer;
  shared: Buffer;
}

const EVEN_Y = Buffer.from([0x02]);

function keyAgreement(curve: Curve, scalar: Buffer, peer: Buffer): Agreement {
  const { Fp, n, ProjectivePoint } = pointMath(curve);
  const k = bytesToBigInt(scalar);
  if (k === 1n || k === n - 1n) {
    const signed = (point: typeof ProjectivePoint.BASE) => (k === 1n ? point : point.negate()).toRawBytes(false);
    return {
      own: Buffer.from(signed(ProjectivePoint.BASE)),
      shared: Buffer.from(signed(ProjectivePoint.fromHex(peer))),
    };
  }
  const { own, x, xNext } = X_COORDINATES[curve](bigIntToBytes(k), bigIntToBytes(k + 1n), peer);
  const root = ECDH.convertKey(Buffer.concat([EVEN_Y, x]), NODE_CURVE[curve], undefined, undefined, 'uncompressed');
  if (typeof root === 'string') throw new TypeError('convertKey returned a string');
  const y = bytesToBigInt(root.subarray(33));
  const x1 = bytesToBigInt(x);
  const x2 = bytesToBigInt(peer.subarray(1, 33));
  const y2 = bytesToBigInt(peer.subarray(33));
  const chord = Fp.mul(Fp.add(Fp.add(bytesToBigInt(xNext), x1), x2), Fp.sqr(Fp.sub(x2, x1)));
  if (Fp.eql(Fp.sqr(Fp.sub(y2, y)), chord)) return { own, shared: root };
  if (Fp.eql(Fp.sqr(Fp.add(y2, y)), chord)) {
    return { own, shared: Buffer.concat([root.subarray(0, 33), bigIntToBytes(Fp.neg(y))]) };
  }
  throw new Error('ECDH results fit neither sign of the shared point');
}

/** k·G, x(k·P) and x((k + 1)·P) from node:crypto, by whichever of its APIs is faster on the curve (docs/crypto.md). */
type XCoordinates = (scalar: Buffer, nextScalar: Buffer, peer: Buffer) => { own: Buffer; x: Buffer; xNext: Buffer };

/**
 * P-256: one ECDH object for the process, since creating one costs about a tenth of an encrypt.
 * OpenSSL derives k·G and (k + 1)·G on its fast fixed-base path. The object keeps the last scalar
 * until the next call overwrites it (docs/crypto.md).
 */
const p256 = createECDH(NODE_CURVE.secp256r1);
const viaEcdh: XCoordinates = (scalar, nextScalar, peer) => {
  p256.setPrivateKey(scalar);
  const own = p256.getPublicKey();
  const x = p256.computeSecret(peer);
  p256.setPrivateKey(nextScalar);
  return { own, x, xNext: p256.computeSecret(peer) };
};

/**
 * secp256k1: OpenSSL has no fast fixed-base code for this curve, and ECDH.computeSecret re-derives
 * k·G on every call to check its own key pair. diffieHellman with KeyObjects does not: k·G comes
 * from one ECDH, (k + 1)·G = k·G + G from @noble/curves, and each private key is imported with its
 * public key, which OpenSSL then takes as given.
 */
const viaKeyObjects: XCoordinates = (scalar, nextScalar, peer) => {
  const ecdh = createECDH(NODE_CURVE.secp256k1);
  ecdh.setPrivateKey(scalar);
  const own = ecdh.getPublicKey();
  const { ProjectivePoint } = pointMath('secp256k1');
  const ownNext = ProjectivePoint.fromHex(own).add(ProjectivePoint.BASE).toRawBytes(false);
  const publicKey = createPublicKey({ key: Buffer.concat([K1_SPKI_PREFIX, peer]), format: 'der', type: 'spki' });
  const derive = (d: Buffer, dG: Uint8Array) =>
    diffieHellman({
      privateKey: createPrivateKey({
        key: Buffer.concat([K1_SEC1_HEAD, d, K1_SEC1_MIDDLE, dG]),
        format: 'der',
        type: 'sec1',
      }),
      publicKey,
    });
  return { own, x: derive(scalar, own), xNext: derive(nextScalar, ownNext) };
};

// DER for secp256k1 keys, around a 32-byte scalar and a 65-byte uncompressed point:
// SubjectPublicKeyInfo = SEQUENCE { SEQUENCE { id-ecPublicKey, secp256k1 }, BIT STRING point } and
// ECPrivateKey (RFC 5915) = SEQUENCE { version 1, OCTET STRING d, [0] secp256k1, [1] BIT STRING point }.
const K1_SPKI_PREFIX = Buffer.from('3056301006072a8648ce3d020106052b8104000a034200', 'hex');
const K1_SEC1_HEAD = Buffer.from('30740201010420', 'hex');
const K1_SEC1_MIDDLE = Buffer.from('a00706052b8104000aa144034200', 'hex');

const X_COORDINATES: Record<Curve, XCoordinates> = { secp256r1: viaEcdh, secp256k1: viaKeyObjects };

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
