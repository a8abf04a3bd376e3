import { createHash, randomUUID } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { connect, type AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import type { Express } from 'express';
import { exportJWK, generateKeyPair, SignJWT, type JWK, type KeyLike } from 'jose';
import request from 'supertest';
import { Webhook } from 'standardwebhooks';
import { createApp, type AppDeps, type IssuanceApiDeps } from '../../src/api/app';
import { answerClientErrors, framingError } from '../../src/api/errors';
import { deniedAccessLog, VERIFIER_TOKEN_AUDIENCE, type DeniedAccessLog } from '../../src/api/verifier';
import type { AuthorizationApiDeps } from '../../src/api/authorization-wiring';
import { DEV_CALLBACK_SECRET, loadConfig, ConfigError } from '../../src/config';
import { parseKeyring } from '../../src/crypto/keyring';
import type { Logger } from '../../src/observability/logger';
import { createMetrics } from '../../src/observability/metrics';
import {
  JwsEs256Verifier,
  signJwsEs256,
  signStandardWebhook,
  StandardWebhooksVerifier,
} from '../../src/platform/callback-signature';

/**
 * The API's edges, without Temporal or a database (every dependency a stub): each malformed,
 * oversized or abusive request gets its 4xx and code through the one error mapper, the callback
 * signature covers the exact bytes, and rate limits count per authenticated caller while failed
 * authentication is throttled per (trusted) address without locking out a good credential.
 */

const silentLog = { info: () => undefined, warn: () => undefined, error: () => undefined } as unknown as Logger;
const sha = (s: string) => createHash('sha256').update(s).digest();
const BOM = Buffer.from([0xef, 0xbb, 0xbf]);

const KEY_A = 'client-a-key-0123456789';
const KEY_B = 'client-b-key-0123456789';
const ADMIN_A = 'admin-a-token-0123456789';
const ADMIN_B = 'admin-b-token-0123456789';
const CODEC_A = 'codec-a-token-0123456789';
const CODEC_B = 'codec-b-token-0123456789';
const LIMIT = 3;
const DEFAULT_TEST_LIMITS = {
  verifierPerMinute: LIMIT,
  adminPerMinute: LIMIT,
  codecPerMinute: LIMIT,
  authFailuresPerMinute: LIMIT,
};

const payload = { userId: 'user-1', verifierDid: 'did:air:id:verifier-1', schemaId: 'kyc-basic' };
const body = JSON.stringify(payload);

interface Appended {
  key: string;
  type: string;
  data: Record<string, unknown>;
}

function stubs(verifierKeys: Map<string, JWK & { kid: string }>, appended: Appended[]) {
  const audit = {
    append: (key: string, type: string, data: Record<string, unknown>) => {
      appended.push({ key, type, data });
      return Promise.resolve({ _id: key });
    },
  };
  const authorization = {
    callbacks: {
      verifier: new StandardWebhooksVerifier([DEV_CALLBACK_SECRET], 300),
      starter: { start: () => Promise.resolve({ workflowId: 'authorization-x', duplicate: false }) },
      inbox: {},
      deliveries: { record: () => undefined, first: () => undefined },
      idSecret: 'x'.repeat(32),
      accessWindowMs: () => 60_000,
      log: silentLog,
    },
    verifier: {
      authorizations: { accessFacts: () => Promise.resolve(undefined) },
      audit,
      verifiers: {
        get: (did: string) => {
          const key = verifierKeys.get(did);
          return Promise.resolve(key ? { _id: did, keys: [key] } : null);
        },
      },
      packages: {},
      idSecret: 'x'.repeat(32),
      signedUrlSecret: 'y'.repeat(32),
      signedUrlTtlSeconds: 60,
    },
    admin: {
      admins: {
        entries: [
          { clientId: 'alice', hash: sha(ADMIN_A) },
          { clientId: 'bob', hash: sha(ADMIN_B) },
        ],
      },
      authorizations: {},
      audit,
      verifiers: {},
      idSecret: 'x'.repeat(32),
      redrive: () => Promise.resolve(false),
    },
  } as unknown as Pick<AuthorizationApiDeps, 'callbacks' | 'verifier' | 'admin'>;
  const issuance = {
    clients: {
      entries: [
        { clientId: 'client-a', hash: sha(KEY_A) },
        { clientId: 'client-b', hash: sha(KEY_B) },
      ],
    },
    partnerKeys: { jwks: { keys: [] } },
    partnerTokens: {},
    intake: { get: () => Promise.resolve(null), accept: () => Promise.reject(new Error('not in these tests')) },
    records: { versionFor: () => Promise.resolve(null) },
    limits: { maxFileBytes: 1024, maxTotalBytes: 1024, maxFiles: 1 },
    rateLimits: { apiPerMinute: LIMIT, publicPerMinute: 100 },
  } as unknown as IssuanceApiDeps;
  return { authorization, issuance };
}

function app(
  overrides: Partial<AppDeps> = {},
  appended: Appended[] = [],
  keys = new Map<string, JWK & { kid: string }>(),
) {
  const { authorization, issuance } = stubs(keys, appended);
  return createApp({
    log: silentLog,
    probes: { temporal: () => Promise.resolve(), database: () => Promise.resolve() },
    issuance,
    authorization,
    codec: {
      keyring: parseKeyring(loadConfig({}).CAK_CODEC_KEYS),
      bearerTokens: [CODEC_A, CODEC_B],
      allowedOrigins: [],
    },
    limits: DEFAULT_TEST_LIMITS,
    ...overrides,
  });
}

/** Listens on a free loopback port; for raw-socket requests that supertest cannot make. */
async function listening(express: Express): Promise<{ port: number; close: () => Promise<void> }> {
  const server: Server = createServer(express);
  answerClientErrors(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** Sends `head` and `bodyPart`, then half-closes: a body cut short of its Content-Length. Resolves with the raw answer. */
function truncated(port: number, head: string, bodyPart: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.write(head + bodyPart);
      socket.end();
    });
    let answer = '';
    socket.on('data', (chunk: Buffer) => (answer += chunk.toString('latin1')));
    socket.on('close', () => resolve(answer));
    socket.on('error', reject);
  });
}

