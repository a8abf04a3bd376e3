import { createServer, type Server } from 'node:http';
import { loadConfig } from '../../src/config';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/server';
import { partnerTokenMinter } from '../../src/platform/partner-jwt';
import { devPartnerJwk, loadPartnerKeys } from '../../src/platform/partner-keys';

/**
 * How the emulator answers an issue call when it cannot get our Partner JWKS: 503 (the token is not
 * known to be bad, so the partner may retry), and 401 only for a token that does not verify against a
 * JWKS it did fetch.
 */
describe('emulator Partner JWT verification against our JWKS', () => {
  const config = loadConfig({ LOG_LEVEL: 'silent' });
  const ours = loadPartnerKeys({ partnerId: config.PARTNER_ID });
  const token = async () =>
    (await partnerTokenMinter(ours, config.PARTNER_ID).mint({ scope: 'issue', userId: 'user-1' })).token;
  const publicJwk = (label: string, kid?: string) => {
    const { d: _private, ...jwk } = devPartnerJwk(config.PARTNER_ID, label);
    return { ...jwk, ...(kid ? { kid } : {}), alg: 'ES256', use: 'sig' };
  };

  /** What our JWKS URL answers. */
  let jwksAnswer: { status: number; body: string } = { status: 200, body: JSON.stringify(ours.jwks) };
  let jwksServer: Server;
  let jwksPort: number;
  let emulator: EmulatorHandle;

  beforeAll(async () => {
    jwksServer = createServer((_req, res) => res.writeHead(jwksAnswer.status).end(jwksAnswer.body));
    await new Promise<void>((resolve) => jwksServer.listen(0, '127.0.0.1', resolve));
    jwksPort = (jwksServer.address() as { port: number }).port;
  });
  afterAll(async () => {
    await new Promise((resolve) => jwksServer.close(resolve));
  });
  // a fresh emulator each time: none has cached a JWKS
  beforeEach(async () => {
    emulator = await startEmulator(config, { port: 0, jwksUrl: `http://127.0.0.1:${jwksPort}/.well-known/jwks.json` });
  });
  afterEach(async () => {
    await emulator.close();
  });

  async function issue(): Promise<{ status: number; code?: string }> {
    const res = await fetch(`${emulator.url}/v1/credentials/issue`, {
      method: 'POST',
      headers: { 'x-partner-auth': await token(), 'content-type': 'application/json' },
      body: JSON.stringify({
        issuerDid: 'did:air:id:cak-dev-issuer',
        credentialId: 'prog-kyc-basic',
        credentialSubject: { kycLevel: 1 },
      }),
    });
    const { code } = (await res.json()) as { code?: string };
    return { status: res.status, ...(code ? { code } : {}) };
  }

  it('verifies a token signed by a key of our JWKS', async () => {
    jwksAnswer = { status: 200, body: JSON.stringify(ours.jwks) };
    expect((await issue()).status).toBe(200);
  });

  it('answers 503 when our JWKS is unreachable: nothing listens', async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as { port: number }).port;
    await new Promise((resolve) => closed.close(resolve));
    await emulator.close();
    emulator = await startEmulator(config, { port: 0, jwksUrl: `http://127.0.0.1:${port}/.well-known/jwks.json` });
    expect(await issue()).toEqual({ status: 503, code: 'PARTNER_JWKS_UNAVAILABLE' });
  });

  it.each([
    ['answers a 502 (a proxy while our API restarts)', { status: 502, body: '<html>bad gateway</html>' }],
    ['answers 200 with something that is not JSON', { status: 200, body: '<html>maintenance</html>' }],
    ['answers 200 with JSON that is not a key set', { status: 200, body: '{"status":"starting"}' }],
  ])('answers 503 when our JWKS URL %s', async (_case, answer) => {
    jwksAnswer = answer;
    expect(await issue()).toEqual({ status: 503, code: 'PARTNER_JWKS_UNAVAILABLE' });
  });

  it.each([
    ['has no key with the token kid', [publicJwk('other')]],
    ['has another key under the token kid', [publicJwk('other', ours.active.kid)]],
  ])('answers 401 when the JWKS it fetched %s', async (_case, keys) => {
    jwksAnswer = { status: 200, body: JSON.stringify({ keys }) };
    expect(await issue()).toEqual({ status: 401, code: 'PARTNER_ACCESS_TOKEN_INVALID' });
  });

  it('recovers once our JWKS is back: the failed fetch is not cached', async () => {
    jwksAnswer = { status: 503, body: '' };
    expect((await issue()).status).toBe(503);
    jwksAnswer = { status: 200, body: JSON.stringify(ours.jwks) };
    expect((await issue()).status).toBe(200);
  });
});
