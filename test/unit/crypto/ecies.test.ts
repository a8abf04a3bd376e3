import { createDecipheriv, createECDH, createHmac, ECDH, randomBytes } from 'node:crypto';
import * as eciesjs from 'eciesjs';
import { p256 } from '@noble/curves/p256';
import { secp256k1 } from '@noble/curves/secp256k1';
import { ecdhSharedPoint, eciesDecrypt, eciesEncrypt, ECIES_OVERHEAD, MAX_ITEM_BYTES } from '../../../src/crypto/ecies';
import { CURVES, generateKeyPair, parsePublicKey, type Curve } from '../../../src/crypto/keys';
import { codeOf } from '../../support/crypto-errors';

function keys(curve: Curve) {
  const { publicKey, privateKey } = generateKeyPair(curve);
  return { publicKey: parsePublicKey(publicKey.toString('hex'), curve), privateKey: { curve, scalar: privateKey } };
}

/**
 * An independent decryptor: node:crypto only, none of our code. ECDH gives x of the shared point;
 * both candidate y (via node's point decompression) are tried, and only the right one authenticates.
 */
function independentDecrypt(curve: Curve, privateKey: Buffer, pkg: Buffer): Buffer {
  const nodeCurve = curve === 'secp256r1' ? 'prime256v1' : 'secp256k1';
  const ecdh = createECDH(nodeCurve);
  ecdh.setPrivateKey(privateKey);
  const ephemeral = pkg.subarray(0, 65);
  const x = ecdh.computeSecret(ephemeral);
  for (const prefix of [0x02, 0x03]) {
    const shared = ECDH.convertKey(
      Buffer.concat([Buffer.from([prefix]), x]),
      nodeCurve,
      undefined,
      undefined,
      'uncompressed',
    ) as Buffer;
    const prk = createHmac('sha256', Buffer.alloc(32))
      .update(Buffer.concat([ephemeral, shared]))
      .digest();
    const key = createHmac('sha256', prk)
      .update(Buffer.from([1]))
      .digest();
    const decipher = createDecipheriv('aes-256-gcm', key, pkg.subarray(65, 81));
    decipher.setAuthTag(pkg.subarray(81, 97));
    try {
      return Buffer.concat([decipher.update(pkg.subarray(97)), decipher.final()]);
    } catch {
      continue;
    }
  }
  throw new Error('independent decryptor: no candidate authenticates');
}

