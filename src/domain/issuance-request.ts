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

/** A file of the JSON form: its bytes, decoded from base64. */
export interface IssuanceFile {
  kind: string;
  contentType: string;
  data: Buffer;
}

/**
 * A file part of the multipart form: streamed, checked and sealed into staging while the body
 * arrived (never held whole), so only what it was is kept here.
 */
export interface StagedFile {
  kind: string;
  contentType: string;
  size: number;
  /** sha256 (hex) of the plaintext, for the request fingerprint */
  sha256: string;
  /** the sealed bytes, not yet a staging entry (src/storage/staging.ts `openStream`) */
  sealed: { bytesId: string; size: number; sha256: string };
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
  /** multipart only: the file parts, already sealed into staging */
  stagedFiles?: StagedFile[];
}

export const identifierSchema = z
  .string()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'letters, digits, . _ : - (max 128)');
export const didSchema = z.string().regex(/^did:[a-z0-9]{1,32}:[A-Za-z0-9._:%-]{1,256}$/, 'expected a DID');
export const curveSchema = z.enum(['secp256r1', 'secp256k1']);
const fieldName = z.string().regex(/^[A-Za-z][A-Za-z0-9_-]{0,63}$/, 'letters, digits, _ and - (max 64)');
export const kindSchema = z
  .string()
  .regex(/^[a-z][a-z0-9-]{0,31}$/, 'lowercase letters, digits and - (max 32)')
  .refine((k) => k !== FIELDS_ITEM_KIND, `"${FIELDS_ITEM_KIND}" is the text-field group, not a file kind`);

export const ALLOWED_FILE_TYPES = ['image/png', 'image/jpeg', 'image/webp', 'application/pdf'] as const;
const contentTypeSchema = z.enum(ALLOWED_FILE_TYPES);

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
  userId: identifierSchema,
  issuerDid: didSchema,
  credentialId: identifierSchema,
  schemaId: identifierSchema,
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

const sizeText = (bytes: number) => `${bytes} bytes (${Number((bytes / (1024 * 1024)).toFixed(2))} MiB)`;

function fileTooLarge(field: string, limits: IssuanceLimits, item?: string): AppError {
  return new AppError(
    'FILE_TOO_LARGE',
    `${field} exceeds the limit of ${sizeText(limits.maxFileBytes)} per file`,
    400,
    {
      field,
      ...(item !== undefined ? { item } : {}),
      limitBytes: limits.maxFileBytes,
    },
  );
}

function itemsTooLarge(limits: IssuanceLimits): AppError {
  return new AppError('ITEMS_TOO_LARGE', `files exceed the limit of ${sizeText(limits.maxTotalBytes)} in total`, 413, {
    limitBytes: limits.maxTotalBytes,
  });
}

const BASE64_ALPHABET = new Uint8Array(128);
for (const c of 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/')
  BASE64_ALPHABET[c.charCodeAt(0)] = 1;

/**
 * Canonical (padded, standard alphabet) base64, checked by one linear scan, at any size (a regular
 * expression over it threw RangeError from about 8 million characters on), the same rule as
 * `^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$`.
 */
export function isCanonicalBase64(data: string): boolean {
  if (data.length % 4 !== 0) return false;
  let end = data.length;
  if (data.endsWith('==')) end -= 2;
  else if (data.endsWith('=')) end -= 1;
  for (let i = 0; i < end; i += 1) {
    const c = data.charCodeAt(i);
    if (c >= 128 || BASE64_ALPHABET[c] !== 1) return false;
  }
  return true;
}

function decodeBase64(data: string, field: string, limits: IssuanceLimits): Buffer {
  if (Math.floor((data.length * 3) / 4) - 2 > limits.maxFileBytes) throw fileTooLarge(field, limits);
  if (!isCanonicalBase64(data)) {
    throw new AppError('INVALID_BASE64', `${field} is not canonical base64`, 400, { field });
  }
  return Buffer.from(data, 'base64');
}

type FileType = (typeof ALLOWED_FILE_TYPES)[number];
/** bytes enough for every magic check below */
const MAGIC_BYTES = 12;
const MAGIC: Record<FileType, (b: Buffer) => boolean> = {
  'image/png': (b) => b.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])),
  'image/jpeg': (b) => b.length > 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff,
  'image/webp': (b) =>
    b.subarray(0, 4).toString('latin1') === 'RIFF' && b.subarray(8, 12).toString('latin1') === 'WEBP',
  'application/pdf': (b) => b.subarray(0, 5).toString('latin1') === '%PDF-',
};

function contentMismatch(field: string, kind: string, contentType: string): AppError {
  return new AppError('FILE_CONTENT_MISMATCH', `${field} is not a ${contentType} file`, 400, { field, item: kind });
}

function checkItems(request: IssuanceRequest, limits: IssuanceLimits): void {
  const { fields } = request;
  const files: { kind: string; contentType: string; size: number; data?: Buffer }[] = [
    ...request.files.map((f) => ({ ...f, size: f.data.length })),
    ...(request.stagedFiles ?? []), // size and content were checked as they streamed
  ];
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
    if (file.size === 0) throw new AppError('EMPTY_FILE', `${field} is empty`, 400, { field });
    if (file.size > limits.maxFileBytes) throw fileTooLarge(field, limits, file.kind);
    if (file.data && !MAGIC[file.contentType as FileType](file.data)) {
      throw contentMismatch(field, file.kind, file.contentType);
    }
    total += file.size;
  });
  if (total > limits.maxTotalBytes) throw itemsTooLarge(limits);
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