const codeOf = (res: { body: unknown }) => (res.body as { error?: { code?: string } }).error?.code;

/** POSTs exactly `bytes` (supertest would serialize a Buffer under a JSON content type). */
async function postBytes(
  express: Express,
  path: string,
  headers: Record<string, string>,
  bytes: Buffer,
): Promise<{ status: number; body: unknown }> {
  const server = await listening(express);
  try {
    const res = await fetch(`http://127.0.0.1:${server.port}${path}`, { method: 'POST', headers, body: bytes });
    return { status: res.status, body: await res.json() };
  } finally {
    await server.close();
  }
}

function signedCallback(bytes: string | Buffer, signedOver: string | Buffer = bytes) {
  return {
    'content-type': 'application/json',
    ...signStandardWebhook(DEV_CALLBACK_SECRET, signedOver, { id: `msg_${randomUUID()}` }),
  };
}

describe('framing: every unreadable body is a 4xx with a code, through the one error mapper', () => {
  let api: Express;
  beforeEach(() => (api = app()));

  describe('POST /v1/cak/callbacks', () => {
    it.each([
      ['an unknown Content-Encoding', { 'content-encoding': 'x-foo' }, Buffer.from(body), 415, 'UNSUPPORTED_ENCODING'],
      [
        'gzip on a body that is not gzip',
        { 'content-encoding': 'gzip' },
        Buffer.from(body),
        415,
        'UNSUPPORTED_ENCODING',
      ],
      [
        'gzip, even valid gzip (the signature is over the wire bytes)',
        { 'content-encoding': 'gzip' },
        gzipSync(body),
        415,
        'UNSUPPORTED_ENCODING',
      ],
    ])('%s: %d %s', async (_name, extra, bytes, status, code) => {
      const res = await postBytes(api, '/v1/cak/callbacks', { ...signedCallback(body), ...extra }, bytes);
      expect([res.status, codeOf(res)]).toEqual([status, code]);
    });

    it('malformed JSON (validly signed): 400 MALFORMED_JSON', async () => {
      const bad = '{"userId": ';
      const res = await request(api).post('/v1/cak/callbacks').set(signedCallback(bad)).send(bad);
      expect([res.status, codeOf(res)]).toEqual([400, 'MALFORMED_JSON']);
    });

    it('too large: 413 BODY_TOO_LARGE naming the limit', async () => {
      const big = JSON.stringify({ ...payload, pad: 'x'.repeat(5000) });
      const res = await request(api).post('/v1/cak/callbacks').set(signedCallback(big)).send(big);
      expect([res.status, codeOf(res)]).toEqual([413, 'BODY_TOO_LARGE']);
      expect((res.body as { error: { message: string } }).error.message).toContain('4096 bytes');
    });

    it('a charset other than UTF-8: 415', async () => {
      const res = await request(api)
        .post('/v1/cak/callbacks')
        .set({ ...signedCallback(body), 'content-type': 'application/json; charset=latin1' })
        .send(body);
      expect(res.status).toBe(415);
    });

    it('a body cut short of its Content-Length: 400 REQUEST_ABORTED', async () => {
      const server = await listening(api);
      try {
        const headers = signedCallback(body);
        const head =
          `POST /v1/cak/callbacks HTTP/1.1\r\nHost: x\r\nContent-Length: ${body.length}\r\n` +
          Object.entries(headers)
            .map(([k, v]) => `${k}: ${v}\r\n`)
            .join('') +
          '\r\n';
        const answer = await truncated(server.port, head, body.slice(0, 10));
        expect(answer).toMatch(/^HTTP\/1\.1 400 /);
        expect(answer).toContain('"code":"REQUEST_ABORTED"');
      } finally {
        await server.close();
      }
    });
  });

  describe('POST /v1/issuances', () => {
    const post = () => request(api).post('/v1/issuances').set('x-api-key', KEY_A);

    it('an unknown Content-Encoding: 415 UNSUPPORTED_ENCODING', async () => {
      const res = await post().set({ 'content-type': 'application/json', 'content-encoding': 'x-foo' }).send(body);
      expect([res.status, codeOf(res)]).toEqual([415, 'UNSUPPORTED_ENCODING']);
    });

    it.each(['gzip', 'deflate', 'br'])(
      '%s on a body that is not so encoded: 400 MALFORMED_ENCODING',
      async (encoding) => {
        const res = await post().set({ 'content-type': 'application/json', 'content-encoding': encoding }).send(body);
        expect([res.status, codeOf(res)]).toEqual([400, 'MALFORMED_ENCODING']);
      },
    );

    it('valid gzip is read as usual (the body then reaches validation)', async () => {
      const res = await postBytes(
        api,
        '/v1/issuances',
        { 'x-api-key': KEY_A, 'content-type': 'application/json', 'content-encoding': 'gzip' },
        gzipSync('{"userId": '),
      );
      expect([res.status, codeOf(res)]).toEqual([400, 'MALFORMED_JSON']);
    });

    it('charset=latin1: 415 UNSUPPORTED_CHARSET', async () => {
      const res = await post().set('content-type', 'application/json; charset=latin1').send(body);
      expect([res.status, codeOf(res)]).toEqual([415, 'UNSUPPORTED_CHARSET']);
    });

    it('malformed JSON: 400 MALFORMED_JSON', async () => {
      const res = await post().set('content-type', 'application/json').send('{"userId": ');
      expect([res.status, codeOf(res)]).toEqual([400, 'MALFORMED_JSON']);
    });

    it('too large: 413 BODY_TOO_LARGE naming the limit', async () => {
      const res = await post()
        .set('content-type', 'application/json')
        .send(JSON.stringify({ pad: 'x'.repeat(300 * 1024) }));
      expect([res.status, codeOf(res)]).toEqual([413, 'BODY_TOO_LARGE']);
      expect((res.body as { error: { message: string } }).error.message).toMatch(/\d+ bytes/);
    });

    it('a body cut short of its Content-Length: 400 REQUEST_ABORTED', async () => {
      const server = await listening(api);
      try {
        const head =
          `POST /v1/issuances HTTP/1.1\r\nHost: x\r\nx-api-key: ${KEY_A}\r\n` +
          `content-type: application/json\r\nContent-Length: ${body.length}\r\n\r\n`;
        const answer = await truncated(server.port, head, body.slice(0, 10));
        expect(answer).toMatch(/^HTTP\/1\.1 400 /);
        expect(answer).toContain('"code":"REQUEST_ABORTED"');
      } finally {
        await server.close();
      }
    });
  });

  it.each([
    ['encoding.unsupported', 415, 'UNSUPPORTED_ENCODING'],
    ['charset.unsupported', 415, 'UNSUPPORTED_CHARSET'],
    ['entity.parse.failed', 400, 'MALFORMED_JSON'],
    ['entity.too.large', 413, 'BODY_TOO_LARGE'],
    ['request.aborted', 400, 'REQUEST_ABORTED'],
    ['request.size.invalid', 400, 'BODY_LENGTH_MISMATCH'],
    ['parameters.too.many', 413, 'TOO_MANY_PARAMETERS'],
  ])('maps the body-parser error type %s to %d %s', (type, status, code) => {
    expect(framingError(Object.assign(new Error('x'), { type, status: 400, limit: 10 }))).toMatchObject({
      status,
      code,
    });
  });
});

