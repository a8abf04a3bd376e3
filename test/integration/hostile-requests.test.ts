import { generateKeyPair, SignJWT } from 'jose';
import type { ApiHandle } from '../../src/api/server';
import type { Config } from '../../src/config';
import { signPackageToken } from '../../src/domain/authorization-url';
import {
  HOSTILE_ENV,
  admin,
  adminPost,
  apiKey,
  callbackPayload,
  codecPost,
  issuance,
  json,
  minutes,
  postCallback,
  postIssuance,
  send,
  signedCallback,
  userId,
  type Case,
  type Sent,
} from '../support/hostile';
import { connectClient } from './callbacks-harness';
import { callbackConfig, openDb, startCallbackApi } from '../support/system';

jest.setTimeout(180_000);

/**
 * Hostile requests against the real API, database and Temporal. The tables of refusals (every
 * route, every group) are unit tests: test/unit/hostile-requests.test.ts and
 * test/unit/hostile-callbacks.test.ts. Here: the refusals whose answer comes from a database
 * lookup, and, for a representative set of hostile requests, that nothing was recorded, staged,
 * started or audited (aggregated Verifier denial counts aside).
 */

describe('hostile requests against the real services', () => {
  let config: Config;
  let api: ApiHandle;
  let verifierJwt: () => Promise<string>;

  /** Refusals answered from a database lookup: well-formed, but nothing of the kind exists. */
  const lookups: Case[] = [
    [
      'identifiers',
      'an unknown issuance id',
      () => ({ path: `/v1/issuances/iss_${'A'.repeat(24)}`, headers: apiKey }),
      404,
      'ISSUANCE_NOT_FOUND',
    ],
    [
      'identifiers',
      'an admin revoke of an unknown authorization',
      () => adminPost('/v1/admin/authorizations/revoke', callbackPayload),
      404,
      'AUTHORIZATION_NOT_FOUND',
    ],
    [
      'identifiers',
      'an admin reinstate of an unknown authorization',
      () => adminPost('/v1/admin/authorizations/reinstate', callbackPayload),
      404,
      'AUTHORIZATION_NOT_FOUND',
    ],
    [
      'identifiers',
      'an admin re-drive of an unknown authorization',
      () => adminPost('/v1/admin/authorizations/redrive', callbackPayload),
      404,
      'AUTHORIZATION_NOT_FOUND',
    ],
    [
      'signatures',
      'a genuine URL for no authorization',
      () => ({
        path: `/v1/verifier/packages/${signPackageToken(config.SIGNED_URL_SECRET, { pur: 'package', aid: `auth_${'A'.repeat(24)}`, rid: 'rec_x', pid: 'p', exp: Math.floor(Date.now() / 1000) + 60 })}`,
      }),
      403,
      'AUTHORIZATION_REQUIRED',
    ],
  ];

  /** One or two of each refusing stage, for the check that nothing was recorded. */
  const representative: [name: string, make: () => Sent | Promise<Sent>][] = [
    ['issuance: malformed JSON', () => postIssuance('{"userId": ')],
    ['issuance: text/plain', () => postIssuance(issuance(), { 'content-type': 'text/plain' })],
    ['issuance: multipart without a boundary', () => postIssuance('--b--', { 'content-type': 'multipart/form-data' })],
    ['issuance: $where in credentialSubject', () => postIssuance(issuance({ credentialSubject: { $where: '1' } }))],
    ['issuance: an unknown field', () => postIssuance(issuance({ role: 'admin' }))],
    ['issuance: an unregistered program', () => postIssuance(issuance({ credentialId: 'prog-nobody' }))],
    ['issuance: an issuer DID not served here', () => postIssuance(issuance({ issuerDid: 'did:air:id:elsewhere' }))],
    ['issuance: a point not on P-256', () => postIssuance(issuance({ cakPublicKey: `04${'11'.repeat(64)}` }))],
    ['issuance: a malformed Idempotency-Key', () => postIssuance(issuance(), { 'idempotency-key': 'a b' })],
    ['issuance: a wrong API key', () => postIssuance(issuance(), { 'x-api-key': 'not-the-key' })],
    ['callback: no signature', () => postCallback(JSON.stringify(callbackPayload), json)],
    [
      'callback: another secret',
      () =>
        postCallback(
          JSON.stringify(callbackPayload),
          signedCallback(JSON.stringify(callbackPayload), {
            secret: `whsec_${Buffer.from('an-attacker-guessed-secret!!').toString('base64')}`,
          }),
        ),
    ],
    [
      'callback: a replay signed 10 minutes ago',
      () =>
        postCallback(
          JSON.stringify(callbackPayload),
          signedCallback(JSON.stringify(callbackPayload), { timestamp: minutes(-10) }),
        ),
    ],
    [
      'callback: a signed BOM (verified, then not JSON)',
      () =>
        postCallback(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(callbackPayload))])),
    ],
    ['callback: an unknown field', () => postCallback(JSON.stringify({ ...callbackPayload, role: 'admin' }))],
    ['callback: a NoSQL operator', () => postCallback(JSON.stringify({ ...callbackPayload, userId: { $ne: null } }))],
    ['callback: 5 KB', () => postCallback(JSON.stringify({ ...callbackPayload, pad: 'x'.repeat(5_000) }))],
    [
      'callback: a webhook-id changed after signing',
      () => {
        const body = JSON.stringify(callbackPayload);
        return postCallback(body, { ...signedCallback(body), 'webhook-id': 'msg_other' });
      },
    ],
    [
      'admin: a malformed DID',
      () => adminPost('/v1/admin/authorizations/revoke', { ...callbackPayload, verifierDid: 'x' }),
    ],
    [
      'admin: a Verifier JWK carrying a private part',
      () => ({
        method: 'PUT',
        path: '/v1/admin/verifiers/keys',
        headers: { ...json, ...admin },
        body: JSON.stringify({
          verifierDid: callbackPayload.verifierDid,
          jwk: { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43), d: 'A'.repeat(43), kid: 'k' },
        }),
      }),
    ],
    [
      'verifier: a JWT from an unregistered DID',
      async () => ({
        path: `/v1/verifier/data?userId=${userId}&schemaId=kyc-basic`,
        headers: { authorization: `Bearer ${await verifierJwt()}` },
      }),
    ],
    [
      'verifier: a forged package URL',
      () => ({
        path: `/v1/verifier/packages/${signPackageToken('an-attacker-secret-of-at-least-32-chars!', { pur: 'package', aid: 'auth_x', rid: 'rec_x', pid: 'p', exp: Math.floor(Date.now() / 1000) + 60 })}`,
      }),
    ],
    ['codec: malformed JSON', () => codecPost('/codec/decode', '{nope')],
    [
      'partner token: an unknown scope',
      () => ({
        method: 'POST',
        path: '/v1/partner-tokens',
        headers: { ...json, ...apiKey },
        body: '{"scope":"admin"}',
      }),
    ],
  ];

  beforeAll(async () => {
    config = await callbackConfig(HOSTILE_ENV);
    api = await startCallbackApi(config);
    const { privateKey } = await generateKeyPair('ES256');
    verifierJwt = () =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256' })
        .setIssuer(callbackPayload.verifierDid)
        .setSubject(callbackPayload.verifierDid)
        .setAudience('cak-issuer')
        .setIssuedAt()
        .setExpirationTime(Math.floor(Date.now() / 1000) + 60)
        .sign(privateKey);
  });
  afterAll(async () => {
    await api?.close();
    const database = await openDb(config);
    await database.db.dropDatabase().catch(() => undefined);
    await database.close();
  });

  it.each(lookups)('%s: %s', async (_group, _name, make, status, code) => {
    expect(await send(api.url, await make())).toEqual({ status, code });
  });

  it('a representative set of hostile requests is refused with a 4xx, and nothing was recorded, staged, started or audited (aggregated denial counts aside)', async () => {
    const answers: [string, number][] = [];
    for (const [name, make] of representative) answers.push([name, (await send(api.url, await make())).status]);
    expect(answers.filter(([, status]) => status < 400 || status >= 500)).toEqual([]);

    const database = await openDb(config);
    try {
      const counts: Record<string, number> = {};
      for (const collection of [
        'issuances',
        'staging',
        'stagingBlobs.files',
        'records',
        'packages',
        'authorizations',
        'verifiers',
        'callback_inbox',
        'callback_deliveries',
      ])
        counts[collection] = await database.db.collection(collection).countDocuments({});
      expect(counts).toEqual(Object.fromEntries(Object.keys(counts).map((c) => [c, 0])));
      for (const collection of ['audit_pending', 'audit_events']) {
        const types = await database.db.collection<{ type: string }>(collection).distinct('type');
        expect([collection, types.filter((t) => t !== 'verifier.denied')]).toEqual([collection, []]);
      }
    } finally {
      await database.close();
    }
    const client = await connectClient(config);
    try {
      const { count } = await client.workflow.count(`TaskQueue = '${config.TEMPORAL_TASK_QUEUE}'`);
      expect(count).toBe(0);
    } finally {
      await client.connection.close();
    }
  });
});

