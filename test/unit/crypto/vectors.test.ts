import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import * as eciesjs from 'eciesjs';
import { eciesDecrypt } from '../../../src/crypto/ecies';
import { CryptoError, type Curve } from '../../../src/crypto/keys';
import { curveVectors } from '../../../scripts/gen-crypto-vectors';

interface CurveVectors {
  curve: Curve;
  recipientPrivateKey: string;
  encrypt: { plaintext: string; package: string }[];
  tampered: { comment: string; package: string; code: string }[];
}
const committed = JSON.parse(readFileSync(resolve(__dirname, '../../vectors/cak-ecies-v1.json'), 'utf8')) as {
  curves: CurveVectors[];
};

describe.each(committed.curves.map((c) => [c.curve, c] as const))('committed vectors, %s', (curve, vectors) => {
  const privateKey = { curve, scalar: Buffer.from(vectors.recipientPrivateKey, 'hex') };

  it('are reproduced byte for byte by the generator', () => {
    expect(JSON.parse(JSON.stringify(curveVectors(curve)))).toEqual(vectors);
  });

  it('decrypt to their plaintexts', () => {
    for (const v of vectors.encrypt) {
      expect(eciesDecrypt(privateKey, Buffer.from(v.package, 'hex')).toString('hex')).toBe(v.plaintext);
    }
  });

  it('refuse every tampered package with its code', () => {
    for (const t of vectors.tampered) {
      let code = 'OK';
      try {
        eciesDecrypt(privateKey, Buffer.from(t.package, 'hex'));
      } catch (err) {
        code = err instanceof CryptoError ? err.code : 'UNEXPECTED';
      }
      expect({ comment: t.comment, code }).toEqual({ comment: t.comment, code: t.code });
      expect(t.code).not.toBe('OK');
    }
  });

  if (curve === 'secp256k1') {
    it('agree with eciesjs: valid ones open, tampered ones throw', () => {
      for (const v of vectors.encrypt) {
        expect(Buffer.from(eciesjs.decrypt(privateKey.scalar, Buffer.from(v.package, 'hex'))).toString('hex')).toBe(
          v.plaintext,
        );
      }
      for (const t of vectors.tampered) {
        expect(() => eciesjs.decrypt(privateKey.scalar, Buffer.from(t.package, 'hex'))).toThrow();
      }
    });
  }
});