describe('the callback signature covers the exact bytes received, BOM included', () => {
  const api = app();
  const withBom = Buffer.concat([BOM, Buffer.from(body)]);

  it('matches the standardwebhooks library on ordinary bodies', () => {
    const at = new Date();
    const ours = signStandardWebhook(DEV_CALLBACK_SECRET, body, { id: 'msg_1', timestamp: at });
    expect(ours['webhook-signature']).toBe(new Webhook(DEV_CALLBACK_SECRET).sign('msg_1', at, body));
  });

  it('standard-webhooks: a BOM-prefixed body signed without its BOM is SIGNATURE_INVALID', async () => {
    const res = await postBytes(api, '/v1/cak/callbacks', signedCallback(withBom, body), withBom);
    expect([res.status, codeOf(res)]).toEqual([401, 'SIGNATURE_INVALID']);
  });

  it('standard-webhooks: signed over the exact bytes, BOM included, it verifies and is a 400 MALFORMED_JSON', async () => {
    const res = await postBytes(api, '/v1/cak/callbacks', signedCallback(withBom), withBom);
    expect([res.status, codeOf(res)]).toEqual([400, 'MALFORMED_JSON']);
    expect((res.body as { error: { message: string } }).error.message).toContain('byte order mark');
  });

  describe('jws-es256', () => {
    let jwks: Server;
    let privateKey: KeyLike;
    let jwsApi: Express;

    beforeAll(async () => {
      const pair = await generateKeyPair('ES256', { extractable: true });
      privateKey = pair.privateKey;
      const jwk = { ...(await exportJWK(pair.publicKey)), kid: 'platform-1', alg: 'ES256', use: 'sig' };
      jwks = createServer((_req, res) =>
        res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify({ keys: [jwk] })),
      );
      await new Promise<void>((resolve) => jwks.listen(0, '127.0.0.1', resolve));
      const url = `http://127.0.0.1:${(jwks.address() as AddressInfo).port}/jwks.json`;
      const { authorization, issuance } = stubs(new Map(), []);
      jwsApi = createApp({
        log: silentLog,
        probes: { temporal: () => Promise.resolve(), database: () => Promise.resolve() },
        issuance,
        authorization: {
          ...authorization,
          callbacks: { ...authorization.callbacks, verifier: new JwsEs256Verifier(url, 300) },
        },
      });
    });
    afterAll(() => new Promise<void>((resolve) => jwks.close(() => resolve())));

    it('a BOM-prefixed body signed without its BOM is SIGNATURE_INVALID', async () => {
      const headers = await signJwsEs256(privateKey, 'platform-1', body);
      const res = await postBytes(
        jwsApi,
        '/v1/cak/callbacks',
        { 'content-type': 'application/json', ...headers },
        withBom,
      );
      expect([res.status, codeOf(res)]).toEqual([401, 'SIGNATURE_INVALID']);
    });

    it('signed over the exact bytes, BOM included, it verifies and is a 400 MALFORMED_JSON', async () => {
      const headers = await signJwsEs256(privateKey, 'platform-1', withBom);
      const res = await postBytes(
        jwsApi,
        '/v1/cak/callbacks',
        { 'content-type': 'application/json', ...headers },
        withBom,
      );
      expect([res.status, codeOf(res)]).toEqual([400, 'MALFORMED_JSON']);
    });
  });
});

