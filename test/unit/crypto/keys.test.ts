import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { p256 } from '@noble/curves/p256';
import { secp256k1 } from '@noble/curves/secp256k1';
import {
  generateKeyPair,
  parsePrivateKey,
  parsePublicKey,
  parsePublicKeyUnknownCurve,
  type Curve,
} from '../../../src/crypto/keys';
import { codeOf } from '../../support/crypto-errors';

const vectors = JSON.parse(readFileSync(resolve(__dirname, '../../vectors/cak-ecies-v1.json'), 'utf8')) as {
  invalidPublicKeys: { curve: Curve; input: string; code: string; comment: string }[];
};

describe('parsePublicKey', () => {
  it.each(vectors.invalidPublicKeys)('refuses $comment on $curve with $code', ({ curve, input, code }) => {
    expect(codeOf(() => parsePublicKey(input, curve))).toBe(code);
  });

  it.each(['secp256r1', 'secp256k1'] as const)(
    'accepts hex, 0x-hex, base64, compressed and uncompressed on %s',
    (curve) => {
      const { publicKey } = generateKeyPair(curve);
      const noble = curve === 'secp256r1' ? p256 : secp256k1;
      const compressed = Buffer.from(noble.ProjectivePoint.fromHex(publicKey).toRawBytes(true));
      for (const input of [
        publicKey.toString('hex'),
        `0x${publicKey.toString('hex').toUpperCase()}`,
        publicKey.toString('base64'),
        publicKey.toString('base64url'),
        compressed.toString('hex'),
        compressed.toString('base64'),
        ` ${publicKey.toString('hex')}\n`,
      ]) {
        expect(parsePublicKey(input, curve).uncompressed.equals(publicKey)).toBe(true);
      }
    },
  );

  it('refuses a non-canonical base64 spelling', () => {
    const { publicKey } = generateKeyPair('secp256r1');
    const b64 = publicKey.toString('base64');
    expect(codeOf(() => parsePublicKey(b64.replace(/=+$/, '') + '===', 'secp256r1'))).toBe('KEY_ENCODING');
  });

  it.each(['secp256r1', 'secp256k1'] as const)('refuses an uncompressed key with x written as x + p on %s', (curve) => {
    const noble = curve === 'secp256r1' ? p256 : secp256k1;
    const hex = (v: bigint) => v.toString(16).padStart(64, '0');
    const onCurve = (x: bigint) => {
      try {
        noble.ProjectivePoint.fromHex('02' + hex(x)).assertValidity();
        return true;
      } catch {
        return false;
      }
    };
    let x = 1n;
    while (!onCurve(x)) x++;
    const { y } = noble.ProjectivePoint.fromHex('02' + hex(x)).toAffine();
    expect(parsePublicKey('04' + hex(x) + hex(y), curve).curve).toBe(curve); // canonical: accepted
    expect(codeOf(() => parsePublicKey('04' + hex(x + noble.CURVE.Fp.ORDER) + hex(y), curve))).toBe(
      'KEY_NON_CANONICAL',
    );
  });

  it('never guesses the curve of a compressed key valid on both curves', () => {
    let ambiguous = 0;
    let onlyK1 = 0;
    for (let i = 0; i < 64; i++) {
      const compressed = Buffer.from(secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), true)).toString('hex');
      const code = codeOf(() => parsePublicKeyUnknownCurve(compressed));
      if (code === 'KEY_CURVE_AMBIGUOUS') {
        ambiguous++;
        expect(parsePublicKey(compressed, 'secp256k1').curve).toBe('secp256k1'); // stating the curve resolves it
        expect(parsePublicKey(compressed, 'secp256r1').curve).toBe('secp256r1');
      } else {
        expect(code).toBe('OK');
        expect(parsePublicKeyUnknownCurve(compressed).curve).toBe('secp256k1');
        onlyK1++;
      }
    }
    expect(ambiguous).toBeGreaterThan(10); // about half
    expect(onlyK1).toBeGreaterThan(10);
  });
});

describe('parsePrivateKey', () => {
  const n = p256.CURVE.n;
  it.each([
    ['', 'KEY_EMPTY'],
    ['00'.repeat(32), 'KEY_PRIVATE_RANGE'],
    [n.toString(16), 'KEY_PRIVATE_RANGE'],
    ['11'.repeat(31), 'KEY_LENGTH'],
    ['not a key!', 'KEY_ENCODING'],
  ])('refuses %j with %s', (input, code) => {
    expect(codeOf(() => parsePrivateKey(input, 'secp256r1'))).toBe(code);
  });

  it('accepts n-1 in hex and base64', () => {
    const max = Buffer.from((n - 1n).toString(16), 'hex');
    expect(parsePrivateKey(max.toString('hex'), 'secp256r1').scalar.equals(max)).toBe(true);
    expect(parsePrivateKey(max.toString('base64'), 'secp256r1').scalar.equals(max)).toBe(true);
  });
});
