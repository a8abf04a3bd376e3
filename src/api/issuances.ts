import express, { Router, type Request } from 'express';
import { AppError } from '../domain/errors';
import { ISSUANCE_ID_PATTERN } from '../domain/ids';
import {
  IDEMPOTENCY_KEY_PATTERN,
  parseIssuanceJson,
  parseIssuanceMultipart,
  type IssuanceLimits,
} from '../domain/issuance-request';
import type { IssuanceDoc } from '../storage/issuances';
import type { RecordsRepository } from '../storage/records';
import { clientIdOf } from './auth';
import type { IssuanceIntake } from './issuance-intake';
import { parseMultipart } from './multipart';

/**
 * `POST /v1/issuances` (JSON with base64 files, or multipart/form-data) -> 202 + status URL;
 * `GET /v1/issuances/:id` -> the state of each step, and the record version once stored.
 * Body limits follow the item limits: the total of the files, plus base64 overhead for JSON.
 */
export function issuanceRoutes(deps: {
  intake: IssuanceIntake;
  records: RecordsRepository;
  limits: IssuanceLimits;
}): Router {
  const router = Router();
  const slack = 256 * 1024;
  const jsonBody = express.json({ limit: Math.ceil((deps.limits.maxTotalBytes * 4) / 3) + slack, strict: true });
  const multipartBody = express.raw({ type: 'multipart/form-data', limit: deps.limits.maxTotalBytes + slack });

  const parseBody: express.RequestHandler = (req, res, next) => {
    if (req.is('application/json')) return jsonBody(req, res, next);
    if (req.is('multipart/form-data')) return multipartBody(req, res, next);
    next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'send application/json or multipart/form-data', 415));
  };

  function idempotencyKeyOf(req: Request): string | undefined {
    const key = req.get('idempotency-key');
    if (key === undefined) return undefined;
    if (!IDEMPOTENCY_KEY_PATTERN.test(key)) {
      throw new AppError('INVALID_IDEMPOTENCY_KEY', 'Idempotency-Key: 8-128 letters, digits, . _ : -', 400);
    }
    return key;
  }

  router.post('/v1/issuances', parseBody, async (req, res) => {
    const clientId = clientIdOf(res.locals);
    const idempotencyKey = idempotencyKeyOf(req);
    const request = req.is('multipart/form-data')
      ? parseIssuanceMultipart(parseMultipart(req.body as Buffer, req.get('content-type') ?? ''), deps.limits)
      : parseIssuanceJson(req.body, deps.limits);
    const { doc, replayed } = await deps.intake.accept(clientId, idempotencyKey, request);
    const statusUrl = `/v1/issuances/${doc._id}`;
    res
      .status(202)
      .location(statusUrl)
      .set(replayed ? { 'Idempotent-Replayed': 'true' } : {})
      .json({ issuanceId: doc._id, status: doc.status, statusUrl });
  });

  router.get('/v1/issuances/:id', async (req, res) => {
    const clientId = clientIdOf(res.locals);
    const id = req.params.id;
    const doc = typeof id === 'string' && ISSUANCE_ID_PATTERN.test(id) ? await deps.intake.get(id) : null;
    if (!doc || doc.clientId !== clientId) throw new AppError('ISSUANCE_NOT_FOUND', 'no such issuance', 404);
    res.set('Cache-Control', 'no-store').json(await describe(doc, deps.records));
  });
  return router;
}

async function describe(doc: IssuanceDoc, records: RecordsRepository) {
  const version = doc.version !== undefined ? await records.versionFor(doc._id) : null;
  return {
    issuanceId: doc._id,
    status: doc.status,
    schemaId: doc.schemaId,
    curve: doc.curve,
    keySource: doc.keySource,
    steps: Object.fromEntries(
      Object.entries(doc.steps).map(([name, s]) => [
        name,
        { state: s.state, ...(s.at ? { at: s.at.toISOString() } : {}) },
      ]),
    ),
    ...(doc.error ? { error: doc.error } : {}),
    ...(version
      ? {
          record: {
            recordId: version.recordId,
            version: version.version,
            items: version.manifest.map((m) => ({
              itemId: m.itemId,
              kind: m.kind,
              contentType: m.contentType,
              size: m.size,
              sha256: m.sha256,
              curve: m.curve,
              keyId: m.keyId,
              packageId: m.packageId,
            })),
          },
        }
      : {}),
    createdAt: doc.createdAt.toISOString(),
    updatedAt: doc.updatedAt.toISOString(),
  };
}