describe('rate and abuse: budgets per caller after authentication', () => {
  let api: ApiHandle;
  let config: Config;
  beforeAll(async () => {
    config = await callbackConfig({
      API_RATE_LIMIT_PER_MINUTE: '5',
      AUTH_FAILURE_LIMIT_PER_MINUTE: '5',
      ADMIN_RATE_LIMIT_PER_MINUTE: '5',
    });
    api = await startCallbackApi(config);
  });
  afterAll(async () => {
    await api?.close();
  });

  it('throttles a client over its budget, bad keys from an address, and an admin over its budget, each with its code', async () => {
    const status = (path: string, headers: Record<string, string>) => send(api.url, { path, headers });
    const unknown = `/v1/issuances/iss_${'A'.repeat(24)}`;
    const client = await Promise.all(Array.from({ length: 6 }, () => status(unknown, apiKey)));
    expect(client.map((a) => a.code)).toEqual([...Array(5).fill('ISSUANCE_NOT_FOUND'), 'RATE_LIMITED']);
    const bad = await Promise.all(Array.from({ length: 6 }, () => status(unknown, { 'x-api-key': 'bad-key' })));
    expect(bad.map((a) => a.code)).toEqual([...Array(5).fill('UNAUTHENTICATED'), 'AUTH_RATE_LIMITED']);
    const admins = await Promise.all(Array.from({ length: 6 }, () => status('/v1/admin/authorizations', admin)));
    expect(admins.map((a) => a.status)).toEqual([...Array(5).fill(200), 429]);
    expect(admins[5]!.code).toBe('RATE_LIMITED');
  });
});