describe.each(CURVES)('cak-ecies-v1 on %s', (curve) => {
  const { publicKey, privateKey } = keys(curve);

  it.each([
    ['empty', 0],
    ['1 byte', 1],
    ['1 KB', 1024],
    ['1 MB', 1024 * 1024],
    ['25 MB', MAX_ITEM_BYTES],
  ])('round-trips %s', (_label, size) => {
    const plaintext = randomBytes(size);
    const pkg = eciesEncrypt(publicKey, plaintext);
    expect(pkg.length).toBe(ECIES_OVERHEAD + size);
    expect(pkg.subarray(0, 1)).toEqual(Buffer.from([0x04]));
    expect(eciesDecrypt(privateKey, pkg).equals(plaintext)).toBe(true);
  });

  it('refuses an item above 25 MB', () => {
    expect(codeOf(() => eciesEncrypt(publicKey, Buffer.alloc(MAX_ITEM_BYTES + 1)))).toBe('PLAINTEXT_TOO_LARGE');
  });

  it('uses a fresh ephemeral key and nonce per message', () => {
    const a = eciesEncrypt(publicKey, Buffer.from('same'));
    const b = eciesEncrypt(publicKey, Buffer.from('same'));
    expect(a.subarray(0, 65).equals(b.subarray(0, 65))).toBe(false);
    expect(a.subarray(65, 81).equals(b.subarray(65, 81))).toBe(false);
  });

  it('refuses every single flipped bit of a small package', () => {
    const pkg = eciesEncrypt(publicKey, Buffer.from('CAK'));
    const opened: number[] = [];
    for (let bit = 0; bit < pkg.length * 8; bit++) {
      const tampered = Buffer.from(pkg);
      tampered[bit >> 3]! ^= 1 << (bit & 7);
      if (codeOf(() => eciesDecrypt(privateKey, tampered)) !== 'CIPHERTEXT_INVALID') opened.push(bit);
    }
    expect(opened).toEqual([]);
  });

  it('refuses a truncated package, the wrong key and another curve', () => {
    const pkg = eciesEncrypt(publicKey, Buffer.from('data'));
    expect(codeOf(() => eciesDecrypt(privateKey, pkg.subarray(0, ECIES_OVERHEAD - 1)))).toBe('CIPHERTEXT_TOO_SHORT');
    expect(codeOf(() => eciesDecrypt(keys(curve).privateKey, pkg))).toBe('CIPHERTEXT_INVALID');
    const other = curve === 'secp256r1' ? 'secp256k1' : 'secp256r1';
    expect(codeOf(() => eciesDecrypt({ curve: other, scalar: privateKey.scalar }, pkg))).toBe('CIPHERTEXT_INVALID');
  });

  it('matches the full-point ECDH of @noble/curves on many random keys, both directions', () => {
    const noble = curve === 'secp256r1' ? p256 : secp256k1;
    const mismatches: string[] = [];
    for (let i = 0; i < 150; i++) {
      const a = generateKeyPair(curve);
      const b = generateKeyPair(curve);
      const ours = ecdhSharedPoint({ curve, scalar: a.privateKey }, { curve, uncompressed: b.publicKey });
      const theirs = Buffer.from(noble.getSharedSecret(a.privateKey, b.publicKey, false));
      if (!ours.equals(theirs)) mismatches.push(a.privateKey.toString('hex'));
    }
    expect(mismatches).toEqual([]);
  });

  it('handles the degenerate keys ±G (fallback path)', () => {
    const noble = curve === 'secp256r1' ? p256 : secp256k1;
    const g = noble.ProjectivePoint.BASE;
    for (const point of [g, g.negate()]) {
      const recipient = { curve, uncompressed: Buffer.from(point.toRawBytes(false)) };
      const d = point.equals(g) ? 1n : noble.CURVE.n - 1n;
      const scalar = Buffer.from(d.toString(16).padStart(64, '0'), 'hex');
      const pkg = eciesEncrypt(recipient, Buffer.from('edge'));
      expect(eciesDecrypt({ curve, scalar }, pkg).toString()).toBe('edge');
    }
  });

  it('is opened by an independent node:crypto decryptor on many random keys', () => {
    for (let i = 0; i < 100; i++) {
      const k = keys(curve);
      const plaintext = randomBytes(i);
      expect(
        independentDecrypt(curve, k.privateKey.scalar, eciesEncrypt(k.publicKey, plaintext)).equals(plaintext),
      ).toBe(true);
    }
  });
});

describe('interoperability with eciesjs 0.5 (secp256k1, default config)', () => {
  it('eciesjs opens our packages and we open eciesjs packages, on many random keys', () => {
    for (let i = 0; i < 100; i++) {
      const { publicKey, privateKey } = keys('secp256k1');
      const plaintext = randomBytes(i * 7);
      expect(
        Buffer.from(eciesjs.decrypt(privateKey.scalar, eciesEncrypt(publicKey, plaintext))).equals(plaintext),
      ).toBe(true);
      const theirs = Buffer.from(eciesjs.encrypt(publicKey.uncompressed, plaintext));
      expect(eciesDecrypt(privateKey, theirs).equals(plaintext)).toBe(true);
    }
  });

  it('eciesjs accepts a compressed recipient key given to us and the package still opens', () => {
    const { publicKey, privateKey } = generateKeyPair('secp256k1');
    const compressed = Buffer.from(secp256k1.ProjectivePoint.fromHex(publicKey).toRawBytes(true));
    const pkg = eciesEncrypt(parsePublicKey(compressed.toString('base64'), 'secp256k1'), Buffer.from('hi'));
    expect(Buffer.from(eciesjs.decrypt(privateKey, pkg)).toString()).toBe('hi');
  });
});
