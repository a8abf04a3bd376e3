// Regenerates test/vectors/cak-ecies-v1.json: `node -r @swc-node/register scripts/gen-crypto-vectors.ts`.
// Every key and nonce is derived from a fixed label, so the file is reproducible byte for byte
// (test/unit/crypto/vectors.test.ts checks that). These keys are public: vectors only.
import { createHash } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { eciesDecrypt, eciesEncryptForTestVector, ecdhSharedPoint } from '../src/crypto/ecies';
import { CryptoError, CURVES, NOBLE, type Curve } from '../src/crypto/keys';

const VECTORS_PATH = resolve(__dirname, '../test/vectors/cak-ecies-v1.json');

function fixed(label: string, bytes = 32): Buffer {
  return createHash('sha256').update(`cak-ecies-v1 test vector: ${label}`).digest().subarray(0, bytes);
}

function hex(b: Uint8Array): string {
  return Buffer.from(b).toString('hex');
}

const PLAINTEXTS = [
  '',
  'CAK test vector',
  JSON.stringify({ givenName: 'Ada', familyName: 'Lovelace', birthDate: '1815-12-10' }),
];

export function curveVectors(curve: Curve) {
  const privateKey = fixed(`${curve} recipient`);
  const noble = NOBLE[curve];
  const publicKey = Buffer.from(noble.getPublicKey(privateKey, false));
  const encrypt = PLAINTEXTS.map((text, i) => {
    const ephemeralScalar = fixed(`${curve} ephemeral ${i}`);
    const nonce = fixed(`${curve} nonce ${i}`, 16);
    const pkg = eciesEncryptForTestVector({ curve, uncompressed: publicKey }, Buffer.from(text, 'utf8'), {
      ephemeralScalar,
      nonce,
    });
    return {
      plaintext: hex(Buffer.from(text, 'utf8')),
      ephemeralPrivateKey: hex(ephemeralScalar),
      nonce: hex(nonce),
      sharedPoint: hex(ecdhSharedPoint({ curve, scalar: privateKey }, { curve, uncompressed: pkg.subarray(0, 65) })),
      package: hex(pkg),
    };
  });
  const base = Buffer.from(encrypt[1]!.package, 'hex');
  const flip = (offset: number) => {
    const copy = Buffer.from(base);
    copy[offset]! ^= 0x01;
    return copy;
  };
  const tampered = [
    { comment: 'ephemeral key x flipped (not on the curve)', package: flip(10) },
    { comment: 'nonce flipped', package: flip(65 + 3) },
    { comment: 'tag flipped', package: flip(65 + 16 + 5) },
    { comment: 'ciphertext flipped', package: flip(base.length - 1) },
    { comment: 'ephemeral key prefix 04 -> 05', package: flip(0) },
    { comment: 'truncated below the 97-byte minimum', package: base.subarray(0, 96) },
    { comment: 'last ciphertext byte removed', package: base.subarray(0, base.length - 1) },
  ].map((t) => {
    let code = 'OK';
    try {
      eciesDecrypt({ curve, scalar: privateKey }, t.package);
    } catch (err) {
      code = err instanceof CryptoError ? err.code : 'UNEXPECTED';
    }
    return { comment: t.comment, package: hex(t.package), code };
  });
  return {
    curve,
    recipientPrivateKey: hex(privateKey),
    recipientPublicKey: hex(publicKey),
    recipientPublicKeyCompressed: hex(noble.getPublicKey(privateKey, true)),
    encrypt,
    tampered,
  };
}

/** The first x >= 1 that is on `curve`, encoded non-canonically as x + p (still below 2^256). */
function nonCanonicalCompressed(curve: Curve): string {
  const { Fp } = NOBLE[curve].CURVE;
  for (let x = 1n; ; x++) {
    const xs = x.toString(16).padStart(64, '0');
    try {
      NOBLE[curve].ProjectivePoint.fromHex('02' + xs).assertValidity();
      return '02' + (x + Fp.ORDER).toString(16).padStart(64, '0');
    } catch {
      continue;
    }
  }
}

