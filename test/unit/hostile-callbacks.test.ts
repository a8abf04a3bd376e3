import { createHmac, generateKeyPairSync, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { exportJWK, type JWK } from 'jose';
import { DEV_CALLBACK_SECRET } from '../../src/config';
import { signJwsEs256, signStandardWebhook } from '../../src/platform/callback-signature';
import { startUnitApi, type UnitApi } from '../support/hostile';

/**
 * Hostile callbacks: one valid fixture, one thing broken per case. Each must get its 4xx and code,
 * through the whole app as `startApi` wires it (the real signature verifiers, body parser and
 * callback schema) on an empty database that refuses writes and a Temporal that refuses calls, so a
 * case refused any later than it should be reaches a write and gets a 5xx. What needs the real
 * services (acceptance, duplicates, rotation; nothing recorded) is in test/integration.
 */

const OTHER_SECRET = 'whsec_' + Buffer.from('an-attacker-guessed-secret-value').toString('base64');
const run = randomUUID().slice(0, 8);
const valid = { userId: `user-${run}`, verifierDid: `did:air:verifier-${run}`, schemaId: 'kyc-basic' };
const validBody = JSON.stringify(valid);

interface Attempt {
  body?: string | Buffer;
  headers?: Record<string, string>;
}

/** A correctly signed request for `body`, then `tweak` applied to its headers. */
function signed(
  body: string,
  tweak: (h: Record<string, string>) => void = () => undefined,
  options: { secret?: string; timestamp?: Date; id?: string } = {},
): Attempt {
  const headers = {
    'content-type': 'application/json',
    ...signStandardWebhook(options.secret ?? DEV_CALLBACK_SECRET, body, {
      id: options.id ?? `msg_${randomUUID()}`,
      ...(options.timestamp ? { timestamp: options.timestamp } : {}),
    }),
  };
  tweak(headers);
  return { body, headers };
}

function withPayload(payload: unknown): Attempt {
  return signed(JSON.stringify(payload));
}

const minutes = (n: number) => new Date(Date.now() + n * 60_000);

function signRawBytes(bytes: Buffer): Attempt {
  const id = `msg_${randomUUID()}`;
  const ts = Math.floor(Date.now() / 1000);
  const key = Buffer.from(DEV_CALLBACK_SECRET.slice('whsec_'.length), 'base64');
  const mac = createHmac('sha256', key)
    .update(Buffer.concat([Buffer.from(`${id}.${ts}.`), bytes]))
    .digest('base64');
  return {
    body: bytes,
    headers: {
      'content-type': 'application/json',
      'webhook-id': id,
      'webhook-timestamp': String(ts),
      'webhook-signature': `v1,${mac}`,
    },
  };
}

const cases: [string, () => Attempt, number, string][] = [
  // signatures
  [
    'no signature headers',
    () => ({ body: validBody, headers: { 'content-type': 'application/json' } }),
    401,
    'SIGNATURE_MISSING',
  ],
  ['missing webhook-id', () => signed(validBody, (h) => delete h['webhook-id']), 401, 'SIGNATURE_MISSING'],
  [
    'missing webhook-timestamp',
    () => signed(validBody, (h) => delete h['webhook-timestamp']),
    401,
    'SIGNATURE_MISSING',
  ],
  [
    'missing webhook-signature',
    () => signed(validBody, (h) => delete h['webhook-signature']),
    401,
    'SIGNATURE_MISSING',
  ],
  [
    'signed with the wrong secret',
    () => signed(validBody, undefined, { secret: OTHER_SECRET }),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'forged signature',
    () => signed(validBody, (h) => (h['webhook-signature'] = `v1,${Buffer.alloc(32, 7).toString('base64')}`)),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'signature under an unknown version',
    () => signed(validBody, (h) => (h['webhook-signature'] = h['webhook-signature']!.replace('v1,', 'v2,'))),
    401,
    'SIGNATURE_INVALID',
  ],
  ['empty v1 signature', () => signed(validBody, (h) => (h['webhook-signature'] = 'v1,')), 401, 'SIGNATURE_INVALID'],
  [
    'truncated signature',
    () => signed(validBody, (h) => (h['webhook-signature'] = h['webhook-signature']!.slice(0, -4))),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'webhook-id changed after signing',
    () => signed(validBody, (h) => (h['webhook-id'] = 'msg_other')),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'timestamp changed after signing',
    () => signed(validBody, (h) => (h['webhook-timestamp'] = String(Number(h['webhook-timestamp']) - 1))),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'stale timestamp (validly signed 10 minutes ago)',
    () => signed(validBody, undefined, { timestamp: minutes(-10) }),
    401,
    'SIGNATURE_TIMESTAMP_STALE',
  ],
  [
    'future timestamp (validly signed 10 minutes ahead)',
    () => signed(validBody, undefined, { timestamp: minutes(10) }),
    401,
    'SIGNATURE_TIMESTAMP_FUTURE',
  ],
  [
    'non-numeric timestamp',
    () => signed(validBody, (h) => (h['webhook-timestamp'] = 'yesterday')),
    401,
    'SIGNATURE_MALFORMED',
  ],
  [
    'timestamp with trailing garbage',
    () => signed(validBody, (h) => (h['webhook-timestamp'] = `${h['webhook-timestamp']}abc`)),
    401,
    'SIGNATURE_MALFORMED',
  ],
  ['over-long webhook-id', () => signed(validBody, undefined, { id: 'm'.repeat(300) }), 401, 'SIGNATURE_MALFORMED'],
  [
    'oversize signature header',
    () => signed(validBody, (h) => (h['webhook-signature'] = `${h['webhook-signature']} ${'v1,AAAA '.repeat(700)}`)),
    401,
    'SIGNATURE_MALFORMED',
  ],
  [
    'body altered after signing',
    () => ({ ...signed(validBody), body: validBody.replace(valid.userId, `${valid.userId}x`) }),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'whitespace appended after signing',
    () => ({ ...signed(validBody), body: `${validBody} ` }),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'body swapped for another signed body',
    () => ({ ...signed(JSON.stringify({ ...valid, schemaId: 'proof-of-address' })), body: validBody }),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'invalid UTF-8 bytes (signed as bytes): the signature holds, the body is not JSON text',
    () => signRawBytes(Buffer.from([0x7b, 0xff, 0xfe, 0x7d])),
    400,
    'MALFORMED_JSON',
  ],
  [
    'BOM-prefixed body signed without its BOM',
    () => ({ ...signed(validBody), body: Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(validBody)]) }),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'BOM-prefixed body signed with its BOM: verified, then refused as JSON',
    () => signRawBytes(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(validBody)])),
    400,
    'MALFORMED_JSON',
  ],
  [
    'an unknown Content-Encoding',
    () => signed(validBody, (h) => (h['content-encoding'] = 'x-foo')),
    415,
    'UNSUPPORTED_ENCODING',
  ],
  [
    'gzip on a body that is not gzip',
    () => signed(validBody, (h) => (h['content-encoding'] = 'gzip')),
    415,
    'UNSUPPORTED_ENCODING',
  ],
  // transport
  [
    'wrong content type',
    () => signed(validBody, (h) => (h['content-type'] = 'text/plain')),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'form content type',
    () => signed(validBody, (h) => (h['content-type'] = 'application/x-www-form-urlencoded')),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'json with a foreign charset',
    () => signed(validBody, (h) => (h['content-type'] = 'application/json; charset=utf-16')),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  ['oversize body', () => signed(JSON.stringify({ ...valid, pad: 'x'.repeat(5_000) })), 413, 'BODY_TOO_LARGE'],
  // body, validly signed
  ['malformed JSON', () => signed('{"userId": "u",'), 400, 'MALFORMED_JSON'],
  ['empty body', () => signed(''), 400, 'MALFORMED_JSON'],
  ['JSON array', () => withPayload([valid]), 400, 'INVALID_BODY'],
  ['JSON string', () => withPayload('hello'), 400, 'INVALID_BODY'],
  ['JSON null', () => withPayload(null), 400, 'INVALID_BODY'],
  [
    'missing userId',
    () => withPayload({ verifierDid: valid.verifierDid, schemaId: valid.schemaId }),
    400,
    'MISSING_FIELD',
  ],
  ['missing verifierDid', () => withPayload({ userId: valid.userId, schemaId: valid.schemaId }), 400, 'MISSING_FIELD'],
  [
    'missing schemaId',
    () => withPayload({ userId: valid.userId, verifierDid: valid.verifierDid }),
    400,
    'MISSING_FIELD',
  ],
  ['an extra field', () => withPayload({ ...valid, role: 'admin' }), 400, 'UNKNOWN_FIELD'],
  ['NoSQL operator in userId', () => withPayload({ ...valid, userId: { $ne: null } }), 400, 'UNSAFE_KEY'],
  ['NoSQL operator in schemaId', () => withPayload({ ...valid, schemaId: { $gt: '' } }), 400, 'UNSAFE_KEY'],
  ['$where at the top level', () => withPayload({ ...valid, $where: 'sleep(1000)' }), 400, 'UNSAFE_KEY'],
  [
    '__proto__ key',
    () =>
      signed(
        `{"userId":"${valid.userId}","verifierDid":"${valid.verifierDid}","schemaId":"kyc-basic","__proto__":{"admin":true}}`,
      ),
    400,
    'UNSAFE_KEY',
  ],
  ['constructor key', () => withPayload({ ...valid, constructor: { prototype: {} } }), 400, 'UNSAFE_KEY'],
  ['dotted key', () => withPayload({ ...valid, 'user.id': 'x' }), 400, 'UNSAFE_KEY'],
  ['nested object as userId', () => withPayload({ ...valid, userId: { a: { b: 1 } } }), 400, 'JSON_TOO_DEEP'],
  ['numeric userId', () => withPayload({ ...valid, userId: 12345 }), 400, 'INVALID_FIELD'],
  ['empty userId', () => withPayload({ ...valid, userId: '' }), 400, 'INVALID_FIELD'],
  ['over-long userId', () => withPayload({ ...valid, userId: 'u'.repeat(129) }), 400, 'INVALID_FIELD'],
  ['NUL in userId', () => withPayload({ ...valid, userId: 'user\u0000x' }), 400, 'INVALID_FIELD'],
  ['newline in userId', () => withPayload({ ...valid, userId: 'user\nx' }), 400, 'INVALID_FIELD'],
  ['homoglyph in userId', () => withPayload({ ...valid, userId: 'us\u0435r' }), 400, 'INVALID_FIELD'],
  ['space in schemaId', () => withPayload({ ...valid, schemaId: 'kyc basic' }), 400, 'INVALID_FIELD'],
  [
    'verifierDid that is not a DID',
    () => withPayload({ ...valid, verifierDid: 'https://evil.example' }),
    400,
    'INVALID_FIELD',
  ],
  [
    'over-long verifierDid',
    () => withPayload({ ...valid, verifierDid: `did:air:${'v'.repeat(300)}` }),
    400,
    'INVALID_FIELD',
  ],
  [
    'control character in verifierDid',
    () => withPayload({ ...valid, verifierDid: 'did:air:ab\u0007c' }),
    400,
    'INVALID_FIELD',
  ],
];

