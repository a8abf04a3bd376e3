import { createRemoteJWKSet, decodeProtectedHeader, jwtVerify } from 'jose';
import { hashApiKey } from '../../src/api/auth';
import { DEV_API_KEY } from '../../src/config';
import { issuanceWorkflowId } from '../../src/domain/ids';
import { uniqueId } from '../support/temporal';
import { API_KEY_HEADER, markedPng } from './issuance-harness';
import { startSystem, type System } from '../support/system';

describe('issuer API access: client credentials, Partner JWTs, JWKS, rate limits', () => {
  let system: System;
  const otherKey = 'another-client-key';

  beforeAll(async () => {
    system = await startSystem({
      env: {
        API_KEYS: `dev:${hashApiKey(DEV_API_KEY)},other:${hashApiKey(otherKey)}`,
        PUBLIC_RATE_LIMIT_PER_MINUTE: '5',
      },
      worker: false,
    });
  });
  afterAll(async () => {
    await system?.close();
  });

  it('mints a Partner JWT for an authenticated client that verifies against our JWKS, as the platform checks it', async () => {
    const res = await fetch(`${system.apiUrl}/v1/partner-tokens`, {
      method: 'POST',
      headers: { ...API_KEY_HEADER, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'issue' }),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get('cache-control')).toBe('no-store');
    const { token, kid } = (await res.json()) as { token: string; kid: string };
    expect(decodeProtectedHeader(token)).toEqual({ alg: 'ES256', kid, typ: 'JWT' });
    const jwks = createRemoteJWKSet(new URL(`${system.apiUrl}/.well-known/jwks.json`));
    const { payload } = await jwtVerify(token, jwks, { typ: 'JWT' });
    expect(payload).toMatchObject({ partnerId: system.config.PARTNER_ID, scope: 'issue' });
    expect(payload.exp! - payload.iat!).toBe(300);
  });

  it('serves the JWKS with public caching headers and no private parts', async () => {
    const res = await fetch(`${system.apiUrl}/.well-known/jwks.json`);
    expect(res.headers.get('cache-control')).toBe('public, max-age=3600');
    const body = (await res.json()) as { keys: Record<string, unknown>[] };
    expect(body.keys.length).toBeGreaterThanOrEqual(1);
    for (const key of body.keys) expect(key.d).toBeUndefined();
  });

  it('refuses token requests without credentials or with an unknown scope', async () => {
    const anonymous = await fetch(`${system.apiUrl}/v1/partner-tokens`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'issue' }),
    });
    expect(anonymous.status).toBe(401);
    const badScope = await fetch(`${system.apiUrl}/v1/partner-tokens`, {
      method: 'POST',
      headers: { ...API_KEY_HEADER, 'content-type': 'application/json' },
      body: JSON.stringify({ scope: 'admin' }),
    });
    expect(badScope.status).toBe(400);
  });

  it("hides one client's issuances from another", async () => {
    const res = await fetch(`${system.apiUrl}/v1/issuances`, {
      method: 'POST',
      headers: { ...API_KEY_HEADER, 'content-type': 'application/json' },
      body: JSON.stringify({
        userId: uniqueId('auth'),
        issuerDid: 'did:air:id:cak-dev-issuer',
        credentialId: 'prog-kyc-basic',
        schemaId: 'kyc-basic',
        cakPublicKey: system.emulator.controls.cakPublicKey(
          { userId: 'u', issuerDid: 'did:air:id:cak-dev-issuer', schemaId: 'kyc-basic' },
          'secp256r1',
        ),
        credentialSubject: {},
        files: [{ kind: 'id-front', contentType: 'image/png', data: markedPng('AUTH', 512).toString('base64') }],
      }),
    });
    expect(res.status).toBe(202);
    const { statusUrl, issuanceId } = (await res.json()) as { statusUrl: string; issuanceId: string };
    expect((await fetch(`${system.apiUrl}${statusUrl}`, { headers: API_KEY_HEADER })).status).toBe(200);
    const other = await fetch(`${system.apiUrl}${statusUrl}`, { headers: { 'x-api-key': otherKey } });
    expect(other.status).toBe(404);
    // no worker polls this system's task queue: end the run rather than leave it open
    await system.client.workflow
      .getHandle(issuanceWorkflowId(system.config.ID_HMAC_SECRET, issuanceId))
      .terminate('test done');
  });

  it('rate-limits the public JWKS route', async () => {
    const statuses: number[] = [];
    for (let i = 0; i < 8; i += 1) statuses.push((await fetch(`${system.apiUrl}/.well-known/jwks.json`)).status);
    expect(statuses).toContain(429);
  });

  it('sends the security headers', async () => {
    const res = await fetch(`${system.apiUrl}/.well-known/jwks.json`);
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(res.headers.get('strict-transport-security')).toBeTruthy();
  });
});
