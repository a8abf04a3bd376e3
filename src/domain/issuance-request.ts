import { createHash, createHmac } from 'node:crypto';
import { z } from 'zod';
import { AppError } from './errors';
import { FIELDS_ITEM_KIND, type CakCurve } from './issuance';
import { assertSafeJson, canonicalJson } from './safe-json';

/**
 * The issuance request, validated at the edge. Both wire forms (JSON with base64 files, and
 * multipart/form-data) end up as one `IssuanceRequest`; anything else is an AppError with a code.
 */

export interface IssuanceLimits {
  maxFileBytes: number;
  maxTotalBytes: number;
  maxFiles: number;
}

export interface IssuanceFile {
  kind: string;
  contentType: string;
  data: Buffer;
}

export interface IssuanceRequest {
  userId: string;
  issuerDid: string;
  credentialId: string;
  schemaId: string;
  curve: CakCurve;
  cakPublicKey?: string;
  credentialSubject: Record<string, unknown>;
  fields?: Record<string, string>;
  files: IssuanceFile[];
}

const identifier = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits, . _ : - (max 128)');
export const didSchema = z.string().regex(/^did:[a-z0-9]{1,32}:[A-Za-z0-9._:%-]{1,256}$/, 'expected a DID');
export const curveSchema = z.enum(['secp256r1', 'secp256k1']);
const fieldName = z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'letters, digits, _ and - (max 64)');
export const kindSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'lowercase letters, digits and - (max 32)')
  .refine((k) => k !== FIELDS_ITEM_KIND, `"${FIELDS_ITEM_KIND}" is the text-field group, not a file kind`);

export const ALLOWED_FILE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'application/pdf'] as const;
export const contentTypeSchema = z.enum(ALLOWED_FILE_TYPES);

const SUBJECT_LIMITS = { maxDepth: 6, maxKeys: 200 } as const;
const MAX_SUBJECT_BYTES = 16 * 1024;
const MAX_FIELD_CHARS = 10_000;
const MAX_FIELDS = 64;

const jsonValue: z.ZodType<unknown> = z.lazy(() =>
  z.union([
    z.string().max(4096),
    z.number().finite(),
    z.boolean(),
    z.null(),
    z.array(jsonValue).max(100),
    z.record(z.string(), jsonValue),
  ]),
);

const commonShape = {
  userId: identifier,
  issuerDid: didSchema,
  credentialId: identifier,
  schemaId: identifier,
  curve: curveSchema.default('secp256r1'),
  cakPublicKey: z.string().min(1).max(512).optional(),
  credentialSubject: z.record(z.string(), jsonValue),
  fields: z.record(fieldName, z.string().max(MAX_FIELD_CHARS)).optional(),
};

const jsonFileSchema = z.strictObject({
  kind: kindSchema,
  contentType: contentTypeSchema,
  data: z.string().min(1),
});

export const issuanceJsonSchema = z.strictObject({ ...commonShape, files: z.array(jsonFileSchema).optional() });
export const multipartTextSchema = z.strictObject(commonShape);

function zodToAppError(error: z.ZodError, raw: unknown): AppError {
  // an unknown field is reported before anything missing: it is the likelier mistake (or probe)
  const issue = error.issues.find((i) => i.code === 'unrecognized_keys') ?? error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    const field = [...issue.path.map(String), key].join('.');
    return new AppError('UNKNOWN_FIELD', `unknown field "${field}"`, 400, { field });
  }
  const field = issue.path.map(String).join('.');
  let v: unknown = raw;
  for (const p of issue.path)
    v = v !== null && typeof v === 'object' ? (v as Record<PropertyKey, unknown>)[p] : undefined;
  if (v === undefined && issue.code === 'invalid_type') {
    return new AppError('MISSING_FIELD', `"${field}" is required`, 400, { field });
  }
  if (issue.path[0] === 'curve') {
    return new AppError('INVALID_CURVE', 'curve must be secp256r1 or secp256k1', 400, { field });
  }
  if (issue.path[0] === 'files' && issue.path[2] === 'contentType') {
    return new AppError('UNSUPPORTED_FILE_TYPE', `${field} must be one of ${ALLOWED_FILE_TYPES.join(', ')}`, 400, {
      field,
    });
  }
  return new AppError('INVALID_FIELD', `${field || 'body'}: ${issue.message}`, 400, { field });
}