describe('hostile callbacks (standard-webhooks)', () => {
  let api: UnitApi;

  beforeAll(async () => {
    api = await startUnitApi();
  });

  afterAll(async () => {
    await api?.close();
  });

  it.each(cases)('%s', async (_name, make, status, code) => {
    const { body, headers } = make();
    const res = await fetch(`${api.url}/v1/cak/callbacks`, {
      method: 'POST',
      headers,
      ...(body !== undefined ? { body } : {}),
    });
    expect({ status: res.status, code: ((await res.json()) as { error?: { code?: string } }).error?.code }).toEqual({
      status,
      code,
    });
  });

  it(`has at least 40 cases (${cases.length}), and none reached a write or Temporal`, () => {
    expect(cases.length).toBeGreaterThanOrEqual(40);
    expect(api.writes).toEqual([]);
  });
});

describe('hostile callbacks (jws-es256)', () => {
  let api: UnitApi;
  let jwksServer: Server;
  const keys: { kid: string; privateKey: ReturnType<typeof generateKeyPairSync>['privateKey']; jwk: JWK }[] = [];
  let serveJwks = true;

  const newKey = async (kid: string) => {
    const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    const jwk = { ...(await exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    return { kid, privateKey, jwk };
  };

  const post = async (body: string, headers: Record<string, string>) => {
    const res = await fetch(`${api.url}/v1/cak/callbacks`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body,
    });
    return { status: res.status, code: ((await res.json()) as { error?: { code?: string } }).error?.code };
  };

  beforeAll(async () => {
    keys.push(await newKey('platform-1'));
    jwksServer = createServer((req, res) => {
      if (!serveJwks) {
        res.writeHead(500).end();
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: keys.map((k) => k.jwk) }));
    });
    await new Promise<void>((r) => jwksServer.listen(0, '127.0.0.1', () => r()));
    api = await startUnitApi({
      CALLBACK_SIGNATURE_SCHEME: 'jws-es256',
      PLATFORM_JWKS_URL: `http://127.0.0.1:${(jwksServer.address() as AddressInfo).port}/jwks.json`,
      PLATFORM_JWKS_COOLDOWN_SECONDS: '0', // an unknown kid refetches at once: no waiting in the test
    });
  });

  afterAll(async () => {
    await api?.close();
    await new Promise((r) => jwksServer?.close(r));
  });

  it.each([
    ['no signature header', async () => post(validBody, {}), 401, 'SIGNATURE_MISSING'],
    [
      'not a detached JWS',
      async () => post(validBody, { 'x-jws-signature': 'abc.def.ghi' }),
      401,
      'SIGNATURE_MALFORMED',
    ],
    [
      'body altered after signing',
      async () =>
        post(
          validBody.replace('kyc-basic', 'proof-of-address'),
          await signJwsEs256(keys[0]!.privateKey, 'platform-1', validBody),
        ),
      401,
      'SIGNATURE_INVALID',
    ],
    [
      'signed by a key the platform does not publish',
      async () => {
        const rogue = await newKey('platform-1');
        return post(validBody, await signJwsEs256(rogue.privateKey, 'platform-1', validBody));
      },
      401,
      'SIGNATURE_INVALID',
    ],
    [
      'unknown kid',
      async () => {
        const rogue = await newKey('rogue');
        return post(validBody, await signJwsEs256(rogue.privateKey, 'rogue', validBody));
      },
      401,
      'SIGNATURE_KEY_UNKNOWN',
    ],
    [
      'stale iat',
      async () =>
        post(
          validBody,
          await signJwsEs256(keys[0]!.privateKey, 'platform-1', validBody, Math.floor(Date.now() / 1000) - 900),
        ),
      401,
      'SIGNATURE_TIMESTAMP_STALE',
    ],
    [
      'future iat',
      async () =>
        post(
          validBody,
          await signJwsEs256(keys[0]!.privateKey, 'platform-1', validBody, Math.floor(Date.now() / 1000) + 900),
        ),
      401,
      'SIGNATURE_TIMESTAMP_FUTURE',
    ],
    [
      'alg none',
      async () => {
        const header = Buffer.from(
          JSON.stringify({ alg: 'none', kid: 'platform-1', iat: Math.floor(Date.now() / 1000) }),
        ).toString('base64url');
        return post(validBody, { 'x-jws-signature': `${header}..AAAA` });
      },
      401,
      'SIGNATURE_INVALID',
    ],
  ] as [string, () => Promise<{ status: number; code?: string }>, number, string][])(
    '%s',
    async (_name, attempt, status, code) => {
      expect(await attempt()).toEqual({ status, code });
    },
  );

  it('answers 503 (the platform retries) while the platform JWKS cannot be fetched for a new kid', async () => {
    serveJwks = false;
    try {
      const next = await newKey('platform-2');
      expect(await post(validBody, await signJwsEs256(next.privateKey, 'platform-2', validBody))).toEqual({
        status: 503,
        code: 'SIGNATURE_KEYS_UNAVAILABLE',
      });
    } finally {
      serveJwks = true;
    }
  });

  it('none reached a write or Temporal', () => {
    expect(api.writes).toEqual([]);
  });
});
