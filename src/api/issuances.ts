import express, { Router, type Request } from 'express';
import { z } from 'zod';
import { DEV_ISSUER_DID } from '../config';
import { AppError } from '../domain/errors';
import { ISSUANCE_ID_PATTERN } from '../domain/ids';
import {
  ALLOWED_FILE_TYPES,
  curveSchema,
  IDEMPOTENCY_KEY_PATTERN,
  issuanceJsonSchema,
  kindSchema,
  multipartTextSchema,
  parseIssuanceJson,
  type IssuanceLimits,
} from '../domain/issuance-request';
import { ISSUANCE_STEPS, type StepState } from '../domain/issuance';
import { withStoredVersion, type IssuanceDoc } from '../storage/issuances';
import type { RecordsRepository } from '../storage/records';
import { clientIdOf } from './auth';
import type { IssuanceIntake } from './issuance-intake';
import { readIssuanceMultipart } from './multipart';
import { FRAMING_400, NO_STORE, refusal, route, SAFE_JSON_ERRORS } from './routes';

/** The multipart form: the text parts of `multipartTextSchema` plus one file part per item kind. */
const issuanceMultipartForm = multipartTextSchema
  .catchall(
    z.string().meta({
      description:
        'a file part: its name is the item kind (lowercase letters, digits and -, max 32; not "fields"), ' +
        `its Content-Type one of ${ALLOWED_FILE_TYPES.join(', ')}`,
      contentMediaType: 'application/octet-stream',
    }),
  )
  .superRefine((form, ctx) => {
    for (const name of Object.keys(form)) {
      if (name in multipartTextSchema.shape) continue;
      const kind = kindSchema.safeParse(name);
      if (!kind.success) ctx.addIssue({ code: 'custom', path: [name], message: kind.error.issues[0]!.message });
    }
  });

