import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ecdhSharedPoint, eciesInternalsForTests as internals } from '../../../src/crypto/ecies';
import { CryptoError, parseSpkiPublicKey, validatePointBytes, type Curve } from '../../../src/crypto/keys';

/**
 * Wycheproof ECDH vectors (../shared/vectors/wycheproof). Choices for 'acceptable' cases, also in
 * docs/crypto.md: a compressed public key is accepted (we accept SEC1 compressed keys); BER/odd
 * ASN.1 (InvalidAsn) and explicit curve parameters (UnnamedCurve) are refused: only strict DER
 * SubjectPublicKeyInfo with a named-curve OID is accepted.
 */

interface Case {
  tcId: number;
  comment: string;
  flags: string[];
  public: string;
  private: string;
  shared: string;
  result: 'valid' | 'invalid' | 'acceptable';
}

const dir = resolve(process.cwd(), '../shared/vectors/wycheproof');
const files: { file: string; curve: Curve; encoding: 'ecpoint' | 'spki' }[] = [
  { file: 'ecdh_secp256r1_ecpoint_test.json', curve: 'secp256r1', encoding: 'ecpoint' },
  { file: 'ecdh_secp256r1_test.json', curve: 'secp256r1', encoding: 'spki' },
  { file: 'ecdh_secp256k1_test.json', curve: 'secp256k1', encoding: 'spki' },
];

function scalar(hex: string): Buffer {
  const trimmed = hex.replace(/^(00)+/, '');
  return Buffer.from(trimmed.padStart(64, '0'), 'hex');
}

/** The shared x-coordinate (what Wycheproof gives), and the full point for comparing routes. */
function run(curve: Curve, encoding: 'ecpoint' | 'spki', c: Case): { shared?: string; point?: string; code?: string } {
  try {
    const bytes = Buffer.from(c.public, 'hex');
    const publicKey =
      encoding === 'spki'
        ? parseSpkiPublicKey(bytes, curve)
        : { curve, uncompressed: validatePointBytes(bytes, curve) };
    const point = ecdhSharedPoint({ curve, scalar: scalar(c.private) }, publicKey);
    return { shared: point.subarray(1, 33).toString('hex'), point: point.toString('hex') };
  } catch (err) {
    if (err instanceof CryptoError) return { code: err.code };
    throw err;
  }
}

// Every file runs through both ways the full shared point is computed: the native addon, and
// node:crypto's x-only ECDH with y recovered (used where the addon is not built).
const routes = [
  { route: 'addon', addon: true },
  { route: 'x-only', addon: false },
] as const;

afterAll(() => internals.resetCaches());

describe.each(files.flatMap((f) => routes.map((r) => ({ ...f, ...r }))))(
  'Wycheproof $file, $route route',
  ({ file, curve, encoding, addon }) => {
    beforeEach(() => {
      internals.resetCaches();
      internals.setAddonEnabled(addon);
    });

    const groups = (JSON.parse(readFileSync(resolve(dir, file), 'utf8')) as { testGroups: { tests: Case[] }[] })
      .testGroups;
    const cases = groups.flatMap((g) => g.tests);

    it('has the expected number of cases', () => {
      expect(cases.length).toBeGreaterThan(300);
    });

    it('gives the expected shared secret for every valid case', () => {
      const failures = cases
        .filter((c) => c.result === 'valid')
        .map((c) => ({ tcId: c.tcId, comment: c.comment, expected: c.shared, got: run(curve, encoding, c) }))
        .filter((r) => r.got.shared !== r.expected);
      expect(failures).toEqual([]);
    });

    it('refuses every invalid case with a code', () => {
      const opened = cases
        .filter((c) => c.result === 'invalid')
        .map((c) => ({ tcId: c.tcId, comment: c.comment, got: run(curve, encoding, c) }))
        .filter((r) => r.got.code === undefined);
      expect(opened).toEqual([]);
    });

    it('handles acceptable cases as documented: compressed keys accepted, everything else refused', () => {
      const wrong = cases
        .filter((c) => c.result === 'acceptable')
        .map((c) => ({ tcId: c.tcId, flags: c.flags, got: run(curve, encoding, c), expected: c.shared }))
        .filter((r) => (r.flags.includes('CompressedPublic') ? r.got.shared !== r.expected : r.got.code === undefined));
      expect(wrong).toEqual([]);
    });
  },
);

describe.each(files)('Wycheproof $file: the two routes agree', ({ file, curve, encoding }) => {
  it('gives the same full shared point (both coordinates) on the addon and x-only routes', () => {
    const groups = (JSON.parse(readFileSync(resolve(dir, file), 'utf8')) as { testGroups: { tests: Case[] }[] })
      .testGroups;
    const valid = groups.flatMap((g) => g.tests).filter((c) => c.result === 'valid');
    const differing = valid.filter((c) => {
      internals.resetCaches();
      const viaAddon = run(curve, encoding, c).point;
      internals.setAddonEnabled(false);
      const viaXOnly = run(curve, encoding, c).point;
      return viaAddon === undefined || viaAddon !== viaXOnly;
    });
    expect(valid.length).toBeGreaterThan(0);
    expect(differing.map((c) => c.tcId)).toEqual([]);
  });
});
