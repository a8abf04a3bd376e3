import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { p256 } from '@noble/curves/p256';
import { secp256k1 } from '@noble/curves/secp256k1';
import { eciesEncrypt, eciesInternalsForTests as internals } from '../../../src/crypto/ecies';
import { nativeEc, nativeEcStatus, type NativeEc } from '../../../src/crypto/native-ec';
import { CURVES, generateKeyPair, type Curve } from '../../../src/crypto/keys';

const NOBLE = { secp256r1: p256, secp256k1 } as const;

function scalarBytes(d: bigint, length = 32): Buffer {
  return Buffer.from(d.toString(16).padStart(length * 2, '0'), 'hex');
}

function errorCode(fn: () => unknown): string {
  try {
    fn();
    return 'NO ERROR';
  } catch (err) {
    return (err as { code?: string }).code ?? 'NO CODE';
  }
}

// `npm ci` builds the addon (native/build.js); on this project's machines it must be there, or the
// small-message figure of `npm run bench` silently halves. The fallback is tested with it switched off.
it('the native addon is built, loads and passes its self-test', () => {
  expect(nativeEcStatus()).toMatchObject({ available: true });
});

describe.each(CURVES)('native multiply on %s', (curve: Curve) => {
  const noble = NOBLE[curve];
  const { n, Fp } = noble.CURVE;
  const ec = (): NativeEc => {
    const loaded = nativeEc();
    if (!loaded) throw new Error(`addon unavailable: ${JSON.stringify(nativeEcStatus())}`);
    return loaded;
  };

  it('equals @noble/curves for k·G and k·P over random and boundary scalars', () => {
    const scalars = [
      ...Array.from({ length: 150 }, () => generateKeyPair(curve).privateKey),
      ...[1n, 2n, 3n, 0xffn, 0x100n, (1n << 128n) - 1n, 1n << 255n, n >> 1n, n - 2n, n - 1n].map((d) => scalarBytes(d)),
    ];
    const mismatches: string[] = [];
    for (const k of scalars) {
      const point = generateKeyPair(curve).publicKey;
      if (
        !ec()
          .multiply(curve, k, null)
          .equals(Buffer.from(noble.getPublicKey(k, false)))
      ) {
        mismatches.push(`G ${k.toString('hex')}`);
      }
      if (
        !ec()
          .multiply(curve, k, point)
          .equals(Buffer.from(noble.getSharedSecret(k, point, false)))
      ) {
        mismatches.push(`P ${k.toString('hex')} ${point.toString('hex')}`);
      }
    }
    expect(mismatches).toEqual([]);
  });

  it('takes scalars without their leading zero bytes, as node hands them out', () => {
    const point = generateKeyPair(curve).publicKey;
    const d = 0x1234n;
    expect(ec().multiply(curve, scalarBytes(d, 2), point)).toEqual(ec().multiply(curve, scalarBytes(d), point));
  });

  it('refuses scalars outside [1, n-1] and of the wrong size, with codes', () => {
    const point = generateKeyPair(curve).publicKey;
    const codes = [0n, n, n + 1n, (1n << 256n) - 1n].map((d) =>
      errorCode(() => ec().multiply(curve, scalarBytes(d), point)),
    );
    expect(codes).toEqual(['ERR_CAK_EC_SCALAR', 'ERR_CAK_EC_SCALAR', 'ERR_CAK_EC_SCALAR', 'ERR_CAK_EC_SCALAR']);
    expect(errorCode(() => ec().multiply(curve, Buffer.concat([Buffer.from([1]), Buffer.alloc(32)]), point))).toBe(
      'ERR_CAK_EC_ARGUMENT',
    );
  });

  it('refuses points that are off the curve, non-canonical, hybrid, compressed or the identity, with codes', () => {
    const k = generateKeyPair(curve).privateKey;
    const valid = generateKeyPair(curve).publicKey;
    const offCurve = Buffer.from(valid);
    offCurve[64]! ^= 1;
    const hybrid = Buffer.from(valid);
    hybrid[0] = 0x06 | (valid[64]! & 1); // the hybrid encoding of the very same point
    // (x, y) on the curve with x + p still below 2^256, so x + p is the same point written non-canonically.
    const onCurve = (x: bigint): bigint | undefined => {
      try {
        return Fp.sqrt(Fp.add(Fp.add(Fp.mul(Fp.sqr(x), x), Fp.mul(noble.CURVE.a, x)), noble.CURVE.b));
      } catch {
        return undefined;
      }
    };
    let x = 1n;
    while (onCurve(x) === undefined) x++;
    const nonCanonical = Buffer.concat([Buffer.from([4]), scalarBytes(x + Fp.ORDER), scalarBytes(onCurve(x)!)]);
    const identity = Buffer.concat([Buffer.from([4]), Buffer.alloc(64)]);
    const compressed = Buffer.from(noble.ProjectivePoint.fromHex(valid).toRawBytes(true));
    const codes = {
      offCurve: errorCode(() => ec().multiply(curve, k, offCurve)),
      hybrid: errorCode(() => ec().multiply(curve, k, hybrid)),
      nonCanonical: errorCode(() => ec().multiply(curve, k, nonCanonical)),
      identity: errorCode(() => ec().multiply(curve, k, identity)),
      compressed: errorCode(() => ec().multiply(curve, k, compressed)),
      notABuffer: errorCode(() => ec().multiply(curve, k, [...valid] as unknown as Buffer)),
    };
    expect(codes).toEqual({
      offCurve: 'ERR_CAK_EC_POINT',
      hybrid: 'ERR_CAK_EC_POINT',
      nonCanonical: 'ERR_CAK_EC_POINT',
      identity: 'ERR_CAK_EC_POINT',
      compressed: 'ERR_CAK_EC_ARGUMENT',
      notABuffer: 'ERR_CAK_EC_ARGUMENT',
    });
  });
});

