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

  it('an accepted callback logs no warning', async () => {
    const headers = signStandardWebhook(DEV_CALLBACK_SECRET, body, { id: 'msg_ok' });
    const written = await logged(() => post(body, headers).expect(200));
    expect(written.filter((line) => (line.level as number) >= 40)).toEqual([]);
  });
});