describe('rate limits: per authenticated caller, and failed authentication per trusted address', () => {
  it('a client that spends its budget does not touch another client', async () => {
    const api = app();
    const get = (key: string) => request(api).get('/v1/issuances/iss_unknown').set('x-api-key', key);
    for (let i = 0; i < LIMIT; i++) expect((await get(KEY_A)).status).toBe(404);
    const over = await get(KEY_A);
    expect([over.status, codeOf(over)]).toEqual([429, 'RATE_LIMITED']);
    expect(over.headers['retry-after']).toBeDefined();
    expect((await get(KEY_B)).status).toBe(404);
  });

  it('bad keys from one address are throttled, and never lock out a good key from it', async () => {
    const api = app();
    const get = (key: string) => request(api).get('/v1/issuances/iss_unknown').set('x-api-key', key);
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 2; i++) statuses.push((await get(`wrong-key-${i}`)).status);
    expect(statuses).toEqual([401, 401, 401, 429, 429]);
    expect(codeOf(await get('wrong-again'))).toBe('AUTH_RATE_LIMITED');
    expect((await get(KEY_A)).status).toBe(404);
    expect((await get(KEY_B)).status).toBe(404);
  });

  it('a forged X-Forwarded-For does not move a client into another bucket (one trusted hop)', async () => {
    const api = app({ trustProxy: 1 });
    // The trusted proxy appends the address it saw; whatever the client wrote before it is not trusted.
    const via = (client: string, forged: string) => `${forged}, ${client}`;
    const bad = (xff: string) =>
      request(api).get('/v1/issuances/iss_unknown').set({ 'x-api-key': 'wrong', 'x-forwarded-for': xff });
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 1; i++) statuses.push((await bad(via('203.0.113.5', `198.51.100.${i}`))).status);
    expect(statuses).toEqual([401, 401, 401, 429]);
    expect((await bad(via('203.0.113.9', '203.0.113.5'))).status).toBe(401); // another real address: its own bucket
    // Per-client budgets ignore addresses altogether.
    const good = (xff: string) =>
      request(api).get('/v1/issuances/iss_unknown').set({ 'x-api-key': KEY_A, 'x-forwarded-for': xff });
    for (let i = 0; i < LIMIT; i++) expect((await good(via('203.0.113.5', '10.0.0.1'))).status).toBe(404);
    expect((await good(via('203.0.113.77', `10.9.9.${Math.random()}`))).status).toBe(429);
  });

  it('without a trusted proxy, X-Forwarded-For is ignored: the socket address is the bucket', async () => {
    const api = app({ trustProxy: 0 });
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 1; i++) {
      const res = await request(api)
        .get('/v1/issuances/iss_unknown')
        .set({ 'x-api-key': 'wrong', 'x-forwarded-for': `198.51.100.${i}` });
      statuses.push(res.status);
    }
    expect(statuses).toEqual([401, 401, 401, 429]);
  });

  it('refuses trust proxy `true` in code and in configuration', () => {
    expect(() => app({ trustProxy: true as unknown as number })).toThrow(/never true/);
    expect(() => loadConfig({ API_TRUST_PROXY: 'true' })).toThrow(ConfigError);
    expect(loadConfig({ API_TRUST_PROXY: '2' }).API_TRUST_PROXY).toBe(2);
    expect(loadConfig({ API_TRUST_PROXY: 'false' }).API_TRUST_PROXY).toBe(0);
    expect(loadConfig({}).API_TRUST_PROXY).toBe(0);
    expect(loadConfig({ API_TRUST_PROXY: '10.0.0.0/8, fd00::/8,loopback' }).API_TRUST_PROXY).toEqual([
      '10.0.0.0/8',
      'fd00::/8',
      'loopback',
    ]);
    expect(() => loadConfig({ API_TRUST_PROXY: '10.0.0.0/33' })).toThrow(ConfigError);
    expect(() => loadConfig({ API_TRUST_PROXY: 'proxy.internal' })).toThrow(ConfigError);
  });

  describe('Verifier routes: per verifierDid', () => {
    const keys = new Map<string, JWK & { kid: string }>();
    const signers = new Map<string, KeyLike>();
    const appended: Appended[] = [];
    let api: Express;

    beforeAll(async () => {
      for (const did of ['did:air:id:v-a', 'did:air:id:v-b']) {
        const pair = await generateKeyPair('ES256', { extractable: true });
        keys.set(did, { ...(await exportJWK(pair.publicKey)), kid: 'k1' });
        signers.set(did, pair.privateKey);
      }
      api = app({}, appended, keys);
    });

    const jwt = (did: string) =>
      new SignJWT({})
        .setProtectedHeader({ alg: 'ES256', kid: 'k1' })
        .setIssuer(did)
        .setSubject(did)
        .setAudience(VERIFIER_TOKEN_AUDIENCE)
        .setIssuedAt()
        .setExpirationTime('5m')
        .sign(signers.get(did)!);
    const data = async (did: string) =>
      request(api)
        .get('/v1/verifier/data?userId=user-1&schemaId=kyc-basic')
        .set('authorization', `Bearer ${await jwt(did)}`);

    it('a Verifier that spends its budget does not touch another Verifier', async () => {
      for (let i = 0; i < LIMIT; i++) expect(codeOf(await data('did:air:id:v-a'))).toBe('AUTHORIZATION_REQUIRED');
      expect([(await data('did:air:id:v-a')).status, codeOf(await data('did:air:id:v-a'))]).toEqual([
        429,
        'RATE_LIMITED',
      ]);
      expect(codeOf(await data('did:air:id:v-b'))).toBe('AUTHORIZATION_REQUIRED');
    });

    it('bad JWTs are throttled per address', async () => {
      const statuses: number[] = [];
      for (let i = 0; i < LIMIT + 1; i++) {
        statuses.push((await request(api).get('/v1/verifier/data').set('authorization', 'Bearer a.b.c')).status);
      }
      expect(statuses).toEqual([401, 401, 401, 429]);
    });

    it('denials are not audited one by one', () => {
      // the denials above went to the aggregate log (its own timer), not straight to the audit trail
      expect(appended.filter((e) => e.type === 'verifier.denied')).toEqual([]);
    });
  });

  it('admin routes: per admin name', async () => {
    const api = app();
    const post = (token: string) =>
      request(api).post('/v1/admin/verifiers/keys/remove').set('authorization', `Bearer ${token}`).send({});
    for (let i = 0; i < LIMIT; i++) expect(codeOf(await post(ADMIN_A))).toBe('INVALID_FIELD');
    expect(codeOf(await post(ADMIN_A))).toBe('RATE_LIMITED');
    expect(codeOf(await post(ADMIN_B))).toBe('INVALID_FIELD');
  });

  it('codec: per session, and failed tokens per address', async () => {
    const api = app();
    const signIn = async (token: string) =>
      (await request(api).post('/codec/session').type('form').send({ token }).expect(200)).headers[
        'set-cookie'
      ] as unknown as string[];
    const a = (await signIn(CODEC_A))[0]!.split(';')[0]!;
    const b = (await signIn(CODEC_B))[0]!.split(';')[0]!;
    const decode = (cookie: string) => request(api).post('/codec/decode').set('cookie', cookie).send({});
    for (let i = 0; i < LIMIT; i++) expect((await decode(a)).status).toBe(200);
    expect((await decode(a)).status).toBe(429);
    expect((await decode(b)).status).toBe(200);
    const wrong: number[] = [];
    for (let i = 0; i < LIMIT + 1; i++) {
      wrong.push(
        (
          await request(api)
            .post('/codec/session')
            .type('form')
            .send({ token: `nope-${i}` })
        ).status,
      );
    }
    expect(wrong).toEqual([401, 401, 401, 429]);
    await request(api).post('/codec/session').type('form').send({ token: CODEC_A }).expect(200);
  });
});

