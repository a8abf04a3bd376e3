import { randomBytes } from 'node:crypto';
import { p256 } from '@noble/curves/p256';
import { secp256k1 } from '@noble/curves/secp256k1';
import { eciesDecrypt, eciesEncrypt, eciesInternalsForTests as internals } from '../../../src/crypto/ecies';
import { CryptoError, CURVES, generateKeyPair, type Curve } from '../../../src/crypto/keys';

const NOBLE = { secp256r1: p256, secp256k1 } as const;

function scalarBytes(d: bigint): Buffer {
  return Buffer.from(d.toString(16).padStart(64, '0'), 'hex');
}

/** The encrypt-side key agreement for `scalar`, checked against noble's full-point ECDH. */
function agreesWithNoble(curve: Curve, recipient: Buffer, scalar: Buffer): { ok: boolean; route: string } {
  const noble = NOBLE[curve];
  const got = internals.keyAgreement({ curve, uncompressed: recipient }, scalar);
  const shared = Buffer.from(noble.getSharedSecret(scalar, recipient, false));
  const ephemeral = Buffer.from(noble.getPublicKey(scalar, false));
  return { ok: got.shared.equals(shared) && got.ephemeral.equals(ephemeral), route: got.route };
}

afterEach(() => internals.resetCaches());

/** Both ways the first message to a recipient can go: the addon, and x-only ECDH where it is absent. */
const FIRST_ROUTES = ['addon', 'x-only'] as const;

