import express, { Router, type Request } from 'express';
import { AppError } from '../domain/errors';
import { ISSUANCE_ID_PATTERN } from '../domain/ids';
import { IDEMPOTENCY_KEY_PATTERN, parseIssuanceJson, type IssuanceLimits } from '../domain/issuance-request';
import type { IssuanceDoc } from '../storage/issuances';
import type { RecordsRepository } from '../storage/records';
import { clientIdOf } from './auth';
import type { IssuanceIntake } from './issuance-intake';
import { readIssuanceMultipart } from './multipart';

/** How long the rest of a body refused mid-way is read (and dropped) before its connection is cut. */
const LINGER_MS = 10_000;

/**
 * A multipart body refused mid-way: read the rest without keeping or parsing it, so the client
 * (still sending) gets to read the answer rather than a reset, and cut the connection if the rest
 * takes longer than LINGER_MS.
 */
function discardRest(req: Request): void {
  const cut = setTimeout(() => req.socket.destroy(), LINGER_MS).unref();
  req.once('end', () => clearTimeout(cut));
  req.resume();
}

/**
 * `POST /v1/issuances` (JSON with base64 files, or multipart/form-data) -> 202 + status URL;
 * `GET /v1/issuances/:id` -> the state of each step, and the record version once stored.
 * A JSON body is parsed whole (its limit: the total of the files plus base64 overhead); a multipart
 * body streams, each file sealed into staging as it arrives, its limits checked as it goes
 * (src/api/multipart.ts). A multipart request refused mid-body is answered as soon as what it
 * staged is deleted; the rest of its body is dropped unread (`discardRest`).
 */
export function issuanceRoutes(deps: {
  intake: IssuanceIntake;
  records: RecordsRepository;
  limits: IssuanceLimits;
  /** where the status answer links each run: TEMPORAL_UI_URL and TEMPORAL_NAMESPACE (no link without it) */
  webUi?: WebUiLink;
}): Router {
  const router = Router();
  const slack = 256 * 1024;
  const jsonLimit = Math.ceil((deps.limits.maxTotalBytes * 4) / 3) + slack;
  const jsonBody = express.json({ limit: jsonLimit, strict: true });
  const tooLarge = new AppError(
    'BODY_TOO_LARGE',
    `request body exceeds the limit of ${jsonLimit} bytes (${(jsonLimit / (1024 * 1024)).toFixed(1)} MiB) ` +
      'for JSON; send large files as multipart/form-data',
    413,
    { limitBytes: jsonLimit },
  );

  const parseBody: express.RequestHandler = (req, res, next) => {
    if (req.is('application/json')) {
      return jsonBody(req, res, (err?: unknown) =>
        next((err as { type?: unknown } | undefined)?.type === 'entity.too.large' ? tooLarge : err),
      );
    }
    if (req.is('multipart/form-data')) return next(); // streamed by the route
    next(new AppError('UNSUPPORTED_MEDIA_TYPE', 'send application/json or multipart/form-data', 415));
  };

  async function acceptMultipart(req: Request, clientId: string, idempotencyKey: string | undefined) {
    const upload = deps.intake.upload(clientId, idempotencyKey);
    try {
      const request = await readIssuanceMultipart(req, deps.limits, upload);
      return await deps.intake.accept(clientId, idempotencyKey, request, upload);
    } catch (err) {
      if (!req.complete) discardRest(req);
      throw err;
    } finally {
      await upload.discard(); // what `accept` did not make the issuance's staging
    }
  }

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
    const { doc, replayed } = req.is('multipart/form-data')
      ? await acceptMultipart(req, clientId, idempotencyKey)
      : await deps.intake.accept(clientId, idempotencyKey, parseIssuanceJson(req.body, deps.limits));
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
    res.set('Cache-Control', 'no-store').json(await describe(doc, deps.records, deps.webUi));
  });
  return router;
}

/** The Temporal Web UI's address and the namespace the runs are in. */
export interface WebUiLink {
  url: string;
  namespace: string;
}

/** The run's page in the Temporal Web UI: `<url>/namespaces/<namespace>/workflows/<workflowId>` (its latest run). */
export function webUiWorkflowUrl(webUi: WebUiLink, workflowId: string): string {
  const base = webUi.url.replace(/\/+$/, '');
  return `${base}/namespaces/${encodeURIComponent(webUi.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

async function describe(doc: IssuanceDoc, records: RecordsRepository, webUi: WebUiLink | undefined) {
  const version = doc.version !== undefined ? await records.versionFor(doc._id) : null;
  return {
    issuanceId: doc._id,
    status: doc.status,
    // The run: its id (a keyed hash, no personal data) and its page in the Web UI, whose payloads
    // the UI shows decoded only to an operator signed in to the codec (docs/operations.md).
    workflowId: doc.workflowId,
    ...(webUi ? { webUiUrl: webUiWorkflowUrl(webUi, doc.workflowId) } : {}),
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
