import { Writable } from 'node:stream';
import express from 'express';
import request from 'supertest';
import { callbackRoutes } from '../../src/api/callbacks';
import type { DeliveryLog } from '../../src/api/delivery-log';
import { errorHandler, notFound } from '../../src/api/errors';
import { DEV_CALLBACK_SECRET } from '../../src/config';
import { createLogger } from '../../src/observability/logger';
import { StandardWebhooksVerifier, signStandardWebhook } from '../../src/platform/callback-signature';
import type { InboxRepository } from '../../src/storage/inbox';

/** What the API logs about refused callbacks: one warn line each, with the code and the platform's message id, no personal data. */
describe('refused callbacks in the API log', () => {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      lines.push(JSON.parse(chunk.toString('utf8')) as Record<string, unknown>);
      done();
    },
  });
  const log = createLogger({ level: 'info', name: 'api' }, sink);
  const deliveries: DeliveryLog = {
    record: () => undefined,
    first: () => undefined,
    flush: () => Promise.resolve(),
    close: () => Promise.resolve(),
  };
  const app = express();
  app.use(
    callbackRoutes({
      verifier: new StandardWebhooksVerifier([DEV_CALLBACK_SECRET], 300),
      starter: {
        start: (authorizationId) =>
          Promise.resolve({ workflowId: `authorization-${authorizationId}`, duplicate: false }),
      },
      inbox: {} as InboxRepository,
      deliveries,
      idSecret: 'x'.repeat(32),
      accessWindowMs: () => undefined,
      log,
    }),
  );
  app.use(notFound);
  app.use(errorHandler(log));

  const userId = 'user-4f1c-personal';
  const body = JSON.stringify({ userId, verifierDid: 'did:air:verifier-1', schemaId: 'kyc-basic' });
  const post = (payload: string, headers: Record<string, string>) => {
    const req = request(app).post('/v1/cak/callbacks').set('content-type', 'application/json');
    for (const [name, value] of Object.entries(headers)) req.set(name, value);
    return req.send(payload);
  };
  /** the lines one request wrote */
  const logged = async (send: () => PromiseLike<unknown>) => {
    lines.length = 0;
    await send();
    await new Promise((r) => setImmediate(r)); // 'finish' runs after supertest has the response
    return [...lines];
  };

  it('a bad signature: one warn line with its code and the message id, and not the userId', async () => {
    const headers = signStandardWebhook(DEV_CALLBACK_SECRET, body, { id: 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W' });
    const written = await logged(() => post(body.replace('kyc-basic', 'kyc-other'), headers).expect(401));
    expect(written).toEqual([
      expect.objectContaining({
        level: 40,
        msg: 'callback refused',
        status: 401,
        code: 'SIGNATURE_INVALID',
        messageId: 'msg_2KWPBgLlAfxdpx2AI54pPJ85f4W',
      }),
    ]);
    expect(JSON.stringify(written)).not.toContain(userId);
  });

  it('every refusing step logs the same way: media type, malformed JSON, unknown field', async () => {
    const signed = (raw: string) => signStandardWebhook(DEV_CALLBACK_SECRET, raw, { id: 'msg_1' });
    const cases: [() => PromiseLike<unknown>, string][] = [
      [() => post(body, signed(body)).set('content-type', 'text/plain').expect(415), 'UNSUPPORTED_MEDIA_TYPE'],
      [() => post(`${body}}`, signed(`${body}}`)).expect(400), 'MALFORMED_JSON'],
    ];
    const extra = body.replace('}', ',"passport":"P123"}');
    cases.push([() => post(extra, signed(extra)).expect(400), 'UNKNOWN_FIELD']);
    for (const [send, code] of cases) {
      const written = await logged(send);
      expect(written).toEqual([expect.objectContaining({ level: 40, code, messageId: 'msg_1' })]);
      expect(JSON.stringify(written)).not.toContain(userId);
      expect(JSON.stringify(written)).not.toContain('P123');
    }
  });

  it('a hostile or absent webhook-id is not copied into the log', async () => {
    const junk = await logged(() => post(body, { 'webhook-id': `x" ${userId} <script>` }).expect(401));
    expect(junk).toEqual([expect.objectContaining({ code: 'SIGNATURE_MISSING', messageId: '(invalid)' })]);
    const long = await logged(() => post(body, { 'webhook-id': 'm'.repeat(500) }).expect(401));
    expect(long[0]?.messageId).toBe('m'.repeat(64));
    const none = await logged(() => post(body, {}).expect(401));
    expect(none).toEqual([expect.objectContaining({ code: 'SIGNATURE_MISSING' })]);
    expect(none[0]).not.toHaveProperty('messageId');
  });

  describe('a malformed signature header is named, with the format it must have', () => {
    const signed = () => signStandardWebhook(DEV_CALLBACK_SECRET, body, { id: 'msg_fmt' });
    const millis = String(Date.now());
    const cases: [string, () => Record<string, string>, string, RegExp, Record<string, unknown>][] = [
      [
        'a webhook-timestamp in milliseconds (13 digits)',
        () => ({ ...signed(), 'webhook-timestamp': millis }),
        'SIGNATURE_MALFORMED',
        /webhook-timestamp must be Unix seconds; \d{13} has 13 digits and looks like milliseconds \(send \d{10}/,
        { header: 'webhook-timestamp', got: millis },
      ],
      [
        'a webhook-timestamp that is not digits',
        () => ({ ...signed(), 'webhook-timestamp': '2025-01-01T00:00:00Z' }),
        'SIGNATURE_MALFORMED',
        /webhook-timestamp must be Unix seconds in decimal digits only, e\.g\. \d{10}/,
        { header: 'webhook-timestamp', expected: expect.stringContaining('Unix seconds') },
      ],
      [
        'a webhook-timestamp of 16 digits (microseconds)',
        () => ({ ...signed(), 'webhook-timestamp': `${millis}123` }),
        'SIGNATURE_MALFORMED',
        /webhook-timestamp must be Unix seconds \(at most 12 digits/,
        { header: 'webhook-timestamp' },
      ],
      [
        'a webhook-id with a space',
        () => ({ ...signed(), 'webhook-id': 'msg 1' }),
        'SIGNATURE_MALFORMED',
        /webhook-id must be 1-256 printable ASCII characters without spaces/,
        { header: 'webhook-id' },
      ],
      [
        'a webhook-signature over 4096 characters',
        () => ({ ...signed(), 'webhook-signature': `v1,${'A'.repeat(4100)}` }),
        'SIGNATURE_MALFORMED',
        /webhook-signature is over 4096 characters/,
        { header: 'webhook-signature' },
      ],
      [
        'no webhook-timestamp',
        () => {
          const { 'webhook-timestamp': _dropped, ...rest } = signed();
          return rest;
        },
        'SIGNATURE_MISSING',
        /^missing webhook-timestamp: Standard Webhooks callbacks carry webhook-id, webhook-timestamp and webhook-signature/,
        { missing: ['webhook-timestamp'] },
      ],
      [
        'a webhook-signature without a v1 entry',
        () => ({ ...signed(), 'webhook-signature': 'v2,abc' }),
        'SIGNATURE_INVALID',
        /webhook-signature has no v1 entry/,
        { header: 'webhook-signature' },
      ],
      [
        'a v1 signature that does not match',
        () => ({ ...signed(), 'webhook-signature': `v1,${Buffer.alloc(32).toString('base64')}` }),
        'SIGNATURE_INVALID',
        /no v1 signature matches: .*`<webhook-id>\.<webhook-timestamp>\.` followed by the exact body bytes/,
        { header: 'webhook-signature' },
      ],
      [
        'a validly signed timestamp 10 minutes old',
        () =>
          signStandardWebhook(DEV_CALLBACK_SECRET, body, { id: 'msg_fmt', timestamp: new Date(Date.now() - 600_000) }),
        'SIGNATURE_TIMESTAMP_STALE',
        /webhook-timestamp \d+ is 60\d s before now \(\d+\); at most 300 s of skew is accepted/,
        { header: 'webhook-timestamp', toleranceSeconds: 300 },
      ],
    ];
    it.each(cases)(
      '%s: a 401 whose message and details name the header',
      async (_name, headers, code, message, details) => {
        let answer: { status: number; body: { error?: unknown } } | undefined;
        const written = await logged(async () => {
          const res = await post(body, headers());
          answer = { status: res.status, body: res.body as { error?: unknown } };
        });
        expect(answer?.status).toBe(401);
        expect(answer?.body.error).toEqual({
          code,
          message: expect.stringMatching(message),
          details: expect.objectContaining(details),
        });
        // the log line says which header, never the body or its userId
        const header = 'header' in details ? details.header : (details.missing as string[]).join(',');
        expect(written).toEqual([expect.objectContaining({ level: 40, msg: 'callback refused', code, header })]);
        expect(JSON.stringify(written)).not.toContain(userId);
      },
    );
  });

  it('an accepted callback logs no warning', async () => {
    const headers = signStandardWebhook(DEV_CALLBACK_SECRET, body, { id: 'msg_ok' });
    const written = await logged(() => post(body, headers).expect(200));
    expect(written.filter((line) => (line.level as number) >= 40)).toEqual([]);
  });
});
