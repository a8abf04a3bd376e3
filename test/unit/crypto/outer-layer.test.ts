import { randomBytes } from 'node:crypto';
import { parseKeyring } from '../../../src/crypto/keyring';
import { openOuter, outerKeyId, rewrapOuter, sealOuter } from '../../../src/crypto/outer-layer';
import { codeOf } from '../../support/crypto-errors';

const key = () => randomBytes(32).toString('base64');
const oldRing = parseKeyring(`kek-1:${key()}`);
const rotated = parseKeyring(`kek-2:${key()},kek-1:${oldRing.keys.get('kek-1')!.toString('base64')}`);
const context = { recordId: 'rec-1', itemId: 'id-image' };

describe('parseKeyring', () => {
  it('makes the first entry active and keeps the others for unwrapping', () => {
    expect(rotated.activeKeyId).toBe('kek-2');
    expect([...rotated.keys.keys()]).toEqual(['kek-2', 'kek-1']);
  });

  it.each([
    ['', 'empty'],
    ['kek-1', 'no key'],
    [`kek 1:${key()}`, 'bad kid'],
    ['kek-1:c2hvcnQ=', 'short key'],
    [`kek-1:${key()},kek-1:${key()}`, 'duplicate kid'],
    [`kek-1:${key().replace('=', '')}`, 'unpadded'],
  ])('refuses %j (%s) with KEYRING_INVALID', (spec) => {
    expect(codeOf(() => parseKeyring(spec))).toBe('KEYRING_INVALID');
  });
});

describe('outer layer (cak-outer-v1)', () => {
  const inner = randomBytes(3000);

  it('round-trips and names its key', () => {
    const sealed = sealOuter(oldRing, inner, context);
    expect(sealed[0]).toBe(1);
    expect(outerKeyId(sealed)).toBe('kek-1');
    expect(openOuter(oldRing, sealed, context).equals(inner)).toBe(true);
  });

  it('refuses a package moved to another record or item', () => {
    const sealed = sealOuter(oldRing, inner, context);
    expect(codeOf(() => openOuter(oldRing, sealed, { ...context, recordId: 'rec-2' }))).toBe('OUTER_CONTEXT_MISMATCH');
    expect(codeOf(() => openOuter(oldRing, sealed, { ...context, itemId: 'face' }))).toBe('OUTER_CONTEXT_MISMATCH');
    expect(codeOf(() => rewrapOuter(rotated, sealed, { ...context, recordId: 'rec-2' }))).toBe(
      'OUTER_CONTEXT_MISMATCH',
    );
  });

  it('refuses tampering anywhere, an unknown key and garbage', () => {
    const sealed = sealOuter(oldRing, randomBytes(40), context);
    for (let i = 0; i < sealed.length; i++) {
      const tampered = Buffer.from(sealed);
      tampered[i]! ^= 0x80;
      expect(codeOf(() => openOuter(oldRing, tampered, context))).toMatch(/^OUTER_/);
    }
    expect(codeOf(() => openOuter(parseKeyring(`other:${key()}`), sealed, context))).toBe('OUTER_KEY_UNKNOWN');
    expect(codeOf(() => openOuter(oldRing, Buffer.from([1, 2, 3]), context))).toBe('OUTER_FORMAT');
  });

  it('rewrap moves every package to the active key without touching the body', () => {
    const packages = Array.from({ length: 20 }, (_, i) => {
      const body = randomBytes(i * 50);
      const ctx = { recordId: `rec-${i}`, itemId: 'text' };
      return { body, ctx, sealed: sealOuter(oldRing, body, ctx) };
    });
    for (const p of packages) {
      const rewrapped = rewrapOuter(rotated, p.sealed, p.ctx);
      expect(outerKeyId(rewrapped)).toBe('kek-2');
      const bodyLength = 28 + p.body.length;
      expect(rewrapped.subarray(-bodyLength).equals(p.sealed.subarray(-bodyLength))).toBe(true);
      expect(openOuter(rotated, rewrapped, p.ctx).equals(p.body)).toBe(true);
      // once kek-1 is dropped, only rewrapped packages still open
      const newOnly = parseKeyring(`kek-2:${rotated.keys.get('kek-2')!.toString('base64')}`);
      expect(openOuter(newOnly, rewrapped, p.ctx).equals(p.body)).toBe(true);
      expect(codeOf(() => openOuter(newOnly, p.sealed, p.ctx))).toBe('OUTER_KEY_UNKNOWN');
    }
  });

  it('new writes use the active key', () => {
    expect(outerKeyId(sealOuter(rotated, inner, context))).toBe('kek-2');
  });
});