describe('codec sign-in answers clearly', () => {
  it('a JSON body is a 415 SESSION_FORM_REQUIRED, not taken for a wrong token', async () => {
    const res = await request(app()).post('/codec/session').send({ token: CODEC_A });
    expect([res.status, codeOf(res)]).toEqual([415, 'SESSION_FORM_REQUIRED']);
    expect((res.body as { error: { message: string } }).error.message).toContain('application/x-www-form-urlencoded');
  });

  it('a form without a token is a 400 MISSING_FIELD', async () => {
    const res = await request(app()).post('/codec/session').type('form').send({ other: 'x' });
    expect([res.status, codeOf(res)]).toEqual([400, 'MISSING_FIELD']);
  });
});

describe('GET /v1/issuances/:id names the run and links it in the Web UI', () => {
  const issuanceId = 'iss_AAAAAAAAAAAAAAAAAAAAAAAA';
  const at = new Date('2026-01-01T00:00:00Z');
  const doc = {
    _id: issuanceId,
    clientId: 'client-a',
    workflowId: 'issuance-79wqeCUbk1ECdfhC1NpfCeby',
    status: 'running',
    schemaId: 'kyc-basic',
    curve: 'secp256r1',
    keySource: 'platform',
    steps: {
      issue: { state: 'completed', at },
      encrypt: { state: 'pending' },
      store: { state: 'pending' },
      shred: { state: 'pending' },
    },
    createdAt: at,
    updatedAt: at,
  };
  const withIssuance = (webUi?: { url: string; namespace: string }, version: object | null = null) => {
    const { issuance } = stubs(new Map(), []);
    const deps = {
      ...issuance,
      intake: { get: (id: string) => Promise.resolve(id === issuanceId ? doc : null) },
      records: { versionFor: (id: string) => Promise.resolve(id === issuanceId ? version : null) },
      ...(webUi ? { webUi } : {}),
    } as unknown as IssuanceApiDeps;
    return app({ issuance: deps });
  };

  it('answers workflowId and webUiUrl (TEMPORAL_UI_URL/namespaces/<namespace>/workflows/<workflowId>)', async () => {
    const res = await request(withIssuance({ url: 'http://127.0.0.1:8233/', namespace: 'cak prod' }))
      .get(`/v1/issuances/${issuanceId}`)
      .set('x-api-key', KEY_A);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      issuanceId,
      status: 'running',
      workflowId: doc.workflowId,
      webUiUrl: `http://127.0.0.1:8233/namespaces/cak%20prod/workflows/${doc.workflowId}`,
    });
  });

  it('without a Web UI address it still names the run; another client does not see it', async () => {
    const api = withIssuance();
    const res = await request(api).get(`/v1/issuances/${issuanceId}`).set('x-api-key', KEY_A);
    expect(res.body).toMatchObject({ workflowId: doc.workflowId });
    expect(res.body).not.toHaveProperty('webUiUrl');
    const other = await request(api).get(`/v1/issuances/${issuanceId}`).set('x-api-key', KEY_B);
    expect([other.status, codeOf(other)]).toEqual([404, 'ISSUANCE_NOT_FOUND']);
  });
  it('a running issuance whose record version exists is shown stored: encrypt and store completed, shred running', async () => {
    // the worker writes `issue`'s completion and then only the run's end; `store` leaves its record version
    const stored = new Date('2026-01-01T00:00:05Z');
    const version = { _id: issuanceId, recordId: 'rec_1', version: 3, manifest: [], createdAt: stored };
    const res = await request(withIssuance(undefined, version))
      .get(`/v1/issuances/${issuanceId}`)
      .set('x-api-key', KEY_A);
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      status: 'stored',
      steps: {
        issue: { state: 'completed' },
        encrypt: { state: 'completed', at: stored.toISOString() },
        store: { state: 'completed', at: stored.toISOString() },
        shred: { state: 'running' },
      },
      record: { recordId: 'rec_1', version: 3, items: [] },
    });
  });
});

