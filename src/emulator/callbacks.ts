import { randomUUID, generateKeyPairSync } from 'node:crypto';
import express, { Router, type Response } from 'express';
import type { JWK } from 'jose';
import { z } from 'zod';
import { callbackPayloadSchema } from '../domain/callback';
import { curveSchema, didSchema } from '../domain/issuance-request';
import { isAllowedCallbackUrl } from '../platform/issuer-settings';
import type { CallbackSignatureScheme } from '../platform/callback-signature';
import { createDispatcher, type DispatchAttempt } from './dispatcher';
import { PartnerAuthError, type VerifiedPartner } from './partner-auth';

/**
 * The platform side of authorization callbacks (air-cak-platform.md §1 phase 3, §3):
 *
 *   POST /issuer/modify {callbackUrl}            sets our global callback URL (x-partner-auth)
 *   GET  /issuer/status                          what the platform has for us (x-partner-auth)
 *   POST /verifier/verify/initialize {issuerDid} a Verifier starts a flow: callback record NOT_SEND (-1)
 *   POST /emulator/verifier/consent              the user agrees in the verification SDK: the record
 *        {callbackRecordId, userId, verifierDid, schemaId, curve, duplicates?}
 *                                                goes PENDING (0), the callback is dispatched (signed,
 *                                                retried), and the SDK hands back cakPrivateKey
 *   GET  /emulator/callbacks/:id                 a callback record (status, attempts)
 *   GET  /.well-known/callback-jwks.json         the key jws-es256 callbacks are signed with
 *
 * Status codes as documented: NOT_SEND = -1, PENDING = 0; "delivered" has no documented code, we use 1.
 */

const CallbackStatus = { NOT_SEND: -1, PENDING: 0, DELIVERED: 1 } as const;
type CallbackStatusCode = (typeof CallbackStatus)[keyof typeof CallbackStatus];

export interface CallbackRecord {
  id: string;
  issuerDid: string;
  status: CallbackStatusCode;
  userId?: string;
  verifierDid?: string;
  schemaId?: string;
  attempts: DispatchAttempt[];
  duplicateStatuses: number[];
  createdAt: Date;
  deliveredAt?: Date;
}

export interface CallbackPlatformOptions {
  scheme: CallbackSignatureScheme;
  /** standard-webhooks: the secret the platform signs with (ours is the first of CALLBACK_SECRETS) */
  secret: string;
  verifyPartner(token: string | undefined, scope: 'issue' | 'verify'): Promise<VerifiedPartner>;
  cakPrivateKey(
    triple: { userId: string; issuerDid: string; schemaId: string },
    curve: 'secp256r1' | 'secp256k1',
  ): string;
}

export interface CallbackPlatformControls {
  record(id: string): CallbackRecord | undefined;
  callbackUrl(): string | undefined;
}

const modifyBody = z.strictObject({ callbackUrl: z.string().max(2048) });
const initializeBody = z.strictObject({ issuerDid: didSchema });
const consentBody = z.strictObject({
  callbackRecordId: z.string().max(64),
  ...callbackPayloadSchema.shape,
  curve: curveSchema.default('secp256r1'),
  duplicates: z.number().int().min(0).max(20).default(0),
});

function fail(res: Response, status: number, message: string, code?: string) {
  res.status(status).json({ error: status, message, ...(code ? { code } : {}) });
}

