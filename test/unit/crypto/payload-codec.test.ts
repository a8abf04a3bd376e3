import { randomBytes } from 'node:crypto';
import express from 'express';
import request from 'supertest';
import { ApplicationFailure, defaultPayloadConverter } from '@temporalio/common';
import {
  decodeOptionalFailureToOptionalError,
  encodeErrorToFailure,
  loadDataConverter,
} from '@temporalio/common/lib/internal-non-workflow';
import { temporal } from '@temporalio/proto';
import { errorHandler } from '../../../src/api/errors';
import { codecRouter } from '../../../src/crypto/codec-server';
import { createLogger } from '../../../src/observability/logger';
import { parseKeyring } from '../../../src/crypto/keyring';
import { CryptoError } from '../../../src/crypto/keys';
import { AesGcmPayloadCodec, dataConverterFor } from '../../../src/crypto/payload-codec';

const k1 = `codec-1:${randomBytes(32).toString('base64')}`;
const k2 = `codec-2:${randomBytes(32).toString('base64')}`;
const ring = parseKeyring(k1);
const rotated = parseKeyring(`${k2},${k1}`);
const marker = 'MARKER-7f3a-plaintext';

describe('AesGcmPayloadCodec', () => {
  const payload = defaultPayloadConverter.toPayload({ secret: marker });

  it('encrypts every payload and decodes it back, old keys still decode after rotation', async () => {
    const [encoded] = await AesGcmPayloadCodec.create(ring).encode([payload]);
    expect(Buffer.from(encoded!.data!).toString('latin1')).not.toContain(marker);
    expect(Buffer.from(encoded!.metadata!['encryption-key-id']!).toString()).toBe('codec-1');
    const [decoded] = await AesGcmPayloadCodec.create(rotated).decode([encoded!]);
    expect(defaultPayloadConverter.fromPayload(decoded!)).toEqual({ secret: marker });
    const [newer] = await AesGcmPayloadCodec.create(rotated).encode([payload]);
    expect(Buffer.from(newer!.metadata!['encryption-key-id']!).toString()).toBe('codec-2');
  });

  it('refuses tampered payloads and unknown keys with codes', async () => {
    const codec = AesGcmPayloadCodec.create(ring);
    const [encoded] = await codec.encode([payload]);
    const data = Buffer.from(encoded!.data!);
    data[20]! ^= 1;
    await expect(codec.decode([{ ...encoded!, data }])).rejects.toMatchObject({ code: 'CODEC_PAYLOAD_INVALID' });
    const other = AesGcmPayloadCodec.create(parseKeyring(k2));
    await expect(other.decode([encoded!])).rejects.toBeInstanceOf(CryptoError);
  });

  it('refuses unencrypted payloads (nothing from Temporal is trusted that did not come through the codec)', async () => {
    const codec = dataConverterFor(ring).payloadCodecs![0]!;
    await expect(codec.decode([payload])).rejects.toMatchObject({ code: 'CODEC_PAYLOAD_UNENCRYPTED' });
    await expect(codec.decode([{ data: Buffer.from('{}') }])).rejects.toMatchObject({
      code: 'CODEC_PAYLOAD_UNENCRYPTED',
    });
    // only when asked to (the Web UI's codec endpoint shows them as they are)
    const lenient = AesGcmPayloadCodec.create(ring, { acceptUnencrypted: true });
    await expect(lenient.decode([payload])).resolves.toEqual([payload]);
  });

  it('encodes failure messages and stack traces too: none of them reaches Temporal in plain text', async () => {
    const converter = loadDataConverter(dataConverterFor(ring));
    const error = ApplicationFailure.create({
      message: `platform rejected ${marker}`,
      type: 'PlatformRejected',
      cause: new Error(`cause ${marker}`),
    });
    const failure = await encodeErrorToFailure(converter, error);
    const raw = Buffer.from(temporal.api.failure.v1.Failure.encode(failure).finish()).toString('latin1');
    expect(raw).toContain('PlatformRejected'); // the type stays readable, for retry policies and the Web UI
    expect(raw).not.toContain(marker);
    expect(failure.message).toBe('Encoded failure');
    const decoded = await decodeOptionalFailureToOptionalError(converter, failure);
    expect(decoded?.message).toBe(`platform rejected ${marker}`);
    expect(decoded?.cause).toMatchObject({ message: `cause ${marker}` });
  });

  it('memoizes one data converter per keyring', () => {
    expect(dataConverterFor(ring)).toBe(dataConverterFor(parseKeyring(k1)));
  });
});