const status = z.enum(['accepted', 'running', 'stored', 'completed', 'failed']);
const stepState = z.object({
  state: z.enum(['pending', 'running', 'completed', 'failed']),
  at: z.iso.datetime().optional(),
});
const workflowId = 'issuance-79wqeCUbk1ECdfhC1NpfCeby';
const issuanceStatus = z.object({
  issuanceId: z.string(),
  status,
  workflowId: z.string().meta({
    description: 'the Temporal workflow id of the issuance run (`issuance-<keyed hash>`, no personal data)',
    examples: [workflowId],
  }),
  webUiUrl: z
    .url()
    .optional()
    .meta({
      description:
        'the run in the Temporal Web UI: `TEMPORAL_UI_URL` + `/namespaces/<TEMPORAL_NAMESPACE>/workflows/<workflowId>`; ' +
        'its payloads show decoded only to an operator signed in to the codec endpoint (docs/operations.md)',
      examples: [`http://127.0.0.1:8233/namespaces/default/workflows/${workflowId}`],
    }),
  schemaId: z.string(),
  curve: curveSchema,
  keySource: z.enum(['client', 'platform']),
  steps: z.object({ issue: stepState, encrypt: stepState, store: stepState, shred: stepState }),
  error: z.object({ type: z.string(), message: z.string() }).optional(),
  record: z
    .object({
      recordId: z.string(),
      version: z.number().int(),
      items: z.array(
        z.object({
          ...{ itemId: z.string(), kind: z.string(), contentType: z.string(), size: z.number().int() },
          ...{ sha256: z.string(), curve: z.string(), keyId: z.string(), packageId: z.string() },
        }),
      ),
    })
    .optional(),
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

const PNG_1PX = 'iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==';
const program = {
  userId: 'user-123',
  issuerDid: DEV_ISSUER_DID,
  credentialId: 'prog-kyc-basic',
  schemaId: 'kyc-basic',
};

export const createIssuance = route({
  method: 'post',
  path: '/v1/issuances',
  operationId: 'createIssuance',
  summary: 'Issue a credential and store its sensitive items encrypted',
  description:
    'Validates everything, stages the raw items (encrypted, short-lived) and starts the issuance workflow ' +
    '(issue -> encrypt -> store -> shred). Nothing is recorded, staged or started before every check passed. ' +
    'Same `Idempotency-Key` and same request: the same issuance, `Idempotent-Replayed: true`.',
  tag: 'issuance',
  auth: 'apiKey',
  headers: z.object({
    'Idempotency-Key': z.string().regex(IDEMPOTENCY_KEY_PATTERN).optional().meta({
      description: 'repeats with the same key and request land on the same issuance (per API client)',
    }),
  }),
  examples: { 'Idempotency-Key': 'order-2024-0001' },
  body: {
    content: {
      'application/json': {
        name: 'IssuanceRequest',
        schema: issuanceJsonSchema,
        examples: {
          withFile: {
            summary: 'text fields and one ID image (base64)',
            value: {
              ...program,
              credentialSubject: { level: 'basic', country: 'DE' },
              fields: { fullName: 'Ada Lovelace', dateOfBirth: '1815-12-10' },
              files: [{ kind: 'id-front', contentType: 'image/png', data: PNG_1PX }],
            },
          },
          fieldsOnly: {
            summary: 'text fields only, on secp256k1, with the CAK key from the SDK',
            value: {
              ...program,
              curve: 'secp256k1',
              cakPublicKey: '0271ee9620458a3251d92b94a72aa9302306775604eb057dd39d6af8384ec050e1',
              credentialSubject: { level: 'basic' },
              fields: { fullName: 'Ada Lovelace' },
            },
          },
        },
      },
      'multipart/form-data': {
        name: 'IssuanceMultipartForm',
        schema: issuanceMultipartForm,
        encoding: {
          credentialSubject: { contentType: 'application/json' },
          fields: { contentType: 'application/json' },
        },
        examples: {
          withFile: {
            summary: 'the same scalars as text parts, JSON parts, one file part per kind',
            value: {
              ...program,
              credentialSubject: { level: 'basic' },
              fields: { fullName: 'Ada Lovelace' },
              'id-front': '<PNG bytes>',
            },
          },
        },
      },
    },
  },
  responses: {
    202: {
      description: 'accepted (or replayed); poll `statusUrl`',
      name: 'IssuanceAccepted',
      schema: z.object({ issuanceId: z.string().regex(ISSUANCE_ID_PATTERN), status, statusUrl: z.string() }),
      headers: {
        Location: { description: 'the status URL', schema: { type: 'string' } },
        'Idempotent-Replayed': { description: '`true` on a replay', schema: { type: 'string' } },
      },
    },
  },
  errors: {
    400: refusal(
      'invalid request (nothing stored or started)',
      ...['MALFORMED_JSON', 'INVALID_BODY', 'UNKNOWN_PROGRAM', 'PROGRAM_SCHEMA_MISMATCH', 'ISSUER_SCHEMA_MISMATCH'],
      ...['MALFORMED_MULTIPART', 'TEXT_PART_AFTER_FILE', ...FRAMING_400, 'MISSING_FIELD', 'UNKNOWN_FIELD'],
      ...['INVALID_FIELD', 'INVALID_CURVE', 'UNSUPPORTED_FILE_TYPE', ...SAFE_JSON_ERRORS, 'SUBJECT_TOO_LARGE'],
      ...['INVALID_BASE64', 'FILE_TOO_LARGE', 'NO_ITEMS', 'TOO_MANY_FIELDS', 'TOO_MANY_FILES', 'DUPLICATE_ITEM'],
      ...['EMPTY_FILE', 'FILE_CONTENT_MISMATCH', 'UNKNOWN_SCHEMA', 'ITEM_NOT_ALLOWED', 'INVALID_CAK_PUBLIC_KEY'],
      'INVALID_IDEMPOTENCY_KEY',
    ),
    403: refusal(
      'the issuer DID is not served, the client is not granted it (or the schema), or another client holds the record',
      ...['ISSUER_NOT_SERVED', 'CLIENT_NOT_PERMITTED', 'RECORD_OWNED_BY_ANOTHER_CLIENT'],
    ),
    409: refusal('the Idempotency-Key was used with another request', 'IDEMPOTENCY_KEY_REUSED'),
    413: refusal('body or files over the limits', 'BODY_TOO_LARGE', 'ITEMS_TOO_LARGE'),
    415: refusal(
      'neither JSON nor multipart/form-data, a charset other than UTF-8, or an unknown Content-Encoding',
      ...['UNSUPPORTED_MEDIA_TYPE', 'UNSUPPORTED_CHARSET', 'UNSUPPORTED_ENCODING'],
    ),
    503: refusal('could not stage or start; retry with the same key', 'UNAVAILABLE'),
  },
});

export const getIssuance = route({
  method: 'get',
  path: '/v1/issuances/{id}',
  operationId: 'getIssuance',
  summary: 'State of an issuance, per step, and its stored record version',
  description:
    'Also names the Temporal run (`workflowId`) and links it in the Web UI (`webUiUrl`), where an operator ' +
    'signed in to the codec endpoint reads its decoded input (docs/operations.md, "Inspect runs in the Web UI").',
  tag: 'issuance',
  auth: 'apiKey',
  params: z.object({
    id: z.string().regex(ISSUANCE_ID_PATTERN).meta({ description: 'the issuance id (another client’s is not found)' }),
  }),
  examples: { id: 'iss_AAAAAAAAAAAAAAAAAAAAAAAA' },
  responses: {
    200: { description: 'the issuance', name: 'IssuanceStatus', schema: issuanceStatus, headers: NO_STORE },
  },
  errors: { 404: refusal('no such issuance for this client', 'ISSUANCE_NOT_FOUND') },
});

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

  createIssuance.on(router, parseBody, async (req, res) => {
    const clientId = clientIdOf(res.locals);
    const idempotencyKey = idempotencyKeyOf(req);
    const { doc, replayed } = req.is('multipart/form-data')
      ? await acceptMultipart(req, clientId, idempotencyKey)
      : await deps.intake.accept(clientId, idempotencyKey, parseIssuanceJson(req.body, deps.limits));
    const statusUrl = `/v1/issuances/${doc._id}`;
    createIssuance.send(res.location(statusUrl).set(replayed ? { 'Idempotent-Replayed': 'true' } : {}), 202, {
      issuanceId: doc._id,
      status: doc.status,
      statusUrl,
    });
  });

  getIssuance.on(router, async (req, res) => {
    const clientId = clientIdOf(res.locals);
    const id = req.params.id;
    const doc = typeof id === 'string' && ISSUANCE_ID_PATTERN.test(id) ? await deps.intake.get(id) : null;
    if (!doc || doc.clientId !== clientId) throw new AppError('ISSUANCE_NOT_FOUND', 'no such issuance', 404);
    getIssuance.send(res.set('Cache-Control', 'no-store'), 200, await describe(doc, deps.records, deps.webUi));
  });
  return router;
}

/** The Temporal Web UI's address and the namespace the runs are in. */
export interface WebUiLink {
  url: string;
  namespace: string;
}

/** The run's page in the Temporal Web UI: `<url>/namespaces/<namespace>/workflows/<workflowId>` (its latest run). */
function webUiWorkflowUrl(webUi: WebUiLink, workflowId: string): string {
  const base = webUi.url.replace(/\/+$/, '');
  return `${base}/namespaces/${encodeURIComponent(webUi.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

/** While the run is going (`running`, `stored`) the first step not yet completed is the one running. */
function shownState(doc: IssuanceDoc, step: string, state: StepState): StepState {
  if (state !== 'pending' || (doc.status !== 'running' && doc.status !== 'stored')) return state;
  return ISSUANCE_STEPS.find((s) => doc.steps[s]?.state !== 'completed') === step ? 'running' : state;
}

async function describe(
  written: IssuanceDoc,
  records: RecordsRepository,
  webUi: WebUiLink | undefined,
): Promise<z.input<typeof issuanceStatus>> {
  const version = written.status === 'accepted' ? null : await records.versionFor(written._id);
  const doc = withStoredVersion(written, version?.createdAt);
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
        { state: shownState(doc, name, s.state), ...(s.at ? { at: s.at.toISOString() } : {}) },
      ]),
    ) as z.input<typeof issuanceStatus>['steps'],
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
