import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { z } from 'zod';
import { eciesDecrypt } from '../crypto/ecies';
import { CURVES, parsePrivateKey, type CakPrivateKey, type Curve } from '../crypto/keys';
import { curveSchema } from '../domain/issuance-request';
import { CheckFailedError, RefusedError, UsageError } from './exit-codes';
import { verifierToken, type VerifierKey } from './verifier-keys';

/**
 * The Verifier's side of the Semi-Decrypted Data API (docs/callbacks.md, "Verifier access") in one
 * call: mint the Verifier JWT, fetch the manifest, download every package through its signed URL,
 * check it against the manifest's `size` / `sha256` when the manifest gives them (of the package the
 * URL returns), decrypt it with the CAK private key (the same `eciesDecrypt` as `cak decrypt`) and
 * write the plaintext into a folder, one file per item: `<itemId>.<extension of its content type>`.
 */

const manifestSchema = z.object({
  authorizationId: z.string(),
  recordId: z.string(),
  version: z.number(),
  expiresAt: z.string().optional(),
  items: z.array(
    z.object({
      itemId: z.string().min(1),
      kind: z.string(),
      contentType: z.string(),
      curve: curveSchema,
      url: z.string().min(1),
      size: z.number().int().nonnegative().optional(),
      sha256: z
        .string()
        .regex(/^[0-9a-fA-F]{64}$/)
        .optional(),
    }),
  ),
});
type Manifest = z.infer<typeof manifestSchema>;
type ManifestItem = Manifest['items'][number];

export interface FetchedFile {
  itemId: string;
  kind: string;
  contentType: string;
  curve: Curve;
  /** absolute path of the plaintext file */
  path: string;
  /** plaintext bytes written */
  bytes: number;
  /** sha256 (hex) of the plaintext */
  sha256: string;
  /** whether the downloaded package was checked against the manifest's size / sha256 */
  checked: boolean;
}

interface FetchReport {
  apiUrl: string;
  verifierDid: string;
  userId: string;
  schemaId: string;
  authorizationId: string;
  recordId: string;
  version: number;
  outDir: string;
  files: FetchedFile[];
}

interface VerifierFetchOptions {
  apiUrl: string;
  verifierDid: string;
  verifierKey: VerifierKey;
  userId: string;
  schemaId: string;
  cakKey: CakKeyFile;
  /** absolute path of the output folder (created when missing) */
  outDir: string;
  onFile?: (file: FetchedFile) => void;
}

/**
 * A CAK private key file: the 32-byte scalar as hex (0x optional) or base64, as `cak decrypt
 * --private-key-file` takes it, or JSON holding it as `cakPrivateKey` (what the emulator's consent
 * and `/emulator/verifier/cak-private-key` answer) or `privateKey` (`cak keygen`), with an optional `curve`.
 */
interface CakKeyFile {
  text: string;
  curve?: Curve;
  shownAs: string;
}