/** A compressed P-256 public key whose x is not on secp256k1. */
function p256OnlyKey(): string {
  for (let i = 0; ; i++) {
    const key = Buffer.from(NOBLE.secp256r1.getPublicKey(fixed(`p256-only ${i}`), true)).toString('hex');
    try {
      NOBLE.secp256k1.ProjectivePoint.fromHex(key).assertValidity();
    } catch {
      return key;
    }
  }
}

// Inputs to parsePublicKey(input, curve) and the code it must refuse them with.
const INVALID_PUBLIC_KEYS = [
  { curve: 'secp256r1', input: '', code: 'KEY_EMPTY', comment: 'empty' },
  { curve: 'secp256r1', input: '   ', code: 'KEY_EMPTY', comment: 'whitespace only' },
  { curve: 'secp256r1', input: '0xzz', code: 'KEY_ENCODING', comment: 'not hex' },
  { curve: 'secp256r1', input: 'abc!', code: 'KEY_ENCODING', comment: 'neither hex nor base64' },
  { curve: 'secp256r1', input: '04 11', code: 'KEY_ENCODING', comment: 'inner whitespace' },
  { curve: 'secp256r1', input: '04' + '11'.repeat(63), code: 'KEY_LENGTH', comment: '64 bytes' },
  { curve: 'secp256r1', input: '00', code: 'KEY_IDENTITY', comment: 'SEC1 point at infinity' },
  { curve: 'secp256r1', input: '04' + '00'.repeat(64), code: 'KEY_IDENTITY', comment: 'all-zero uncompressed' },
  { curve: 'secp256r1', input: '06' + 'aa'.repeat(64), code: 'KEY_PREFIX', comment: 'hybrid prefix 06' },
  { curve: 'secp256r1', input: '07' + 'aa'.repeat(64), code: 'KEY_PREFIX', comment: 'hybrid prefix 07' },
  { curve: 'secp256r1', input: '04' + 'aa'.repeat(32), code: 'KEY_PREFIX', comment: '33 bytes with prefix 04' },
  { curve: 'secp256r1', input: '02' + 'ff'.repeat(32), code: 'KEY_NON_CANONICAL', comment: 'x = 2^256-1 >= p' },
  { curve: 'secp256k1', input: '04' + 'ff'.repeat(64), code: 'KEY_NON_CANONICAL', comment: 'x, y >= p' },
  { curve: 'secp256r1', input: '04' + '01'.repeat(64), code: 'KEY_NOT_ON_CURVE', comment: 'not on P-256' },
  { curve: 'secp256k1', input: p256OnlyKey(), code: 'KEY_NOT_ON_CURVE', comment: 'P-256 point, not on secp256k1' },
  { curve: 'secp256r1', input: nonCanonicalCompressed('secp256r1'), code: 'KEY_NON_CANONICAL', comment: 'x + p' },
  { curve: 'secp256k1', input: nonCanonicalCompressed('secp256k1'), code: 'KEY_NON_CANONICAL', comment: 'x + p' },
];

function main(): void {
  const vectors = {
    profile: 'cak-ecies-v1',
    description:
      'package = ephemeral public key (65 B uncompressed) || nonce (16 B) || tag (16 B) || AES-256-GCM ciphertext; ' +
      'key = HKDF-SHA256(ephemeral public key || shared point, both uncompressed, no salt, no info, 32 B). ' +
      'All keys here are public test keys. Regenerate with scripts/gen-crypto-vectors.ts.',
    curves: CURVES.map(curveVectors),
    invalidPublicKeys: INVALID_PUBLIC_KEYS,
  };
  writeFileSync(VECTORS_PATH, `${JSON.stringify(vectors, null, 2)}\n`);
}

if (require.main === module) main();