describe('codec router', () => {
  const token = 'test-token-0123456789';
  const app = express();
  app.use(
    '/codec',
    codecRouter({
      keyring: ring,
      bearerTokens: ['other-token-0123456789', token],
      allowedOrigins: ['http://localhost:8233'],
    }),
  );
  app.use(errorHandler(createLogger({ level: 'silent', name: 'test' }))); // as the API mounts it
  const toJson = (p: { metadata?: Record<string, Uint8Array | null> | null; data?: Uint8Array | null }) => ({
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v!).toString('base64')]),
    ),
    data: Buffer.from(p.data!).toString('base64'),
  });

  it('encodes and decodes for the UI with a bearer token and an allowed origin', async () => {
    const plain = toJson(defaultPayloadConverter.toPayload({ secret: marker }));
    const encoded = await request(app)
      .post('/codec/encode')
      .set('authorization', `Bearer ${token}`)
      .set('origin', 'http://localhost:8233')
      .send({ payloads: [plain] })
      .expect(200);
    expect(encoded.headers['access-control-allow-origin']).toBe('http://localhost:8233');
    expect(JSON.stringify(encoded.body)).not.toContain(Buffer.from(marker).toString('base64').slice(0, 12));
    const decoded = await request(app)
      .post('/codec/decode')
      .set('authorization', `Bearer ${token}`)
      .send(encoded.body as object)
      .expect(200);
    expect(decoded.body).toEqual({ payloads: [plain] });
  });

  it('shows an unencrypted payload as it is', async () => {
    const plain = toJson(defaultPayloadConverter.toPayload({ secret: marker }));
    const decoded = await request(app)
      .post('/codec/decode')
      .set('authorization', `Bearer ${token}`)
      .send({ payloads: [plain] })
      .expect(200);
    expect(decoded.body).toEqual({ payloads: [plain] });
  });

  it.each(['encode', 'decode'])('%s answers an empty payload list, sent as {} or {payloads: []}', async (direction) => {
    for (const body of [{}, { payloads: [] }]) {
      const res = await request(app)
        .post(`/codec/${direction}`)
        .set('authorization', `Bearer ${token}`)
        .send(body)
        .expect(200);
      expect(res.body).toEqual({ payloads: [] });
    }
  });

  it('answers the CORS preflight with the allowed headers, without a token', async () => {
    const res = await request(app)
      .options('/codec/decode')
      .set('origin', 'http://localhost:8233')
      .set('access-control-request-method', 'POST')
      .expect(204);
    expect(res.headers['access-control-allow-headers']).toBe('content-type, x-namespace, authorization');
  });

  it('refuses a missing or wrong token, a foreign origin, bad bodies, each with its code and no detail of the keys', async () => {
    await request(app).post('/codec/decode').send({ payloads: [] }).expect(401);
    await request(app)
      .post('/codec/decode')
      .set('authorization', 'Bearer nope-nope-nope-nope')
      .send({ payloads: [] })
      .expect(401);
    await request(app)
      .post('/codec/decode')
      .set('authorization', `Bearer ${token}`)
      .set('origin', 'https://evil.example')
      .send({ payloads: [] })
      .expect(403);
    await request(app).post('/codec/decode').set('authorization', `Bearer ${token}`).send({ nope: 1 }).expect(400);
    await request(app)
      .post('/codec/decode')
      .set('authorization', `Bearer ${token}`)
      .set('content-type', 'application/json')
      .send('{not json')
      .expect(400);
    const broken = { metadata: { encoding: Buffer.from('binary/encrypted').toString('base64') }, data: 'AAAA' };
    const res = await request(app)
      .post('/codec/decode')
      .set('authorization', `Bearer ${token}`)
      .send({ payloads: [broken] })
      .expect(400);
    expect(res.body).toEqual({
      error: { code: 'CODEC_KEY_UNKNOWN', message: 'a payload could not be decoded with the codec keyring' },
    });
  });

  describe('operator session (the Web UI sends cookies, not tokens)', () => {
    const encodedPayload = async () =>
      (
        await request(app)
          .post('/codec/encode')
          .set('authorization', `Bearer ${token}`)
          .send({ payloads: [toJson({ metadata: { encoding: Buffer.from('json/plain') }, data: Buffer.from('"x"') })] })
          .expect(200)
      ).body as { payloads: unknown[] };

    function signIn(presented: string) {
      return request(app).post('/codec/session').type('form').send({ token: presented });
    }

    it('serves a sign-in form and refuses a wrong token without setting a cookie', async () => {
      const form = await request(app).get('/codec/session').expect(200);
      expect(form.text).toContain('name="token"');
      const refused = await signIn('wrong-token-0123456789').expect(401);
      expect(refused.headers['set-cookie']).toBeUndefined();
    });

    it('a signed-in browser decodes with its HttpOnly, SameSite=Strict cookie; a tampered or foreign cookie is refused', async () => {
      const signedIn = await signIn(token).expect(200);
      const cookie = String(signedIn.headers['set-cookie']);
      expect(cookie).toMatch(
        /^cak_codec_session=[^;]+; Max-Age=3600; Path=\/codec; Expires=[^;]+; HttpOnly; SameSite=Strict$/,
      );
      const session = cookie.split(';')[0]!;
      const body = await encodedPayload();

      await request(app)
        .post('/codec/decode')
        .set('origin', 'http://localhost:8233')
        .set('cookie', session)
        .send(body)
        .expect(200);

      const [expiry, digest, mac] = session.split('=')[1]!.split('.');
      const tampered = [
        `${Number(expiry) + 1}.${digest}.${mac}`,
        `${expiry}.${Buffer.alloc(32).toString('base64url')}.${mac}`,
        `${expiry}.${digest}.${mac!.slice(1)}A`,
        `${expiry}.${digest}`,
        '',
      ];
      for (const value of tampered) {
        await request(app).post('/codec/decode').set('cookie', `cak_codec_session=${value}`).send(body).expect(401);
      }
    });

    it('a cookie from another codec keyring (or after key rotation) is refused', async () => {
      const other = express();
      other.use(
        '/codec',
        codecRouter({
          keyring: parseKeyring(`other:${Buffer.alloc(32, 7).toString('base64')}`),
          bearerTokens: [token],
          allowedOrigins: [],
        }),
      );
      other.use(errorHandler(createLogger({ level: 'silent', name: 'test' })));
      const foreign = String(
        (await request(other).post('/codec/session').type('form').send({ token }).expect(200)).headers['set-cookie'],
      ).split(';')[0]!;
      await request(app)
        .post('/codec/decode')
        .set('cookie', foreign)
        .send(await encodedPayload())
        .expect(401);
    });
  });
});