describe('a refused Verifier JWT says which claim or header is wrong, and nothing about registrations', () => {
  const REGISTERED = 'did:air:id:v-known';
  const UNREGISTERED = 'did:air:id:v-unknown';
  const keys = new Map<string, JWK & { kid: string }>();
  let signer: KeyLike;
  let otherSigner: KeyLike;
  let api: Express;
  const now = () => Math.floor(Date.now() / 1000);

  beforeAll(async () => {
    const pair = await generateKeyPair('ES256', { extractable: true });
    keys.set(REGISTERED, { ...(await exportJWK(pair.publicKey)), kid: 'k1' });
    signer = pair.privateKey;
    otherSigner = (await generateKeyPair('ES256')).privateKey;
    // a generous failure budget: every request below fails authentication from one address
    api = app({ limits: { ...DEFAULT_TEST_LIMITS, authFailuresPerMinute: 1_000 } }, [], keys);
  });

  /**
   * A Verifier JWT with every claim right, then `change` applied to its claims (undefined deletes
   * one); `change` gets the one `now` the token is built at, so lifetimes do not straddle a second.
   */
  const token = (
    change: Record<string, unknown> | ((t: number) => Record<string, unknown>) = {},
    options: { did?: string; key?: KeyLike | Uint8Array; alg?: string } = {},
  ) => {
    const did = options.did ?? REGISTERED;
    const t = now();
    const claims: Record<string, unknown> = {
      iss: did,
      sub: did,
      aud: VERIFIER_TOKEN_AUDIENCE,
      iat: t,
      exp: t + 300,
      ...(typeof change === 'function' ? change(t) : change),
    };
    for (const [name, value] of Object.entries(claims)) if (value === undefined) delete claims[name];
    return new SignJWT(claims)
      .setProtectedHeader({ alg: options.alg ?? 'ES256', kid: 'k1' })
      .sign(options.key ?? signer);
  };
  const answer = async (jwt: string) => {
    const res = await request(api)
      .get('/v1/verifier/data?userId=user-1&schemaId=kyc-basic')
      .set('authorization', `Bearer ${jwt}`);
    return { status: res.status, ...(res.body as { error: { code: string; message: string; details?: object } }) };
  };

  it('a correct token still gets through (to the access rule), and one signed by another key does not', async () => {
    expect((await answer(await token())).error.code).toBe('AUTHORIZATION_REQUIRED');
    expect(await answer(await token({}, { key: otherSigner }))).toEqual({
      status: 401,
      error: {
        code: 'VERIFIER_UNAUTHENTICATED',
        message: expect.stringMatching(/^the JWT signature does not verify with a key registered for this verifierDid/),
        details: { check: 'signature' },
      },
    });
  });

  const cases: [string, () => Promise<string>, RegExp, Record<string, unknown>][] = [
    [
      'a wrong aud',
      () => token({ aud: 'https://issuer.example' }),
      /the JWT's aud must be "cak-issuer"; got "https:\/\/issuer\.example"/,
      { claim: 'aud', expected: 'cak-issuer', got: 'https://issuer.example' },
    ],
    [
      'a lifetime over the maximum',
      () => token((t) => ({ exp: t + 3600 })),
      /the JWT lives 3600 s \(exp - iat\); at most 600 s$/,
      { claim: 'exp', reason: 'lifetime', got: 3600 },
    ],
    [
      'an exp in milliseconds',
      () => token((t) => ({ exp: t * 1000 + 60_000 })),
      /at most 600 s \(this looks like milliseconds: NumericDate is Unix seconds\)/,
      { claim: 'exp', reason: 'lifetime' },
    ],
    [
      'an exp in the past',
      () => token((t) => ({ iat: t - 400, exp: t - 100 })),
      /the JWT expired: exp \S+Z is before now \(\S+Z; 30 s of clock skew allowed\); sign a fresh one/,
      { claim: 'exp', reason: 'check_failed', expected: 'a time in the future' },
    ],
    [
      'an iat in the future',
      () => token((t) => ({ iat: t + 120, exp: t + 300 })),
      /the JWT's iat \S+Z is in the future/,
      { claim: 'iat', expected: 'a time in the past' },
    ],
    [
      'an iat too far in the past',
      () => token((t) => ({ iat: t - 3600, exp: t + 60 })),
      /the JWT was issued at \S+Z, more than 600 s ago/,
      { claim: 'iat' },
    ],
    [
      'a sub that is not the iss',
      () => token({ sub: 'did:air:id:someone-else' }),
      /the JWT's sub must equal its iss \(did:air:id:v-known\); got "did:air:id:someone-else"/,
      { claim: 'sub', expected: REGISTERED, got: 'did:air:id:someone-else' },
    ],
    [
      'an iss that is not a DID',
      () => token({ iss: 'verifier-1' }),
      /the JWT's iss must be the verifierDid \(did:<method>:<id>\); got "verifier-1"/,
      { claim: 'iss', got: 'verifier-1' },
    ],
    [
      'no exp claim',
      () => token({ exp: undefined }),
      /the JWT has no "exp" claim/,
      { claim: 'exp', reason: 'missing' },
    ],
    [
      'no aud claim',
      () => token({ aud: undefined }),
      /the JWT has no "aud" claim/,
      { claim: 'aud', reason: 'missing' },
    ],
    [
      'an iat that is not a number',
      () => token({ iat: 'yesterday' }),
      /the JWT's iat must be a number \(NumericDate, Unix seconds\); got "yesterday"/,
      { claim: 'iat', reason: 'invalid' },
    ],
    [
      'an HS256 token',
      () => token({}, { alg: 'HS256', key: new Uint8Array(32) }),
      /the JWT header's alg must be ES256; got "HS256"/,
      { header: 'alg', expected: 'ES256', got: 'HS256' },
    ],
  ];

  it.each(cases)('%s: 401 naming it', async (_name, make, message, details) => {
    expect(await answer(await make())).toEqual({
      status: 401,
      error: {
        code: 'VERIFIER_UNAUTHENTICATED',
        message: expect.stringMatching(message),
        details: expect.objectContaining(details),
      },
    });
  });

  it('answers alike for a registered and an unregistered verifierDid', async () => {
    const both = async (change: Parameters<typeof token>[0], key?: KeyLike) => {
      const [known, unknown] = [
        await answer(await token(change, { did: REGISTERED, ...(key ? { key } : {}) })),
        await answer(await token(change, { did: UNREGISTERED, ...(key ? { key } : {}) })),
      ];
      // the DID the caller sent may be echoed (sub's expected value); nothing else may differ
      expect(JSON.stringify(unknown).replaceAll(UNREGISTERED, REGISTERED)).toBe(JSON.stringify(known));
      return known;
    };
    expect((await both({ aud: 'other' })).error.details).toMatchObject({ claim: 'aud' });
    expect((await both((t) => ({ exp: t + 3600 }))).error.details).toMatchObject({ claim: 'exp' });
    expect((await both({ sub: 'did:air:id:x' })).error.details).toMatchObject({ claim: 'sub' });
    // past the claims: a wrong key for a registered DID and any key for an unregistered one, one answer
    expect((await both({}, otherSigner)).error.details).toEqual({ check: 'signature' });
  });
});