function checkSubject(subject: unknown): void {
  assertSafeJson(subject, SUBJECT_LIMITS, 'credentialSubject');
  if (Buffer.byteLength(JSON.stringify(subject)) > MAX_SUBJECT_BYTES) {
    throw new AppError('SUBJECT_TOO_LARGE', `credentialSubject exceeds ${MAX_SUBJECT_BYTES} bytes`, 400, {
      field: 'credentialSubject',
    });
  }
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

function decodeBase64(data: string, field: string, limits: IssuanceLimits): Buffer {
  if (Math.floor((data.length * 3) / 4) - 2 > limits.maxFileBytes) {
    throw new AppError('FILE_TOO_LARGE', `${field} exceeds ${limits.maxFileBytes} bytes`, 400, { field });
  }
  if (!BASE64.test(data)) throw new AppError('INVALID_BASE64', `${field} is not canonical base64`, 400, { field });
  return Buffer.from(data, 'base64');
}

const MAGIC: Record<(typeof ALLOWED_FILE_TYPES)[number], (b: Buffer) => boolean> = {
  'image/png': (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  'image/jpeg': (b) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  'image/webp': (b) =>
    b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP',
  'application/pdf': (b) => b.subarray(0, 5).toString('latin1') === '%PDF-',
};

function checkItems(request: IssuanceRequest, limits: IssuanceLimits): void {
  const { files, fields } = request;
  if (files.length === 0 && (!fields || Object.keys(fields).length === 0)) {
    throw new AppError('NO_ITEMS', 'at least one sensitive item (a text field or a file) is required', 400);
  }
  if (fields && Object.keys(fields).length > MAX_FIELDS) {
    throw new AppError('TOO_MANY_FIELDS', `at most ${MAX_FIELDS} text fields`, 400, { field: 'fields' });
  }
  if (files.length > limits.maxFiles) {
    throw new AppError('TOO_MANY_FILES', `at most ${limits.maxFiles} files`, 400, { field: 'files' });
  }
  const kinds = new Set<string>();
  let total = 0;
  files.forEach((file, i) => {
    const field = `files[${i}]`;
    if (kinds.has(file.kind)) {
      throw new AppError('DUPLICATE_ITEM', `more than one file of kind "${file.kind}"`, 400, {
        field,
        item: file.kind,
      });
    }
    kinds.add(file.kind);
    if (file.data.length === 0) throw new AppError('EMPTY_FILE', `${field} is empty`, 400, { field });
    if (file.data.length > limits.maxFileBytes) {
      throw new AppError('FILE_TOO_LARGE', `${field} exceeds ${limits.maxFileBytes} bytes`, 400, { field });
    }
    const magic = MAGIC[file.contentType as keyof typeof MAGIC];
    if (!magic(file.data)) {
      throw new AppError('FILE_CONTENT_MISMATCH', `${field} is not a ${file.contentType} file`, 400, {
        field,
        item: file.kind,
      });
    }
    total += file.data.length;
  });
  if (total > limits.maxTotalBytes) {
    throw new AppError('ITEMS_TOO_LARGE', `files exceed ${limits.maxTotalBytes} bytes in total`, 413);
  }
}

function withDefaults(parsed: z.infer<typeof multipartTextSchema>, files: IssuanceFile[]): IssuanceRequest {
  return {
    userId: parsed.userId,
    issuerDid: parsed.issuerDid,
    credentialId: parsed.credentialId,
    schemaId: parsed.schemaId,
    curve: parsed.curve,
    ...(parsed.cakPublicKey !== undefined ? { cakPublicKey: parsed.cakPublicKey } : {}),
    credentialSubject: parsed.credentialSubject,
    ...(parsed.fields !== undefined ? { fields: parsed.fields } : {}),
    files,
  };
}

/** The JSON form: `files[].data` is base64. */
export function parseIssuanceJson(body: unknown, limits: IssuanceLimits): IssuanceRequest {
  if (body === null || typeof body !== 'object' || Array.isArray(body)) {
    throw new AppError('INVALID_BODY', 'the body must be a JSON object', 400);
  }
  const raw = body as Record<string, unknown>;
  const { files: rawFiles, ...rest } = raw;
  assertSafeJson(rest, { maxDepth: 8, maxKeys: 400 });
  if (Array.isArray(rawFiles))
    rawFiles.forEach((f, i) => assertSafeJson(f, { maxDepth: 1, maxKeys: 10 }, `files[${i}]`));
  const parsed = issuanceJsonSchema.safeParse(body);
  if (!parsed.success) throw zodToAppError(parsed.error, body);
  checkSubject(parsed.data.credentialSubject);
  const files = (parsed.data.files ?? []).map((f, i) => ({
    kind: f.kind,
    contentType: f.contentType,
    data: decodeBase64(f.data, `files[${i}].data`, limits),
  }));
  const request = withDefaults(parsed.data, files);
  checkItems(request, limits);
  return request;
}

export interface MultipartPart {
  name: string;
  filename?: string;
  contentType?: string;
  data: Buffer;
}

const JSON_PARTS = new Set(['credentialSubject', 'fields']);

/** The multipart form: text parts for the scalars, JSON text parts for `credentialSubject` and `fields`, one file part per kind (part name = kind). */
export function parseIssuanceMultipart(parts: MultipartPart[], limits: IssuanceLimits): IssuanceRequest {
  const text: Record<string, unknown> = {};
  const files: IssuanceFile[] = [];
  for (const part of parts) {
    if (part.filename !== undefined) {
      const kind = kindSchema.safeParse(part.name);
      if (!kind.success)
        throw new AppError('INVALID_FIELD', `file part "${part.name}": ${kind.error.issues[0]?.message}`, 400, {
          field: part.name,
        });
      const type = contentTypeSchema.safeParse((part.contentType ?? '').split(';')[0]?.trim().toLowerCase());
      if (!type.success) {
        throw new AppError(
          'UNSUPPORTED_FILE_TYPE',
          `file part "${part.name}" must be one of ${ALLOWED_FILE_TYPES.join(', ')}`,
          400,
          { field: part.name },
        );
      }
      files.push({ kind: kind.data, contentType: type.data, data: part.data });
      continue;
    }
    const reason = part.name in text ? 'given twice' : undefined;
    if (reason) throw new AppError('INVALID_FIELD', `part "${part.name}" ${reason}`, 400, { field: part.name });
    const value = part.data.toString('utf8');
    if (JSON_PARTS.has(part.name)) {
      try {
        text[part.name] = JSON.parse(value) as unknown;
      } catch {
        throw new AppError('MALFORMED_JSON', `part "${part.name}" is not valid JSON`, 400, { field: part.name });
      }
    } else {
      text[part.name] = value;
    }
  }
  assertSafeJson(text, { maxDepth: 8, maxKeys: 400 });
  const parsed = multipartTextSchema.safeParse(text);
  if (!parsed.success) throw zodToAppError(parsed.error, text);
  checkSubject(parsed.data.credentialSubject);
  const request = withDefaults(parsed.data, files);
  checkItems(request, limits);
  return request;
}

/**
 * Keyed hash of the request's meaning (not its encoding): the same issuance sent as JSON or
 * multipart hashes the same. Keyed (HMAC), since a plain hash of a few text fields could be
 * confirmed by guessing.
 */
export function requestFingerprint(request: IssuanceRequest, secret: string): string {
  const canonical = canonicalJson({
    userId: request.userId,
    issuerDid: request.issuerDid,
    credentialId: request.credentialId,
    schemaId: request.schemaId,
    curve: request.curve,
    cakPublicKey: request.cakPublicKey ?? null,
    credentialSubject: request.credentialSubject,
    fields: request.fields ?? null,
    files: request.files.map((f) => ({
      kind: f.kind,
      contentType: f.contentType,
      sha256: createHash('sha256').update(f.data).digest('hex'),
    })),
  });
  return createHmac('sha256', secret).update(canonical).digest('hex');
}

export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9._:-]{8,128}$/;
