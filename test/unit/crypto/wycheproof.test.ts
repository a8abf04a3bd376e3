import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { ecdhSharedPoint } from '../../../src/crypto/ecies';
import { CryptoError, NOBLE, parseSpkiPublicKey, validatePointBytes, type Curve } from '../../../src/crypto/keys';

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

/**
 * The shared x-coordinate (what Wycheproof gives), or the code the case was refused with; `agrees`
 * says whether the full point (y too, which Wycheproof does not give) equals @noble/curves'.
 */
function run(
  curve: Curve,
  encoding: 'ecpoint' | 'spki',
  c: Case,
): { shared?: string; agrees?: boolean; code?: string } {
  try {
    const bytes = Buffer.from(c.public, 'hex');
    const publicKey =
      encoding === 'spki'
        ? parseSpkiPublicKey(bytes, curve)
        : { curve, uncompressed: validatePointBytes(bytes, curve) };
    const point = ecdhSharedPoint({ curve, scalar: scalar(c.private) }, publicKey);
    const theirs = NOBLE[curve].getSharedSecret(scalar(c.private), publicKey.uncompressed, false);
    return { shared: point.subarray(1, 33).toString('hex'), agrees: point.equals(theirs) };
  } catch (err) {
    if (err instanceof CryptoError) return { code: err.code };
    throw err;
  }
}

describe.each(files)('Wycheproof $file', ({ file, curve, encoding }) => {
  const groups = (JSON.parse(readFileSync(resolve(dir, file), 'utf8')) as { testGroups: { tests: Case[] }[] })
    .testGroups;
  const cases = groups.flatMap((g) => g.tests);

  it('has the expected number of cases', () => {
    expect(cases.length).toBeGreaterThan(300);
  });

  it('gives the expected shared secret, and the full point of @noble/curves, for every valid case', () => {
    const failures = cases
      .filter((c) => c.result === 'valid')
      .map((c) => ({ tcId: c.tcId, comment: c.comment, expected: c.shared, got: run(curve, encoding, c) }))
      .filter((r) => r.got.shared !== r.expected || r.got.agrees !== true);
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
});