describe.each(CURVES.flatMap((curve) => FIRST_ROUTES.map((first) => [curve, first] as const)))(
  'encrypt fast path on %s, first route %s',
  (curve, first) => {
    const tableCurve = curve === 'secp256k1';
    beforeEach(() => internals.setAddonEnabled(first === 'addon'));

    it('cache misses, hits and tables give the full-point ECDH of noble on many random keys', () => {
      const routes: string[][] = [];
      const mismatches: string[] = [];
      for (let i = 0; i < 40; i++) {
        const recipient = generateKeyPair(curve).publicKey;
        const perRecipient: string[] = [];
        for (let m = 0; m < 3; m++) {
          const scalar = generateKeyPair(curve).privateKey;
          const { ok, route } = agreesWithNoble(curve, recipient, scalar);
          if (!ok) mismatches.push(`${recipient.toString('hex')} ${scalar.toString('hex')}`);
          perRecipient.push(route);
        }
        routes.push(perRecipient);
      }
      expect(mismatches).toEqual([]);
      const expected = tableCurve ? [first, 'table', 'table'] : [first, first, first];
      expect(routes.every((r) => r.join() === expected.join())).toBe(true);
    });

    it('stays correct when both caches evict, and never grows past its bounds', () => {
      internals.setCacheLimits({ recipients: 3, tables: 2 });
      const recipients = Array.from({ length: 6 }, () => generateKeyPair(curve).publicKey);
      const mismatches: number[] = [];
      for (let round = 0; round < 4; round++) {
        recipients.forEach((recipient, i) => {
          for (let m = 0; m < 2; m++) {
            if (!agreesWithNoble(curve, recipient, generateKeyPair(curve).privateKey).ok) mismatches.push(i);
          }
          const sizes = internals.cacheSizes();
          expect(sizes.recipients).toBeLessThanOrEqual(3);
          expect(sizes.tables).toBeLessThanOrEqual(2);
        });
      }
      expect(mismatches).toEqual([]);
    });

    it('handles the degenerate recipients ±G and the extreme scalars 1, 2 and n-1 on every route', () => {
      const noble = NOBLE[curve];
      const g = noble.ProjectivePoint.BASE;
      const recipients = [g, g.negate(), g.double()].map((p) => Buffer.from(p.toRawBytes(false)));
      const scalars = [1n, 2n, noble.CURVE.n - 1n, noble.CURVE.n - 2n].map(scalarBytes);
      const failures: string[] = [];
      for (const recipient of recipients) {
        // Three passes: the first is the first route, later ones the table route on secp256k1.
        for (let pass = 0; pass < 3; pass++) {
          for (const scalar of scalars) {
            if (!agreesWithNoble(curve, recipient, scalar).ok) failures.push(`${pass} ${scalar.toString('hex')}`);
          }
        }
      }
      expect(failures).toEqual([]);
    });

    it('round-trips through eciesEncrypt on both routes, and to ±G', () => {
      const noble = NOBLE[curve];
      const { publicKey, privateKey } = generateKeyPair(curve);
      for (let i = 0; i < 5; i++) {
        const plaintext = randomBytes(100 + i);
        const pkg = eciesEncrypt({ curve, uncompressed: publicKey }, plaintext);
        expect(eciesDecrypt({ curve, scalar: privateKey }, pkg).equals(plaintext)).toBe(true);
      }
      const g = noble.ProjectivePoint.BASE;
      for (const [point, d] of [
        [g, 1n],
        [g.negate(), noble.CURVE.n - 1n],
      ] as const) {
        for (let i = 0; i < 3; i++) {
          const pkg = eciesEncrypt({ curve, uncompressed: Buffer.from(point.toRawBytes(false)) }, Buffer.from('edge'));
          expect(eciesDecrypt({ curve, scalar: scalarBytes(d) }, pkg).toString()).toBe('edge');
        }
      }
    });

    it('decrypts what the other route encrypted, both ways', () => {
      const { publicKey, privateKey } = generateKeyPair(curve);
      const other = first === 'addon' ? 'x-only' : 'addon';
      for (const [encryptWith, decryptWith] of [
        [first, other],
        [other, first],
      ] as const) {
        internals.resetCaches();
        internals.setAddonEnabled(encryptWith === 'addon');
        const pkg = eciesEncrypt({ curve, uncompressed: publicKey }, Buffer.from(`from ${encryptWith}`));
        internals.setAddonEnabled(decryptWith === 'addon');
        expect(eciesDecrypt({ curve, scalar: privateKey }, pkg).toString()).toBe(`from ${encryptWith}`);
      }
    });

    it('validates a hand-built key every time and caches nothing for an invalid one', () => {
      const bad = generateKeyPair(curve).publicKey;
      bad[64]! ^= 1; // off the curve
      for (let i = 0; i < 3; i++) {
        let code = 'OK';
        try {
          eciesEncrypt({ curve, uncompressed: bad }, Buffer.from('x'));
        } catch (err) {
          code = err instanceof CryptoError ? err.code : 'UNEXPECTED';
        }
        expect(code).toBe('KEY_NOT_ON_CURVE');
      }
      expect(internals.cacheSizes()).toEqual({ recipients: 0, tables: 0 });
      // The same bytes on the other curve are a different cache key.
      const good = generateKeyPair(curve).publicKey;
      eciesEncrypt({ curve, uncompressed: good }, Buffer.from('x'));
      const other = curve === 'secp256k1' ? 'secp256r1' : 'secp256k1';
      expect(() => eciesEncrypt({ curve: other, uncompressed: good }, Buffer.from('x'))).toThrow(CryptoError);
    });

    it('accepts compressed bytes handed in by hand and gives the same shared point', () => {
      const noble = NOBLE[curve];
      const { publicKey } = generateKeyPair(curve);
      const compressed = Buffer.from(noble.ProjectivePoint.fromHex(publicKey).toRawBytes(true));
      const scalar = generateKeyPair(curve).privateKey;
      for (let i = 0; i < 3; i++) {
        const viaCompressed = internals.keyAgreement({ curve, uncompressed: compressed }, scalar);
        expect(viaCompressed.shared.equals(Buffer.from(noble.getSharedSecret(scalar, publicKey, false)))).toBe(true);
      }
    });
  },
);