export function callbackPlatform(options: CallbackPlatformOptions): {
  router: Router;
  controls: CallbackPlatformControls;
} {
  const records = new Map<string, CallbackRecord>();
  let callbackUrl: string | undefined;
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = `emulator-callbacks-${randomUUID().slice(0, 8)}`;
  const publicJwk: JWK = { ...(publicKey.export({ format: 'jwk' }) as JWK), kid, alg: 'ES256', use: 'sig' };
  const dispatcher = createDispatcher({
    scheme: options.scheme,
    secret: options.secret,
    jwsKey: { privateKey, kid },
    timeoutMs: 10_000,
    initialBackoffMs: 500,
    maxBackoffMs: 30_000,
    maxAttempts: 0,
  });

  const partner = async (req: express.Request, res: Response, scope: 'issue' | 'verify') => {
    try {
      return await options.verifyPartner(req.get('x-partner-auth'), scope);
    } catch (err) {
      if (err instanceof PartnerAuthError) fail(res, err.status, err.message, err.code);
      else throw err;
      return undefined;
    }
  };

  const router = Router();
  router.use(express.json({ limit: '16kb' }));

  router.post('/issuer/modify', async (req, res) => {
    if (!(await partner(req, res, 'issue'))) return;
    const body = modifyBody.safeParse(req.body);
    if (!body.success) return fail(res, 400, 'expected {callbackUrl}');
    if (!isAllowedCallbackUrl(body.data.callbackUrl)) {
      return fail(res, 400, 'callbackUrl must be https (http only on loopback)', 'INVALID_CALLBACK_URL');
    }
    callbackUrl = body.data.callbackUrl;
    return res.json({ success: true, callbackUrl });
  });

  router.get('/issuer/status', async (req, res) => {
    const who = await partner(req, res, 'issue');
    if (!who) return;
    const count = (status: CallbackStatusCode) => [...records.values()].filter((r) => r.status === status).length;
    return res.json({
      partnerId: who.partnerId,
      callbackUrl: callbackUrl ?? null,
      callbackSignatureScheme: options.scheme,
      callbacks: {
        notSend: count(CallbackStatus.NOT_SEND),
        pending: count(CallbackStatus.PENDING),
        delivered: count(CallbackStatus.DELIVERED),
      },
    });
  });

  router.post('/verifier/verify/initialize', (req, res) => {
    const body = initializeBody.safeParse(req.body);
    if (!body.success) return fail(res, 400, 'expected {issuerDid}');
    const record: CallbackRecord = {
      id: `cbr_${randomUUID()}`,
      issuerDid: body.data.issuerDid,
      status: CallbackStatus.NOT_SEND,
      attempts: [],
      duplicateStatuses: [],
      createdAt: new Date(),
    };
    records.set(record.id, record);
    return res.json({ callbackRecordId: record.id, status: record.status });
  });

  router.post('/emulator/verifier/consent', (req, res) => {
    const body = consentBody.safeParse(req.body);
    if (!body.success) return fail(res, 400, `invalid consent: ${body.error.issues[0]?.path.join('.')}`);
    const record = records.get(body.data.callbackRecordId);
    if (!record) return fail(res, 404, 'unknown callback record');
    if (record.status !== CallbackStatus.NOT_SEND) return fail(res, 409, 'consent already given for this record');
    if (!callbackUrl) return fail(res, 409, 'the issuer has no callback URL', 'NO_CALLBACK_URL');
    const { userId, verifierDid, schemaId, curve, duplicates } = body.data;
    Object.assign(record, { status: CallbackStatus.PENDING, userId, verifierDid, schemaId });
    const target = callbackUrl;
    void dispatcher
      .dispatch(target, { userId, verifierDid, schemaId }, { messageId: record.id, duplicates })
      .then((outcome) => {
        record.attempts = outcome.attempts;
        record.duplicateStatuses = outcome.duplicateStatuses;
        if (outcome.delivered) {
          record.status = CallbackStatus.DELIVERED;
          record.deliveredAt = new Date();
        }
      });
    return res.json({
      callbackRecordId: record.id,
      status: record.status,
      cakPrivateKey: options.cakPrivateKey({ userId, issuerDid: record.issuerDid, schemaId }, curve),
    });
  });

  router.get('/emulator/callbacks/:id', (req, res) => {
    const record = records.get(req.params.id);
    if (!record) return fail(res, 404, 'unknown callback record');
    return res.json(record);
  });

  router.get('/.well-known/callback-jwks.json', (_req, res) => {
    res.set('cache-control', 'public, max-age=300').json({ keys: [publicJwk] });
  });

  return { router, controls: { record: (id) => records.get(id), callbackUrl: () => callbackUrl } };
}
