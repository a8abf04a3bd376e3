import { createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/p256';
import { secp256k1 } from '@noble/curves/secp256k1';
import {
  ecdhSharedPoint,
  eciesDecrypt,
  eciesEncrypt,
  eciesEncryptForTestVector,
  EPHEMERAL_LENGTH,
  NONCE_LENGTH,
  TAG_LENGTH,
} from '../../../src/crypto/ecies';
import { CURVES, generateKeyPair, type Curve } from '../../../src/crypto/keys';
import { codeOf } from '../../support/crypto-errors';

/**
 * The key agreement (src/crypto/ecies.ts) takes x of the shared point from node:crypto and
 * recovers y from a second ECDH; a wrong y would still give packages that our own decrypt opens.
 * So every result here is compared with @noble/curves' full-point ECDH, through the public API only:
 * a package must carry noble's e·G and open under the key derived from noble's e·Q.
 */

const NOBLE = { secp256r1: p256, secp256k1 } as const;
const PLAINTEXT = Buffer.from('key agreement');

function scalarBytes(d: bigint): Buffer {
  return Buffer.from(d.toString(16).padStart(64, '0'), 'hex');
}

/** Opens `pkg` with the shared point given, by node's own HKDF and AES-GCM: none of our code. */
function openWith(shared: Uint8Array, pkg: Buffer): Buffer | null {
  const ephemeral = pkg.subarray(0, EPHEMERAL_LENGTH);
  const key = Buffer.from(hkdfSync('sha256', Buffer.concat([ephemeral, shared]), Buffer.alloc(0), Buffer.alloc(0), 32));
  const nonce = pkg.subarray(EPHEMERAL_LENGTH, EPHEMERAL_LENGTH + NONCE_LENGTH);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAuthTag(pkg.subarray(EPHEMERAL_LENGTH + NONCE_LENGTH, EPHEMERAL_LENGTH + NONCE_LENGTH + TAG_LENGTH));
  try {
    return Buffer.concat([
      decipher.update(pkg.subarray(EPHEMERAL_LENGTH + NONCE_LENGTH + TAG_LENGTH)),
      decipher.final(),
    ]);
  } catch {
    return null;
  }
}

/** Encrypts to `recipient` with the ephemeral scalar `scalar`; true when R and S are noble's. */
function encryptsLikeNoble(curve: Curve, recipient: Uint8Array, scalar: Buffer): boolean {
  const noble = NOBLE[curve];
  const pkg = eciesEncryptForTestVector({ curve, uncompressed: Buffer.from(recipient) }, PLAINTEXT, {
    ephemeralScalar: scalar,
    nonce: randomBytes(NONCE_LENGTH),
  });
  const ephemeral = Buffer.from(noble.getPublicKey(scalar, false));
  const opened = openWith(noble.getSharedSecret(scalar, recipient, false), pkg);
  return pkg.subarray(0, EPHEMERAL_LENGTH).equals(ephemeral) && opened !== null && opened.equals(PLAINTEXT);
}

describe.each(CURVES)('key agreement on %s', (curve) => {
  const noble = NOBLE[curve];
  const { n } = noble.CURVE;
  const g = noble.ProjectivePoint.BASE;

  /** Byte, carry and range boundaries, and the two scalars with no chord (k = ±1: S = ±P). */
  const edgeScalars = [
    1n,
    2n,
    3n,
    0xffn,
    0x100n, // node's ECDH hands this back as 2 bytes
    0x01ffn,
    (1n << 128n) - 1n,
    (1n << 248n) - 1n, // k + 1 gains a byte
    1n << 248n,
    (1n << 255n) - 1n,
    n >> 1n,
    (n >> 1n) + 1n,
    n - 3n,
    n - 2n, // k + 1 = n - 1: x((k + 1)·P) = x(P)
    n - 1n,
  ];
  /** ±G and ±2G: a recipient equal to ±k·G for the small scalars above. */
  const edgePoints = [g, g.negate(), g.double(), g.double().negate()].map((p) => p.toRawBytes(false));

  it('encrypts with noble’s R = e·G and S = e·Q for random keys and scalars, including a zero top byte', () => {
    const failures: string[] = [];
    for (let i = 0; i < 60; i++) {
      const recipient = generateKeyPair(curve).publicKey;
      const scalar = generateKeyPair(curve).privateKey;
      if (i % 3 === 0) scalar[0] = 0;
      if (!encryptsLikeNoble(curve, recipient, scalar)) failures.push(scalar.toString('hex'));
    }
    expect(failures).toEqual([]);
  });

  it('encrypts like noble for the edge scalars, to random recipients and to ±G, ±2G', () => {
    const recipients = [...edgePoints, ...Array.from({ length: 3 }, () => generateKeyPair(curve).publicKey)];
    const failures: string[] = [];
    recipients.forEach((recipient, r) => {
      for (const d of edgeScalars) {
        if (!encryptsLikeNoble(curve, recipient, scalarBytes(d))) failures.push(`${r} ${d.toString(16)}`);
      }
    });
    expect(failures).toEqual([]);
  });

  it('gives noble’s full shared point on the decrypt side for the same edge cases', () => {
    const failures: string[] = [];
    for (const point of [...edgePoints, generateKeyPair(curve).publicKey]) {
      for (const d of edgeScalars) {
        const ours = ecdhSharedPoint({ curve, scalar: scalarBytes(d) }, { curve, uncompressed: Buffer.from(point) });
        if (!ours.equals(noble.getSharedSecret(scalarBytes(d), point, false))) failures.push(d.toString(16));
      }
    }
    expect(failures).toEqual([]);
  });

  it('takes a private scalar of any byte length for its value (leading zeros stripped or added)', () => {
    const { publicKey } = generateKeyPair(curve);
    const scalar = scalarBytes(0x1234n);
    const expected = Buffer.from(noble.getSharedSecret(scalar, publicKey, false));
    for (const bytes of [Buffer.from([0x12, 0x34]), Buffer.concat([Buffer.alloc(1), scalar])]) {
      expect(ecdhSharedPoint({ curve, scalar: bytes }, { curve, uncompressed: publicKey }).equals(expected)).toBe(true);
    }
  });

  it('round-trips to ±G, whose private keys are the chordless scalars 1 and n - 1', () => {
    for (const [point, d] of [
      [g, 1n],
      [g.negate(), n - 1n],
    ] as const) {
      for (let i = 0; i < 3; i++) {
        const pkg = eciesEncrypt({ curve, uncompressed: Buffer.from(point.toRawBytes(false)) }, Buffer.from('edge'));
        expect(eciesDecrypt({ curve, scalar: scalarBytes(d) }, pkg).toString()).toBe('edge');
      }
    }
  });

  it('validates a hand-built key on every call, and takes compressed bytes handed in by hand', () => {
    const bad = generateKeyPair(curve).publicKey;
    bad[64]! ^= 1; // off the curve
    for (let i = 0; i < 3; i++) {
      expect(codeOf(() => eciesEncrypt({ curve, uncompressed: bad }, Buffer.from('x')))).toBe('KEY_NOT_ON_CURVE');
    }
    const good = generateKeyPair(curve).publicKey;
    const other = curve === 'secp256k1' ? 'secp256r1' : 'secp256k1';
    expect(codeOf(() => eciesEncrypt({ curve: other, uncompressed: good }, Buffer.from('x')))).toBe('KEY_NOT_ON_CURVE');
    const compressed = noble.ProjectivePoint.fromHex(good).toRawBytes(true);
    const scalar = generateKeyPair(curve).privateKey;
    const viaCompressed = eciesEncryptForTestVector({ curve, uncompressed: Buffer.from(compressed) }, PLAINTEXT, {
      ephemeralScalar: scalar,
      nonce: Buffer.alloc(NONCE_LENGTH),
    });
    expect(openWith(noble.getSharedSecret(scalar, good, false), viaCompressed)?.equals(PLAINTEXT)).toBe(true);
  });

  it('never lets one message reuse or step from an earlier ephemeral key (R, R ± G)', () => {
    const { publicKey, privateKey } = generateKeyPair(curve);
    const key = { curve, uncompressed: publicKey };
    const seen = new Set<string>();
    const neighbours = new Set<string>();
    for (let i = 0; i < 40; i++) {
      const pkg = eciesEncrypt(key, Buffer.from(`m${i}`));
      const r = pkg.subarray(0, EPHEMERAL_LENGTH).toString('hex');
      expect(seen.has(r) || neighbours.has(r)).toBe(false);
      seen.add(r);
      const point = noble.ProjectivePoint.fromHex(r);
      for (const p of [point.add(g), point.subtract(g)])
        neighbours.add(Buffer.from(p.toRawBytes(false)).toString('hex'));
      expect(eciesDecrypt({ curve, scalar: privateKey }, pkg).toString()).toBe(`m${i}`);
    }
  });
});