describe('Verifier denials: counted, and audited once per (verifierDid, reason, minute) with a count', () => {
  it('aggregates a burst into one event per key and bucket, and counts every denial', async () => {
    const appended: Appended[] = [];
    const metrics = createMetrics('api');
    const log: DeniedAccessLog = deniedAccessLog(
      { append: (key, type, data) => (appended.push({ key, type, data }), Promise.resolve({ _id: key })) },
      { counter: metrics.verifierDenied, timer: false },
    );
    const minute = new Date('2026-11-28T10:00:10Z');
    for (let i = 0; i < 500; i++) log.record('did:air:id:v-a', 'AUTHORIZATION_REQUIRED', minute);
    log.record('did:air:id:v-a', 'AUTHORIZATION_REVOKED', minute);
    log.record('did:air:id:v-b', 'AUTHORIZATION_REQUIRED', minute);
    log.record('did:air:id:v-a', 'AUTHORIZATION_REQUIRED', new Date('2026-11-28T10:01:05Z'));
    await log.flush({ now: new Date('2026-11-28T10:01:30Z') }); // only the minute that is over
    expect(appended.map((e) => [e.type, e.data.verifierDid, e.data.reason, e.data.count])).toEqual([
      ['verifier.denied', 'did:air:id:v-a', 'AUTHORIZATION_REQUIRED', 500],
      ['verifier.denied', 'did:air:id:v-a', 'AUTHORIZATION_REVOKED', 1],
      ['verifier.denied', 'did:air:id:v-b', 'AUTHORIZATION_REQUIRED', 1],
    ]);
    expect(appended[0]!.data).toMatchObject({ from: '2026-11-28T10:00:00.000Z', until: '2026-11-28T10:01:00.000Z' });
    await log.close(); // the current minute too
    expect(appended).toHaveLength(4);
    const text = await metrics.registry.metrics();
    expect(text).toContain('cak_verifier_denied_total{reason="AUTHORIZATION_REQUIRED",component="api"} 502');
  });

  it('keeps a bucket whose append failed and appends it with the next flush', async () => {
    let fail = true;
    const appended: Appended[] = [];
    const log = deniedAccessLog(
      {
        append: (key, type, data) => {
          if (fail) return Promise.reject(new Error('database down'));
          appended.push({ key, type, data });
          return Promise.resolve({ _id: key });
        },
      },
      { timer: false },
    );
    log.record('did:air:id:v-a', 'AUTHORIZATION_EXPIRED', new Date('2026-11-28T10:00:00Z'));
    await log.flush({ all: true });
    expect(appended).toEqual([]);
    fail = false;
    await log.flush({ all: true });
    expect(appended.map((e) => e.data.count)).toEqual([1]);
  });
});