const JSON_PARTS = new Set(['credentialSubject', 'fields']);

/**
 * The multipart form, part by part as it streams (src/api/multipart.ts): text parts for the
 * scalars, JSON text parts for `credentialSubject` and `fields`, one file part per kind (part name =
 * kind). Text parts come first: the first file part is refused unless the text parts before it make
 * a valid request, so nothing is staged for a request that could be refused without its files.
 */
export function addTextPart(text: Record<string, unknown>, name: string, value: string): void {
  if (Object.hasOwn(text, name)) {
    throw new AppError('INVALID_FIELD', `part "${name}" given twice`, 400, { field: name });
  }
  if (!JSON_PARTS.has(name)) {
    text[name] = value;
    return;
  }
  try {
    text[name] = JSON.parse(value) as unknown;
  } catch {
    throw new AppError('MALFORMED_JSON', `part "${name}" is not valid JSON`, 400, { field: name });
  }
}

/** The request the text parts make, without its files. */
export function parseMultipartText(text: Record<string, unknown>): IssuanceRequest {
  assertSafeJson(text, { maxDepth: 8, maxKeys: 400 });
  const parsed = multipartTextSchema.safeParse(text);
  if (!parsed.success) throw zodToAppError(parsed.error, text);
  checkSubject(parsed.data.credentialSubject);
  return withDefaults(parsed.data, []);
}

/** A file part's name (its kind) and declared type, checked before any of its bytes. */
export function checkFilePart(name: string, declaredType: string): { kind: string; contentType: FileType } {
  const kind = kindSchema.safeParse(name);
  if (!kind.success) {
    throw new AppError('INVALID_FIELD', `file part "${name}": ${kind.error.issues[0]?.message}`, 400, { field: name });
  }
  const type = contentTypeSchema.safeParse(declaredType.split(';')[0]?.trim().toLowerCase());
  if (!type.success) {
    throw new AppError(
      'UNSUPPORTED_FILE_TYPE',
      `file part "${name}" must be one of ${ALLOWED_FILE_TYPES.join(', ')}`,
      400,
      {
        field: name,
      },
    );
  }
  return { kind: kind.data, contentType: type.data };
}

/** One more file part: the count and kinds of the files so far. */
export function checkFileCount(kinds: readonly string[], kind: string, limits: IssuanceLimits): void {
  if (kinds.includes(kind)) {
    throw new AppError('DUPLICATE_ITEM', `more than one file of kind "${kind}"`, 400, { field: kind, item: kind });
  }
  if (kinds.length + 1 > limits.maxFiles) {
    throw new AppError('TOO_MANY_FILES', `at most ${limits.maxFiles} files`, 400, { field: 'files' });
  }
}

/**
 * Checks a file part's bytes as they stream: each limit the moment it is passed (this file's, and
 * the total with `before` bytes of earlier files), the magic bytes as soon as there are enough.
 */
export function fileStreamCheck(
  file: { kind: string; contentType: FileType },
  field: string,
  limits: IssuanceLimits,
  before: number,
) {
  const hash = createHash('sha256');
  let size = 0;
  let head: Buffer | undefined = Buffer.alloc(0);
  const checkHead = (bytes: Buffer) => {
    if (!MAGIC[file.contentType](bytes)) throw contentMismatch(field, file.kind, file.contentType);
    head = undefined;
  };
  return {
    push(chunk: Buffer): void {
      size += chunk.length;
      if (size > limits.maxFileBytes) throw fileTooLarge(field, limits, file.kind);
      if (before + size > limits.maxTotalBytes) throw itemsTooLarge(limits);
      if (head) {
        head = Buffer.concat([head, chunk.subarray(0, MAGIC_BYTES)]);
        if (head.length >= MAGIC_BYTES) checkHead(head);
      }
      hash.update(chunk);
    },
    end(): { size: number; sha256: string } {
      if (size === 0) throw new AppError('EMPTY_FILE', `${field} is empty`, 400, { field });
      if (head) checkHead(head);
      return { size, sha256: hash.digest('hex') };
    },
  };
}

/** The whole multipart request, once its body ended: the text's request and the staged file parts. */
export function completeMultipart(
  request: IssuanceRequest,
  stagedFiles: StagedFile[],
  limits: IssuanceLimits,
): IssuanceRequest {
  const complete = { ...request, stagedFiles };
  checkItems(complete, limits);
  return complete;
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
    files: [
      ...request.files.map((f) => ({
        kind: f.kind,
        contentType: f.contentType,
        sha256: createHash('sha256').update(f.data).digest('hex'),
      })),
      ...(request.stagedFiles ?? []).map((f) => ({ kind: f.kind, contentType: f.contentType, sha256: f.sha256 })),
    ],
  });
  return createHmac('sha256', secret).update(canonical).digest('hex');
}

export const IDEMPOTENCY_KEY_PATTERN = /^[A-Za-z0-9._:-]{8,128}$/;