export async function readCakKeyFile(file: string, shownAs = file): Promise<CakKeyFile> {
  let text: string;
  try {
    text = (await readFile(file, 'utf8')).trim();
  } catch (err) {
    throw new UsageError(
      `--cak-key ${shownAs}: cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
    );
  }
  if (!text.startsWith('{')) return { text, shownAs };
  let json: Record<string, unknown>;
  try {
    json = JSON.parse(text) as Record<string, unknown>;
  } catch {
    throw new UsageError(`--cak-key ${shownAs}: looks like JSON but does not parse`);
  }
  const key = json.cakPrivateKey ?? json.privateKey;
  if (typeof key !== 'string') {
    throw new UsageError(`--cak-key ${shownAs}: JSON without a "cakPrivateKey" or "privateKey" string`);
  }
  const curve = json.curve;
  if (curve !== undefined && !(CURVES as readonly unknown[]).includes(curve)) {
    throw new UsageError(`--cak-key ${shownAs}: unknown curve ${JSON.stringify(curve)}`);
  }
  return { text: key, shownAs, ...(curve !== undefined ? { curve: curve as Curve } : {}) };
}

const EXTENSIONS: Record<string, string> = {
  'application/json': 'json',
  'application/pdf': 'pdf',
  'image/png': 'png',
  'image/jpeg': 'jpg',
  'image/webp': 'webp',
  'image/gif': 'gif',
  'image/heic': 'heic',
  'image/tiff': 'tif',
  'text/plain': 'txt',
  'text/csv': 'csv',
  'application/xml': 'xml',
  'text/xml': 'xml',
};

/** `<itemId>.<ext>`: the item id kept to safe characters, the extension from the content type (`bin` if unknown). */
function fileNameFor(itemId: string, contentType: string): string {
  const base = itemId.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || 'item';
  const type = contentType.split(';')[0]!.trim().toLowerCase();
  return `${base}.${EXTENSIONS[type] ?? 'bin'}`;
}

interface ApiErrorBody {
  error?: { code?: unknown; message?: unknown };
}

/** Why the API refused, with a hint at the usual cause. */
const HINTS: Record<string, string> = {
  VERIFIER_UNAUTHENTICATED:
    'is this key registered for the verifierDid? An operator registers it with `cak verifier register-key` (or PUT /v1/admin/verifiers/keys)',
  AUTHORIZATION_REQUIRED:
    'no consent of this user for this Verifier and schema has reached the issuer (the consent callback may still be on its way)',
  AUTHORIZATION_REVOKED: 'an operator revoked this authorization',
  AUTHORIZATION_EXPIRED: "the consent's access window has closed: the user must consent again",
  NO_DATA: 'the issuer holds no data for this user and schema',
  RATE_LIMITED: 'too many requests: wait a minute',
};

async function refusal(res: Response, what: string): Promise<Error> {
  const text = await res.text().catch(() => '');
  let code = `HTTP_${res.status}`;
  let message = text.slice(0, 300) || res.statusText;
  try {
    const body = JSON.parse(text) as ApiErrorBody;
    if (typeof body.error?.code === 'string') code = body.error.code;
    if (typeof body.error?.message === 'string') message = body.error.message;
  } catch {
    /* not JSON: keep the text */
  }
  const hint = HINTS[code] ? ` (${HINTS[code]})` : '';
  const line = `${what} refused: ${res.status} ${code}: ${message}${hint}`;
  // 4xx: the API answered and said no; 5xx: it failed.
  return res.status >= 400 && res.status < 500 ? new RefusedError(code, line, res.status) : new Error(line);
}

function baseUrl(apiUrl: string): string {
  let url: URL;
  try {
    url = new URL(apiUrl);
  } catch {
    throw new UsageError(`--api ${apiUrl}: not a URL`);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new UsageError(`--api ${apiUrl}: not http(s)`);
  return apiUrl.replace(/\/+$/, '');
}

async function request(url: string, init: RequestInit, timeoutMs: number, what: string): Promise<Response> {
  try {
    return await fetch(url, { ...init, signal: AbortSignal.timeout(timeoutMs) });
  } catch (err) {
    const cause =
      (err as { cause?: { code?: string } }).cause?.code ?? (err instanceof Error ? err.message : String(err));
    throw new Error(`${what}: cannot reach ${url.split('?')[0]} (${cause})`);
  }
}

export async function verifierFetch(options: VerifierFetchOptions): Promise<FetchReport> {
  const api = baseUrl(options.apiUrl);
  const timeoutMs = 60_000;

  const fetchManifest = async (): Promise<Manifest> => {
    const token = await verifierToken(options.verifierDid, options.verifierKey);
    const query = new URLSearchParams({ userId: options.userId, schemaId: options.schemaId });
    const res = await request(
      `${api}/v1/verifier/data?${query.toString()}`,
      { headers: { authorization: `Bearer ${token}`, accept: 'application/json' } },
      timeoutMs,
      'manifest',
    );
    if (!res.ok) throw await refusal(res, 'manifest');
    const parsed = manifestSchema.safeParse(await res.json().catch(() => undefined));
    if (!parsed.success)
      throw new Error(`manifest: unexpected answer from ${api} (${parsed.error.issues[0]?.message})`);
    return parsed.data;
  };

  const keys = new Map<Curve, CakPrivateKey>();
  const cakKeyFor = (curve: Curve): CakPrivateKey => {
    if (options.cakKey.curve && options.cakKey.curve !== curve) {
      throw new UsageError(
        `--cak-key ${options.cakKey.shownAs}: a ${options.cakKey.curve} key, the data is on ${curve}`,
      );
    }
    let key = keys.get(curve);
    if (!key) keys.set(curve, (key = parsePrivateKey(options.cakKey.text, curve)));
    return key;
  };

  const download = async (item: ManifestItem): Promise<Response> =>
    request(/^https?:\/\//.test(item.url) ? item.url : `${api}${item.url}`, {}, timeoutMs, `package ${item.itemId}`);

  let manifest = await fetchManifest();
  await mkdir(options.outDir, { recursive: true, mode: 0o700 });
  const names = new Set<string>();
  const files: FetchedFile[] = [];
  for (const listed of manifest.items) {
    let item = listed;
    let res = await download(item);
    if (res.status === 403) {
      const why = await refusal(res, `package ${item.itemId}`);
      if (!(why instanceof RefusedError) || why.code !== 'URL_EXPIRED') throw why;
      // the signed URLs outlived SIGNED_URL_TTL_SECONDS (a slow download): ask for fresh ones, once
      manifest = await fetchManifest();
      const fresh = manifest.items.find((i) => i.itemId === item.itemId);
      if (!fresh) throw new RefusedError('PACKAGE_NOT_FOUND', `package ${item.itemId}: no longer in the manifest`);
      item = fresh;
      res = await download(item);
    }
    if (!res.ok) throw await refusal(res, `package ${item.itemId}`);
    const pkg = Buffer.from(await res.arrayBuffer());
    if (item.size !== undefined && pkg.length !== item.size) {
      throw new CheckFailedError(
        'PACKAGE_SIZE_MISMATCH',
        `package ${item.itemId}: ${pkg.length} bytes, the manifest says ${item.size}`,
      );
    }
    const pkgHash = createHash('sha256').update(pkg).digest('hex');
    if (item.sha256 !== undefined && pkgHash !== item.sha256.toLowerCase()) {
      throw new CheckFailedError(
        'PACKAGE_SHA256_MISMATCH',
        `package ${item.itemId}: sha256 ${pkgHash}, the manifest says ${item.sha256}`,
      );
    }
    const plain = eciesDecrypt(cakKeyFor(item.curve), pkg);

    const first = fileNameFor(item.itemId, item.contentType);
    let name = first;
    for (let n = 2; names.has(name); n += 1) name = first.replace(/(\.[^.]+)$/, `-${n}$1`);
    names.add(name);
    const path = join(options.outDir, name);
    const partial = `${path}.partial`;
    await writeFile(partial, plain, { mode: 0o600 });
    await rename(partial, path);
    const file: FetchedFile = {
      itemId: item.itemId,
      kind: item.kind,
      contentType: item.contentType,
      curve: item.curve,
      path,
      bytes: plain.length,
      sha256: createHash('sha256').update(plain).digest('hex'),
      checked: item.size !== undefined || item.sha256 !== undefined,
    };
    files.push(file);
    options.onFile?.(file);
  }
  return {
    apiUrl: api,
    verifierDid: options.verifierDid,
    userId: options.userId,
    schemaId: options.schemaId,
    authorizationId: manifest.authorizationId,
    recordId: manifest.recordId,
    version: manifest.version,
    outDir: options.outDir,
    files,
  };
}