describe('/readyz', () => {
  it('says up or down per dependency, with no error text; the reason goes to the log', async () => {
    const warnings: unknown[] = [];
    const log = { ...silentLog, warn: (fields: unknown) => warnings.push(fields) } as unknown as Logger;
    const api = createApp({
      log,
      probes: {
        temporal: () => Promise.resolve(),
        database: () => Promise.reject(new Error('connect ECONNREFUSED 10.20.30.40:27017 (user cak-secret)')),
      },
    });
    const res = await request(api).get('/readyz').expect(503);
    expect(res.body).toEqual({
      status: 'not-ready',
      checks: { temporal: { status: 'up' }, database: { status: 'down' } },
    });
    expect(JSON.stringify(res.body)).not.toMatch(/ECONNREFUSED|10\.20|secret/);
    await request(api).get('/readyz').expect(503);
    expect(warnings).toEqual([{ dependency: 'database', err: expect.stringContaining('ECONNREFUSED') as unknown }]);
  });
});

describe('a database outage', () => {
  it('counts a busy database (FerretDB on SQLite) as unavailable, and other server errors not', async () => {
    const { MongoServerError } = await import('mongodb');
    const { isDatabaseUnavailable } = await import('../../src/storage/mongo');
    const busy =
      '[msg_insert.go:168] [collection.go:135 sqlite.(*collection).InsertAll.func1] database is locked (5) (SQLITE_BUSY)';
    expect(isDatabaseUnavailable(new MongoServerError({ message: busy }))).toBe(true);
    expect(isDatabaseUnavailable(new MongoServerError({ message: 'E11000 duplicate key error', code: 11000 }))).toBe(
      false,
    );
  });

  it('is a 503 UNAVAILABLE with Retry-After, not a 500', async () => {
    const { MongoClient } = await import('mongodb');
    const { default: express } = await import('express');
    const { errorHandler } = await import('../../src/api/errors');
    const { createLogger } = await import('../../src/observability/logger');
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const client = new MongoClient(`mongodb://127.0.0.1:${port}`, { serverSelectionTimeoutMS: 200 });
    const app = express();
    app.get('/x', async (_req, _res, next) => {
      await client.db('x').command({ ping: 1 }).catch(next);
    });
    app.use(errorHandler(createLogger({ level: 'silent', name: 'test' })));
    const res = await request(app).get('/x');
    await client.close();
    expect(res.status).toBe(503);
    expect(res.headers['retry-after']).toBe('5');
    expect(res.body.error.code).toBe('UNAVAILABLE');
  });
});