describe('Wycheproof ecdh_secp256r1_ecpoint_test straight into the addon', () => {
  // No TypeScript validation in front: the addon's own checks must refuse every invalid point.
  interface Case {
    tcId: number;
    public: string;
    private: string;
    shared: string;
    result: 'valid' | 'invalid' | 'acceptable';
  }
  const file = resolve(process.cwd(), '../shared/vectors/wycheproof/ecdh_secp256r1_ecpoint_test.json');
  const cases = (JSON.parse(readFileSync(file, 'utf8')) as { testGroups: { tests: Case[] }[] }).testGroups.flatMap(
    (g) => g.tests,
  );
  const run = (c: Case): string => {
    const ec = nativeEc()!;
    const scalar = Buffer.from(c.private.replace(/^(00)+/, '').padStart(64, '0'), 'hex');
    try {
      return ec.multiply('secp256r1', scalar, Buffer.from(c.public, 'hex')).subarray(1, 33).toString('hex');
    } catch (err) {
      return (err as { code?: string }).code ?? 'NO CODE';
    }
  };

  it('gives the expected x for every valid case and refuses every invalid one with a code', () => {
    const valid = cases.filter((c) => c.result === 'valid');
    const invalid = cases.filter((c) => c.result === 'invalid');
    expect(valid.length).toBeGreaterThan(300);
    expect(invalid.length).toBeGreaterThan(20);
    expect(valid.filter((c) => run(c) !== c.shared).map((c) => c.tcId)).toEqual([]);
    expect(invalid.filter((c) => !run(c).startsWith('ERR_CAK_EC_')).map((c) => c.tcId)).toEqual([]);
  });
});

describe('ECIES with the addon', () => {
  afterEach(() => internals.resetCaches());

  it('takes the addon route for the first message on both curves and for every P-256 message', () => {
    const routes = CURVES.map((curve) => {
      const key = { curve, uncompressed: generateKeyPair(curve).publicKey };
      return [1, 2, 3].map(() => internals.keyAgreement(key, generateKeyPair(curve).privateKey).route).join();
    });
    expect(routes).toEqual(['addon,addon,addon', 'addon,table,table']);
  });

  it('draws a fresh ephemeral key for every message', () => {
    const key = { curve: 'secp256r1' as const, uncompressed: generateKeyPair('secp256r1').publicKey };
    const ephemerals = new Set(
      Array.from({ length: 200 }, () => eciesEncrypt(key, Buffer.alloc(1)).subarray(0, 65).toString('hex')),
    );
    expect(ephemerals.size).toBe(200);
  });
});
