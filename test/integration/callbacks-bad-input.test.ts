import { generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK } from 'jose';
import type { ApiHandle } from '../../src/api/server';
import { DEV_CALLBACK_SECRET, type Config } from '../../src/config';
import { signJwsEs256, signStandardWebhook } from '../../src/platform/callback-signature';
import { ACKED } from './callbacks-harness';
import { callbackConfig, openDb, startCallbackApi } from '../support/system';

jest.setTimeout(120_000);

/**
 * Callbacks that look hostile but are not, against the real API, database and Temporal. The tables
 * of hostile callbacks (each with its 4xx and code) are unit tests: test/unit/hostile-callbacks.test.ts;
 * that none of them records anything: test/integration/hostile-requests.test.ts.
 */

const OTHER_SECRET = 'whsec_' + Buffer.from('an-attacker-guessed-secret-value').toString('base64');
const run = randomUUID().slice(0, 8);
const valid = { userId: `user-${run}`, verifierDid: `did:air:verifier-${run}`, schemaId: 'kyc-basic' };
const validBody = JSON.stringify(valid);

function signed(body: string, options: { secret?: string; id?: string } = {}) {
  return {
    body,
    headers: {
      'content-type': 'application/json',
      ...signStandardWebhook(options.secret ?? DEV_CALLBACK_SECRET, body, { id: options.id ?? `msg_${randomUUID()}` }),
    },
  };
}

async function dropDatabase(config: Config): Promise<void> {
  const database = await openDb(config);
  await database.db.dropDatabase().catch(() => undefined);
  await database.close();
}

describe('callbacks that are not attacks (standard-webhooks)', () => {
  let config: Config;
  let api: ApiHandle;

  beforeAll(async () => {
    config = await callbackConfig();
    api = await startCallbackApi(config);
  });

  afterAll(async () => {
    await api?.close();
    await dropDatabase(config);
  });

  it('a retried delivery with a fresh, valid signature is a duplicate, not an attack: 2XX', async () => {
    const id = `msg_${randomUUID()}`;
    const post = async () => {
      const { body, headers } = signed(validBody, { id });
      return fetch(`${api.url}/v1/cak/callbacks`, { method: 'POST', headers, body });
    };
    const first = await post();
    const retry = await post();
    expect(ACKED).toContain(first.status);
    expect(ACKED).toContain(retry.status);
    expect(await retry.json()).toMatchObject({ duplicate: true });
  });

  it('accepts a signature from any configured secret (rotation)', async () => {
    const rotated = await callbackConfig({ CALLBACK_SECRETS: `${OTHER_SECRET} ${DEV_CALLBACK_SECRET}` });
    const rotatedApi = await startCallbackApi(rotated);
    try {
      for (const [i, secret] of [OTHER_SECRET, DEV_CALLBACK_SECRET].entries()) {
        const { body, headers } = signed(JSON.stringify({ ...valid, userId: `${valid.userId}-rotated-${i}` }), {
          secret,
        });
        expect(ACKED).toContain(
          (await fetch(`${rotatedApi.url}/v1/cak/callbacks`, { method: 'POST', headers, body })).status,
        );
      }
    } finally {
      await rotatedApi.close();
      await dropDatabase(rotated);
    }
  });
});

describe('callbacks that are not attacks (jws-es256)', () => {
  let config: Config;
  let api: ApiHandle;
  let jwksServer: Server;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });

  beforeAll(async () => {
    const jwk = { ...(await exportJWK(publicKey)), kid: 'platform-1', alg: 'ES256', use: 'sig' };
    jwksServer = createServer((_req, res) =>
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
    );
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', () => r()));
    config = await callbackConfig({
      CALLBACK_SIGNATURE_SCHEME: 'jws-es256',
      PLATFORM_JWKS_URL: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`,
    });
    api = await startCallbackApi(config);
  });

  afterAll(async () => {
    await api?.close();
    await new Promise((r) => jwksServer?.close(r));
    await dropDatabase(config);
  });

  it('accepts a valid detached JWS: 200, the run started', async () => {
    const res = await fetch(`${api.url}/v1/cak/callbacks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(await signJwsEs256(privateKey, 'platform-1', validBody)) },
      body: validBody,
    });
    expect({ status: res.status, code: ((await res.json()) as { error?: { code?: string } }).error?.code }).toEqual({
      status: 200,
      code: undefined,
    });
  });
});
