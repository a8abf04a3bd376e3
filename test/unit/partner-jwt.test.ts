import { createLocalJWKSet, jwtVerify, decodeProtectedHeader } from 'jose';
import { generateKeyPairSync } from 'node:crypto';
import { devPartnerJwk, loadPartnerKeys } from '../../src/platform/partner-keys';
import { partnerTokenMinter } from '../../src/platform/partner-jwt';
import { deriveCakKeyPair } from '../../src/emulator/cak-keys';

describe('Partner JWTs', () => {
  it('mints ES256 tokens with kid, typ JWT, partnerId, scope and a 5 minute exp', async () => {
    const keys = loadPartnerKeys({ partnerId: 'p1' });
    const { token } = await partnerTokenMinter(keys, 'p1').mint({ scope: 'issue', userId: 'u1' });
    const header = decodeProtectedHeader(token);
    expect(header).toMatchObject({ alg: 'ES256', typ: 'JWT', kid: 'p1-dev-1' });
    const { payload } = await jwtVerify(token, createLocalJWKSet(keys.jwks as never), { typ: 'JWT' });
    expect(payload).toMatchObject({ partnerId: 'p1', scope: 'issue', sub: 'u1' });
    expect(payload.exp! - payload.iat!).toBe(300);
  });

  it('publishes two keys during rotation and signs RS256 with the active one', async () => {
    const rsa = generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ format: 'jwk' });
    const spec = JSON.stringify([devPartnerJwk('p1', 'old'), { ...rsa, kid: 'p1-new' }]);
    const keys = loadPartnerKeys({ partnerId: 'p1', signingKeys: spec, activeKid: 'p1-new' });
    expect(keys.jwks.keys.map((k) => k.kid)).toEqual(['p1-old', 'p1-new']);
    expect(JSON.stringify(keys.jwks)).not.toMatch(/"d"|"p"|"q"/);
    const { token } = await partnerTokenMinter(keys, 'p1').mint({ scope: 'verify' });
    expect(decodeProtectedHeader(token)).toMatchObject({ alg: 'RS256', kid: 'p1-new' });
    await expect(jwtVerify(token, createLocalJWKSet(keys.jwks as never))).resolves.toBeDefined();
  });

  it('refuses an unknown active kid and malformed key sets', () => {
    expect(() => loadPartnerKeys({ partnerId: 'p1', activeKid: 'nope' })).toThrow(/PARTNER_ACTIVE_KID/);
    expect(() => loadPartnerKeys({ partnerId: 'p1', signingKeys: '{' })).toThrow(/JSON/);
    expect(() => loadPartnerKeys({ partnerId: 'p1', signingKeys: '[{"kty":"oct","k":"x"}]' })).toThrow();
  });
});

describe('emulator CAK key derivation', () => {
  const triple = { userId: 'u', issuerDid: 'did:air:i', schemaId: 's' };
  it('is deterministic per (triple, curve) and differs otherwise', () => {
    const a = deriveCakKeyPair('secret-secret-secret', triple, 'secp256r1');
    expect(deriveCakKeyPair('secret-secret-secret', triple, 'secp256r1')).toEqual(a);
    expect(deriveCakKeyPair('secret-secret-secret', triple, 'secp256k1').publicKey).not.toBe(a.publicKey);
    expect(deriveCakKeyPair('secret-secret-secret', { ...triple, userId: 'v' }, 'secp256r1').publicKey).not.toBe(
      a.publicKey,
    );
    expect(a.publicKey).toMatch(/^04[0-9a-f]{128}$/);
  });
});