describe.each(CURVES)('x-only route (first message to a recipient, no addon) on %s', (curve) => {
  const noble = NOBLE[curve];
  const { n } = noble.CURVE;

  /**
   * Every scalar goes to a recipient the caches have never seen, with the addon switched off, so
   * it takes the x-only route. Returns whether the result agrees with noble and whether the
   * full-point fallback computed it: the fallback is always right, so without this a broken y
   * recovery would go unnoticed.
   */
  function xOnly(recipient: Buffer, scalar: Buffer): { ok: boolean; fellBack: boolean } {
    internals.resetCaches();
    internals.setAddonEnabled(false);
    const before = internals.fallbacks();
    const { ok, route } = agreesWithNoble(curve, recipient, scalar);
    return { ok: ok && route === 'x-only', fellBack: internals.fallbacks() !== before };
  }

  it('recovers y without the fallback for scalars at byte, carry and range boundaries', () => {
    const scalars = [
      3n,
      0xffn,
      0x100n, // node returns it as 2 bytes
      0x01ffn,
      (1n << 128n) - 1n,
      (1n << 248n) - 1n, // e + 1 gains a byte
      1n << 248n,
      (1n << 255n) - 1n,
      n - 3n,
      n - 2n, // e + 1 = n - 1: x((e + 1)·Q) = x(Q)
      n >> 1n,
      (n >> 1n) + 1n,
    ];
    const failures: string[] = [];
    for (let i = 0; i < 5; i++) {
      const recipient = generateKeyPair(curve).publicKey;
      for (const d of scalars) {
        const { ok, fellBack } = xOnly(recipient, scalarBytes(d));
        if (!ok || fellBack) failures.push(`${i} ${d.toString(16)} ok=${ok} fellBack=${fellBack}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('recovers y without the fallback for random scalars, including a zero top byte', () => {
    const failures: string[] = [];
    for (let i = 0; i < 40; i++) {
      const scalar = generateKeyPair(curve).privateKey;
      if (i % 2 === 0) scalar[0] = 0;
      const { ok, fellBack } = xOnly(generateKeyPair(curve).publicKey, scalar);
      if (!ok || fellBack) failures.push(`${scalar.toString('hex')} ok=${ok} fellBack=${fellBack}`);
    }
    expect(failures).toEqual([]);
  });

  it('falls back exactly on the degenerate inputs: recipients ±G, ±2G (Q + G = O for Q = -G), scalars ±1 on P-256', () => {
    const g = noble.ProjectivePoint.BASE;
    const points = [g, g.negate(), g.double(), g.double().negate()];
    const failures: string[] = [];
    points.forEach((point, r) => {
      const recipient = Buffer.from(point.toRawBytes(false));
      const scalars = [
        ...Array.from({ length: 15 }, () => generateKeyPair(curve).privateKey),
        ...[1n, 2n, n - 2n, n - 1n].map(scalarBytes),
      ];
      for (const scalar of scalars) {
        const d = BigInt('0x' + scalar.toString('hex'));
        // P-256 anchors on Q: degenerate only for e·Q = ±Q (e = ±1; e = n - 1 also has e + 1 = n).
        // secp256k1 anchors on E = e·G: degenerate only for e·Q = ±e·G (Q = ±G; Q + G = O for -G).
        const expected = curve === 'secp256r1' ? d === 1n || d === n - 1n : r < 2;
        const { ok, fellBack } = xOnly(recipient, scalar);
        if (!ok || fellBack !== expected) failures.push(`${r} ${d.toString(16)} ok=${ok} fellBack=${fellBack}`);
      }
    });
    expect(failures).toEqual([]);
  });

  it('never lets one message reuse or step from an earlier ephemeral key (R, R ± G)', () => {
    const { publicKey, privateKey } = generateKeyPair(curve);
    const key = { curve, uncompressed: publicKey };
    const seen = new Set<string>();
    const neighbours = new Set<string>();
    const g = noble.ProjectivePoint.BASE;
    internals.setAddonEnabled(false);
    for (let i = 0; i < 40; i++) {
      if (curve === 'secp256k1') {
        internals.resetCaches(); // keep secp256k1 on the x-only route too
        internals.setAddonEnabled(false);
      }
      const pkg = eciesEncrypt(key, Buffer.from(`m${i}`));
      const r = pkg.subarray(0, 65).toString('hex');
      expect(seen.has(r) || neighbours.has(r)).toBe(false);
      seen.add(r);
      const point = noble.ProjectivePoint.fromHex(r);
      for (const p of [point.add(g), point.subtract(g)])
        neighbours.add(Buffer.from(p.toRawBytes(false)).toString('hex'));
      expect(eciesDecrypt({ curve, scalar: privateKey }, pkg).toString()).toBe(`m${i}`);
    }
  });
});
