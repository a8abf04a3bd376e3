/**
 * `npm run demo`: the whole CAK lifecycle against the local system, narrated step by step.
 *
 *   1. issue: JSON on P-256 and multipart with a file on secp256k1 (and a third schema routed
 *      to log-only), with each run's Temporal Web UI link
 *   2. the database (and Temporal's history) holds only ciphertext
 *   3. the user consents in the AIR emulator; its signed callback reaches our API
 *   4. each authorization run verifies, routes and audits
 *   5. the Verifier: key registration, JWT, manifest, signed URL, download
 *   6. `cak decrypt` opens each package and the bytes are compared (and `cak verifier fetch`, if present)
 *   7. `cak audit verify` checks the keyed audit chain
 *
 * It uses the system `npm start` runs (the same environment and src/config.ts defaults). When the
 * API's /readyz does not answer, it starts `npm start` itself (logs in .data/logs/demo-npm-start.log)
 * and stops it at the end. Any failure exits 1 naming the step. Artifacts (keys, downloaded packages,
 * decrypted files) stay in .data/demo/<run>/; the Web UI links also go to .data/demo/last-run.json
 * (read by `npm run screenshot`).
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { isAbsolute, join, relative, resolve, sep } from 'node:path';
import { crc32, deflateSync } from 'node:zlib';
import type { Client } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import { decodeJwt, decodeProtectedHeader, importJWK, SignJWT, type JWK } from 'jose';
import { BSON, MongoClient, type Db } from 'mongodb';
import { DEV_ADMIN_TOKEN, DEV_API_KEY, DEV_ISSUER_DID, loadConfig, type Config } from '../src/config';
import { parseKeyring } from '../src/crypto/keyring';
import { authorizationIdFor, authorizationWorkflowId } from '../src/domain/callback';
import { canonicalJson } from '../src/domain/safe-json';
import { packagesRepository } from '../src/storage/packages';
import { AUDIT_SEAL_SCHEDULE_ID } from '../src/workers/schedules';
import { connectTemporalClient } from '../src/temporal/connection';

// ---------------------------------------------------------------------------------------------
// Output

const color = process.stdout.isTTY && !process.env.NO_COLOR;
const paint = (code: string) => (text: string) => (color ? `\x1b[${code}m${text}\x1b[0m` : text);
const bold = paint('1');
const dim = paint('2');
const green = paint('32');
const red = paint('31');
const cyan = paint('36');

const out = (line = '') => process.stdout.write(`${line}\n`);
/** narration: plain words, indented under the step title */
const say = (text: string) => out(`    ${text}`);
const ok = (text: string) => out(`    ${green('ok')}  ${text}`);
const look = (text: string) => out(`    ${cyan('look')} ${text}`);
const cmd = (text: string) => out(`    ${dim('$')} ${text}`);
const show = (value: unknown) =>
  out(
    JSON.stringify(value, null, 2)
      .split('\n')
      .map((l) => `      ${dim(l)}`)
      .join('\n'),
  );
const short = (text: string, keep = 24) =>
  text.length > keep * 2 + 3 ? `${text.slice(0, keep)}…${text.slice(-8)}` : text;

export class DemoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DemoError';
  }
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new DemoError(message);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, probe: () => Promise<T | undefined>, timeoutMs: number, everyMs = 250) {
  const deadline = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const value = await probe();
      if (value !== undefined) return value;
    } catch (err) {
      if (err instanceof DemoError) throw err; // a refusal or a failed run: no point in waiting
      lastError = err; // e.g. a run Temporal does not know yet
    }
    if (Date.now() > deadline) {
      const why = lastError instanceof Error ? ` (last error: ${lastError.message})` : '';
      throw new DemoError(`${what}: not after ${Math.round(timeoutMs / 1000)} s${why}`);
    }
    await sleep(everyMs);
  }
}

// ---------------------------------------------------------------------------------------------
// The system: found running, or started with `npm start` and stopped at the end

export interface Endpoints {
  api: string;
  emulator: string;
  worker: string | undefined;
  webUi: string;
  namespace: string;
}

export function endpointsOf(config: Config): Endpoints {
  const loopback = (host: string) => (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);
  return {
    api: `http://${loopback(config.API_HOST)}:${config.API_PORT}`,
    emulator: config.AIR_PLATFORM_URL.replace(/\/+$/, ''),
    worker:
      config.WORKER_HEALTH_PORT > 0
        ? `http://${loopback(config.WORKER_HEALTH_HOST)}:${config.WORKER_HEALTH_PORT}`
        : undefined,
    webUi: config.TEMPORAL_UI_URL.replace(/\/+$/, ''),
    namespace: config.TEMPORAL_NAMESPACE,
  };
}

/** HTTP status of a GET, or 0 when nothing answers. */
async function probe(url: string): Promise<number> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(3_000) });
    await res.body?.cancel();
    return res.status;
  } catch {
    return 0;
  }
}

export interface RunningSystem {
  /** true when this process started `npm start` */
  started: boolean;
  stop: () => Promise<void>;
}

function tail(file: string, lines = 25): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

/**
 * Makes sure the API (/readyz), the emulator and the worker answer. When the API does not answer
 * at all, spawns `npm start` in a process group of its own (logs to a file) and waits for it; the
 * first run on a fresh clone builds Temporal and FerretDB, which takes minutes.
 */
export async function ensureSystem(
  config: Config,
  log: (line: string) => void,
  /** called as soon as `npm start` is spawned, with what stops it (for Ctrl-C while it starts) */
  onSpawn: (stop: () => Promise<void>) => void = () => undefined,
): Promise<RunningSystem> {
  const endpoints = endpointsOf(config);
  const readyz = `${endpoints.api}/readyz`;
  let child: ChildProcess | undefined;
  let exited: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  const logFile = resolve(config.CAK_DATA_DIR, 'logs', 'demo-npm-start.log');

  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopOnce());
  const stopOnce = async () => {
    const pid = child?.pid;
    if (pid === undefined || exited) return;
    // Ctrl-C, as a user would: SIGINT to the whole group (npm, start.ts, worker, API, emulator).
    log('stopping the `npm start` started for this run (SIGINT to its process group)');
    try {
      process.kill(-pid, 'SIGINT');
    } catch {
      return;
    }
    // npm exits at once; the worker first drains (up to WORKER_SHUTDOWN_GRACE_MS): stopped is when
    // no port of the system answers any more.
    const ports = [`${endpoints.api}/healthz`, `${endpoints.emulator}/healthz`];
    if (endpoints.worker) ports.push(`${endpoints.worker}/healthz`);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      const answering = await Promise.all(ports.map(probe));
      if (exited && answering.every((status) => status === 0)) {
        log('stopped');
        return;
      }
      await sleep(500);
    }
    log('still running 60 s after SIGINT: SIGKILL');
    try {
      process.kill(-pid, 'SIGKILL');
    } catch {
      /* gone meanwhile */
    }
  };

  const first = await probe(readyz);
  if (first === 200) {
    log(`found the system running: ${readyz} answers 200`);
  } else if (first !== 0) {
    log(`the API answers ${readyz} with ${first}; waiting for it to become ready`);
    await until(
      'the API to become ready',
      async () => ((await probe(readyz)) === 200 ? true : undefined),
      60_000,
      1_000,
    );
  } else {
    mkdirSync(resolve(config.CAK_DATA_DIR, 'logs'), { recursive: true });
    const fd = openSync(logFile, 'w');
    log(`nothing answers ${readyz}: starting \`npm start\` (its output: ${relative(process.cwd(), logFile)})`);
    child = spawn('npm', ['start'], { detached: true, stdio: ['ignore', fd, fd], env: process.env });
    closeSync(fd);
    child.once('exit', (code, signal) => (exited = { code, signal }));
    onSpawn(stop);
    const startedAt = Date.now();
    let lastNote = startedAt;
    const limitMs = 20 * 60_000;
    for (;;) {
      if ((await probe(readyz)) === 200) break;
      if (exited) {
        throw new DemoError(
          `\`npm start\` exited (${exited.signal ?? `code ${exited.code}`}) before the API was ready; ` +
            `the end of its log (${logFile}):\n${tail(logFile)}`,
        );
      }
      if (Date.now() - startedAt > limitMs)
        throw new DemoError(`the API was not ready ${limitMs / 60_000} min after \`npm start\``);
      if (Date.now() - lastNote > 30_000) {
        lastNote = Date.now();
        const lastLine = tail(logFile, 1).slice(0, 160);
        log(
          `still starting (${Math.round((Date.now() - startedAt) / 1000)} s; the first run builds Temporal and FerretDB, 4-6 min): ${lastLine}`,
        );
      }
      await sleep(1_000);
    }
    log(`the system is up (${Math.round((Date.now() - startedAt) / 1000)} s)`);
  }

  try {
    const emulatorHealth = `${endpoints.emulator}/healthz`;
    await until(
      `the AIR emulator at ${emulatorHealth} (the demo needs it: leave AIR_PLATFORM_URL unset and EMULATOR_ENABLED=true)`,
      async () => ((await probe(emulatorHealth)) === 200 ? true : undefined),
      60_000,
      500,
    );
    if (endpoints.worker) {
      const workerHealth = `${endpoints.worker}/healthz`;
      await until(
        `the worker at ${workerHealth}`,
        async () => ((await probe(workerHealth)) === 200 ? true : undefined),
        60_000,
        500,
      );
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { started: child !== undefined, stop };
}

// ---------------------------------------------------------------------------------------------
// HTTP and the CLI

interface HttpAnswer {
  status: number;
  body: Buffer;
  json<T = Record<string, unknown>>(): T;
}

async function http(
  method: 'GET' | 'POST' | 'PUT',
  url: string,
  options: { headers?: Record<string, string>; body?: string | FormData; expect?: number[] } = {},
): Promise<HttpAnswer> {
  let res: Response;
  try {
    res = await fetch(url, {
      method,
      ...(options.headers ? { headers: options.headers } : {}),
      ...(options.body !== undefined ? { body: options.body } : {}),
      signal: AbortSignal.timeout(30_000),
    });
  } catch (err) {
    throw new DemoError(`${method} ${url}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const body = Buffer.from(await res.arrayBuffer());
  const answer: HttpAnswer = {
    status: res.status,
    body,
    json: <T>() => JSON.parse(body.toString('utf8')) as T,
  };
  const expect = options.expect ?? [200];
  if (!expect.includes(res.status)) {
    throw new DemoError(
      `${method} ${url} answered ${res.status} (expected ${expect.join(' or ')}): ${body.toString('utf8').slice(0, 400)}`,
    );
  }
  return answer;
}

const jsonHeaders = { 'content-type': 'application/json' };

/** `npm run -s cak -- <args>`, printed as the user would type it. */
async function cak(
  args: string[],
  options: { quiet?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  // absolute paths run (npm may resolve relative ones against the folder `npm run demo` was typed in);
  // printed relative to the project root, where the command works as shown
  const shown = args.map((a) =>
    isAbsolute(a) && a.startsWith(`${process.cwd()}${sep}`) ? relative(process.cwd(), a) : a,
  );
  if (!options.quiet) cmd(`npm run -s cak -- ${shown.map((a) => (/[\s"'$]/.test(a) ? `'${a}'` : a)).join(' ')}`);
  return new Promise((resolvePromise) => {
    execFile(
      'npm',
      ['run', '-s', 'cak', '--', ...args],
      {
        env: { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn' },
        encoding: 'utf8',
        timeout: 120_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : 1) : 0;
        resolvePromise({ code, stdout, stderr });
      },
    );
  });
}

async function cakOrFail(args: string[]): Promise<string> {
  const result = await cak(args);
  if (result.code !== 0) {
    throw new DemoError(
      `\`cak ${args.slice(0, 2).join(' ')}\` exited ${result.code}: ${(result.stderr || result.stdout).trim().slice(0, 600)}`,
    );
  }
  return result.stdout;
}

// ---------------------------------------------------------------------------------------------
// Sample data: small real PNGs (viewable once decrypted), each with a marker unique to this run

function pngFile(width: number, height: number, comment: string, pixel: (x: number, y: number) => number[]): Buffer {
  const chunk = (type: string, data: Buffer) => {
    const length = Buffer.alloc(4);
    length.writeUInt32BE(data.length);
    const typed = Buffer.concat([Buffer.from(type, 'latin1'), data]);
    const crc = Buffer.alloc(4);
    crc.writeUInt32BE(crc32(typed) >>> 0);
    return Buffer.concat([length, typed, crc]);
  };
  const header = Buffer.alloc(13);
  header.writeUInt32BE(width, 0);
  header.writeUInt32BE(height, 4);
  header[8] = 8; // bit depth
  header[9] = 2; // RGB
  const rows = Buffer.alloc((width * 3 + 1) * height);
  for (let y = 0; y < height; y += 1) {
    for (let x = 0; x < width; x += 1) Buffer.from(pixel(x, y)).copy(rows, y * (width * 3 + 1) + 1 + x * 3);
  }
  return Buffer.concat([
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]),
    chunk('IHDR', header),
    chunk('tEXt', Buffer.from(`Comment\0${comment}`, 'latin1')),
    chunk('IDAT', deflateSync(rows)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** A face photo: a head and shoulders on a blue background. */
function facePhoto(marker: string): Buffer {
  return pngFile(120, 150, marker, (x, y) => {
    const head = (x - 60) ** 2 / 26 ** 2 + (y - 58) ** 2 / 32 ** 2 <= 1;
    const shoulders = y > 100 && (x - 60) ** 2 / 52 ** 2 + (y - 150) ** 2 / 48 ** 2 <= 1;
    if (head) return [232, 190, 160];
    if (shoulders) return [60, 70, 90];
    return [90 + (y >> 2), 140, 200];
  });
}

/** A utility bill: a white page with a header band and lines of "text". */
function utilityBill(marker: string): Buffer {
  return pngFile(170, 220, marker, (x, y) => {
    if (y < 28) return [20, 110, 80];
    const line = y > 40 && y < 200 && y % 14 < 4 && x > 14 && x < 156 - ((y * 7) % 50);
    return line ? [120, 120, 120] : [250, 250, 246];
  });
}

// ---------------------------------------------------------------------------------------------
// Plaintext scans: a secret as raw bytes, base64 (three alignments) and hex

function patternsOf(secret: Buffer): Buffer[] {
  const patterns = [secret, Buffer.from(secret.toString('hex'))];
  for (let shift = 0; shift < 3; shift += 1) {
    const b64 = Buffer.concat([Buffer.alloc(shift), secret]).toString('base64');
    patterns.push(Buffer.from(b64.slice(Math.ceil((shift * 4) / 3) + 1, -4)));
  }
  return patterns.filter((p) => p.length >= 8);
}

interface Secret {
  label: string;
  bytes: Buffer;
}

function secretsIn(bytes: Buffer, secrets: Secret[]): string[] {
  return secrets.filter((s) => patternsOf(s.bytes).some((p) => bytes.includes(p))).map((s) => s.label);
}

// ---------------------------------------------------------------------------------------------
// The story

const VERIFIER_DID = 'did:air:id:demo-verifier';
const STEPS = 7;

interface Issued {
  label: string;
  userId: string;
  schemaId: string;
  credentialId: string;
  curve: 'secp256r1' | 'secp256k1';
  form: 'JSON' | 'multipart';
  fields: Record<string, string>;
  files: { kind: string; name: string; bytes: Buffer }[];
  issuanceId?: string;
  workflowId?: string;
  webUiUrl?: string;
  recordId?: string;
}

interface Consent {
  issued: Issued;
  callbackRecordId: string;
  cakKeyFile: string;
  authorizationId: string;
  workflowId: string;
  webUiUrl: string;
}

let currentStep = 'setup';
/** set while this process runs an `npm start` of its own: stops it (Ctrl-C, or the end of the demo) */
let stopStartedSystem: (() => Promise<void>) | undefined;

function stepTitle(n: number, title: string): void {
  currentStep = `${n}/${STEPS} (${title})`;
  out();
  out(bold(`[${n}/${STEPS}] ${title}`));
}

async function main(): Promise<void> {
  const config = loadConfig();
  const endpoints = endpointsOf(config);
  const runTag = `${new Date().toISOString().slice(0, 19).replace(/[-:T]/g, '')}-${randomBytes(3).toString('hex')}`;
  const workDir = resolve(config.CAK_DATA_DIR, 'demo', runTag);
  mkdirSync(workDir, { recursive: true });
  const rel = (p: string) => relative(process.cwd(), p);
  const uiLink = (workflowId: string) =>
    `${endpoints.webUi}/namespaces/${encodeURIComponent(endpoints.namespace)}/workflows/${encodeURIComponent(workflowId)}`;
  const links: { label: string; workflowId: string; url: string }[] = [];

  out(bold('CAK issuer demo: from issuance to a Verifier decrypting the data'));
  say(`API ${endpoints.api}   AIR emulator ${endpoints.emulator}   Temporal Web UI ${endpoints.webUi}`);
  say(`dev credentials (src/config.ts): API key ${DEV_API_KEY}, admin token ${DEV_ADMIN_TOKEN}`);
  say(`this run's files: ${rel(workDir)}/`);

  check(
    !config.explicit.platform && config.EMULATOR_ENABLED,
    'the demo plays the platform with the local AIR emulator: unset AIR_PLATFORM_URL and keep EMULATOR_ENABLED=true',
  );
  const system = await ensureSystem(
    config,
    (line) => say(dim(line)),
    (stop) => (stopStartedSystem = stop),
  );
  const mongo = new MongoClient(config.MONGODB_URI, { serverSelectionTimeoutMS: 10_000 });
  let temporal: Client | undefined;
  let failed = false;
  try {
    await mongo.connect();
    const db = mongo.db(config.MONGODB_DB);
    temporal = await connectTemporalClient(
      config.TEMPORAL_ADDRESS,
      config.TEMPORAL_NAMESPACE,
      parseKeyring(config.CAK_CODEC_KEYS),
    );
    await story({ config, endpoints, db, temporal, runTag, workDir, uiLink, links });
  } catch (err) {
    failed = true;
    throw err;
  } finally {
    writeFileSync(
      resolve(config.CAK_DATA_DIR, 'demo', 'last-run.json'),
      `${JSON.stringify({ runTag, at: new Date().toISOString(), links }, null, 2)}\n`,
    );
    await temporal?.connection.close().catch(() => undefined);
    await mongo.close().catch(() => undefined);
    if (system.started) {
      if (!failed) currentStep = 'shutdown';
      out();
      await system.stop();
    }
  }
}

async function story(ctx: {
  config: Config;
  endpoints: Endpoints;
  db: Db;
  temporal: Client;
  runTag: string;
  workDir: string;
  uiLink: (workflowId: string) => string;
  links: { label: string; workflowId: string; url: string }[];
}): Promise<void> {
  const { config, endpoints, db, temporal, runTag, workDir, uiLink, links } = ctx;
  const rel = (p: string) => relative(process.cwd(), p);
  const apiHeaders = { 'x-api-key': DEV_API_KEY };
  const alice = `demo-alice-${runTag}`;

  // --- the data Alice's issuer holds -----------------------------------------------------------
  const kyc: Issued = {
    label: 'kyc-basic (JSON, P-256)',
    userId: alice,
    schemaId: 'kyc-basic',
    credentialId: 'prog-kyc-basic',
    curve: 'secp256r1',
    form: 'JSON',
    fields: { fullName: 'Alice Liddell', dateOfBirth: '1990-01-31', documentNumber: `P${runTag.replace(/\D/g, '')}` },
    files: [{ kind: 'face-photo', name: 'face-photo.png', bytes: facePhoto(`demo-face-photo-${runTag}`) }],
  };
  const address: Issued = {
    label: 'proof-of-address (multipart, secp256k1)',
    userId: alice,
    schemaId: 'proof-of-address',
    credentialId: 'prog-proof-of-address',
    curve: 'secp256k1',
    form: 'multipart',
    fields: { address: `221B Baker Street, London NW1 ${runTag.slice(-6)}` },
    files: [{ kind: 'utility-bill', name: 'utility-bill.png', bytes: utilityBill(`demo-utility-bill-${runTag}`) }],
  };
  const age: Issued = {
    label: 'age-over-18 (JSON, P-256; routed to log-only)',
    userId: alice,
    schemaId: 'age-over-18',
    credentialId: 'prog-age-over-18',
    curve: 'secp256r1',
    form: 'JSON',
    fields: { dateOfBirth: '1990-01-31' },
    files: [],
  };
  const all = [kyc, address, age];
  for (const issued of all) for (const f of issued.files) writeFileSync(join(workDir, `original-${f.name}`), f.bytes);

  // --- 1. issue ---------------------------------------------------------------------------------
  stepTitle(1, 'Issue: JSON and multipart, on both curves');
  say(`Alice (userId ${alice}) gets three credentials of the dev issuer ${DEV_ISSUER_DID}`);
  say('(programs and schemas from config/schemas.yaml). For each, POST /v1/issuances with the API key in');
  say('x-api-key; the API checks and stages the items (sealed), answers 202, and a Temporal run does');
  say('issue (asks the platform, here the emulator, for the CAK public key of Alice+issuer+schema) ->');
  say('encrypt (ECIES to that key, then the issuer-managed outer layer) -> store -> shred the staging.');
  say(`The sample files are in ${rel(workDir)}/original-*.png.`);
  for (const issued of all) {
    out();
    say(bold(issued.label));
    let answer: HttpAnswer;
    if (issued.form === 'JSON') {
      cmd(`curl -X POST ${endpoints.api}/v1/issuances -H 'x-api-key: …' -H 'content-type: application/json' -d '{…}'`);
      answer = await http('POST', `${endpoints.api}/v1/issuances`, {
        headers: { ...apiHeaders, ...jsonHeaders },
        body: JSON.stringify({
          userId: issued.userId,
          issuerDid: DEV_ISSUER_DID,
          credentialId: issued.credentialId,
          schemaId: issued.schemaId,
          curve: issued.curve,
          credentialSubject: { program: issued.credentialId },
          fields: issued.fields,
          ...(issued.files.length > 0
            ? {
                files: issued.files.map((f) => ({
                  kind: f.kind,
                  contentType: 'image/png',
                  data: f.bytes.toString('base64'),
                })),
              }
            : {}),
        }),
        expect: [202],
      });
    } else {
      const form = new FormData();
      for (const [name, value] of Object.entries({
        userId: issued.userId,
        issuerDid: DEV_ISSUER_DID,
        credentialId: issued.credentialId,
        schemaId: issued.schemaId,
        curve: issued.curve,
        credentialSubject: JSON.stringify({ program: issued.credentialId }),
        fields: JSON.stringify(issued.fields),
      }))
        form.append(name, value); // text parts go before file parts
      for (const f of issued.files) form.append(f.kind, new Blob([f.bytes], { type: 'image/png' }), f.name);
      cmd(
        `curl -X POST ${endpoints.api}/v1/issuances -H 'x-api-key: …' -F userId=… -F curve=${issued.curve} … ` +
          issued.files.map((f) => `-F '${f.kind}=@${f.name};type=image/png'`).join(' '),
      );
      answer = await http('POST', `${endpoints.api}/v1/issuances`, { headers: apiHeaders, body: form, expect: [202] });
    }
    const accepted = answer.json<{ issuanceId: string; status: string; statusUrl: string }>();
    issued.issuanceId = accepted.issuanceId;
    ok(`202 accepted: issuance ${accepted.issuanceId} (${accepted.status}); polling ${accepted.statusUrl}`);
    const status = await until(
      `issuance ${accepted.issuanceId} to complete (is the worker running?)`,
      async () => {
        const s = (await http('GET', `${endpoints.api}${accepted.statusUrl}`, { headers: apiHeaders })).json<{
          status: string;
          error?: unknown;
        }>();
        if (s.status === 'failed') throw new DemoError(`issuance failed: ${JSON.stringify(s.error)}`);
        return s.status === 'completed' ? s : undefined;
      },
      60_000,
    );
    const full = status as unknown as {
      status: string;
      workflowId?: string;
      webUiUrl?: string;
      steps: Record<string, { state: string }>;
      record?: {
        recordId: string;
        version: number;
        items: { kind: string; size: number; curve: string; keyId: string }[];
      };
    };
    check(full.record, `issuance ${accepted.issuanceId} completed without a record version`);
    issued.recordId = full.record.recordId;
    const workflowId =
      full.workflowId ??
      (await db.collection<{ _id: string; workflowId: string }>('issuances').findOne({ _id: accepted.issuanceId }))
        ?.workflowId;
    check(workflowId, `no workflow id for issuance ${accepted.issuanceId}`);
    issued.workflowId = workflowId;
    issued.webUiUrl = full.webUiUrl ?? uiLink(workflowId);
    links.push({ label: `issuance ${issued.schemaId}`, workflowId, url: issued.webUiUrl });
    show({
      issuanceId: accepted.issuanceId,
      status: full.status,
      workflowId,
      steps: Object.fromEntries(Object.entries(full.steps).map(([k, v]) => [k, v.state])),
      record: {
        recordId: full.record.recordId,
        version: full.record.version,
        items: full.record.items.map((i) => `${i.kind}: ${i.size}-byte package, ${i.curve}, outer key ${i.keyId}`),
      },
    });
    // the issuance reads `completed` once the last step recorded it; the run closes a moment later
    await until(
      `issuance run ${workflowId} to close as COMPLETED`,
      async () => {
        const { status } = await temporal.workflow.getHandle(workflowId).describe();
        if (status.name !== 'RUNNING' && status.name !== 'COMPLETED') throw new DemoError(`the run is ${status.name}`);
        return status.name === 'COMPLETED' ? true : undefined;
      },
      30_000,
    );
    ok('run completed: issue -> encrypt -> store -> shred');
    look(`Temporal Web UI: ${issued.webUiUrl}${full.webUiUrl ? '' : dim(' (built from TEMPORAL_UI_URL)')}`);
  }
  say('');
  say('In the Web UI every payload shows as "encrypted"; to read a run\'s input, sign in once at');
  say(`${endpoints.api}/codec/session with the codec token (dev: the CODEC_AUTH_TOKENS default in src/config.ts).`);

  // --- 2. only ciphertext at rest ---------------------------------------------------------------
  stepTitle(2, 'At rest: the database holds only ciphertext');
  const record = await db
    .collection<{ _id: string; userId: string; schemaId: string; currentVersion: number }>('records')
    .findOne({ _id: kyc.recordId! });
  const version = await db
    .collection<{ _id: string; manifest: { itemId: string; kind: string; packageId: string; size: number }[] }>(
      'record_versions',
    )
    .findOne({ _id: kyc.issuanceId! });
  check(record && version, `record ${kyc.recordId} or its version is not in the database`);
  say(`records/${kyc.recordId}: who and what, no data (ids are keyed hashes of issuer, user and schema):`);
  show({ userId: record.userId, schemaId: record.schemaId, currentVersion: record.currentVersion });
  const packages = packagesRepository(db, config.GRIDFS_THRESHOLD_BYTES);
  const plainSize = (issued: Issued, kind: string) =>
    kind === 'fields'
      ? Buffer.byteLength(canonicalJson(issued.fields))
      : (issued.files.find((f) => f.kind === kind)?.bytes.length ?? '?');
  for (const entry of version.manifest) {
    const stored = await packages.read(entry.packageId);
    check(stored, `package ${entry.packageId} is missing`);
    const kidLength = stored[1]!;
    say(
      `packages/${entry.packageId}: ${stored.length} bytes (the ${entry.kind} item: ${plainSize(kyc, entry.kind)} bytes); ` +
        `starts ${stored.subarray(0, 16).toString('hex')}…`,
    );
    say(
      dim(
        `  = cak-outer-v1 (0x01), key id "${stored.subarray(2, 2 + kidLength).toString('latin1')}", wrapped data key, ` +
          'AES-256-GCM body; inside it the CAK ECIES package only the Verifier can open',
      ),
    );
  }
  const secrets: Secret[] = [];
  for (const issued of all) {
    for (const [name, value] of Object.entries(issued.fields))
      secrets.push({ label: `${name} "${value}"`, bytes: Buffer.from(value) });
    secrets.push({
      label: `${issued.schemaId} fields as stored JSON`,
      bytes: Buffer.from(canonicalJson(issued.fields)),
    });
    for (const f of issued.files) {
      const marker = /demo-[a-z-]+-[0-9a-f-]+/.exec(f.bytes.toString('latin1'))![0];
      secrets.push({ label: `${f.name} marker`, bytes: Buffer.from(marker) });
      for (const at of [0.3, 0.6, 0.9]) {
        const start = Math.floor(f.bytes.length * at);
        secrets.push({ label: `${f.name} bytes @${start}`, bytes: f.bytes.subarray(start, start + 48) });
      }
    }
  }
  const unique = [...new Map(secrets.map((s) => [s.bytes.toString('hex'), s])).values()];
  say(`Scanning every document of database "${config.MONGODB_DB}" (GridFS chunks included) for ${unique.length}`);
  say('pieces of what was issued (each field value, the fields JSON, windows of each file), as raw');
  say('bytes, base64 (any alignment) and hex:');
  let documents = 0;
  let bytesScanned = 0;
  const hits: string[] = [];
  const collections = await db.listCollections({}, { nameOnly: true }).toArray();
  for (const { name } of collections) {
    for await (const doc of db.collection(name).find({})) {
      const bytes = Buffer.from(BSON.serialize(doc));
      documents += 1;
      bytesScanned += bytes.length;
      for (const label of secretsIn(bytes, unique)) hits.push(`${name}/${String(doc._id)}: ${label}`);
    }
  }
  check(hits.length === 0, `plaintext found in the database: ${hits.slice(0, 10).join('; ')}`);
  ok(
    `${documents} documents in ${collections.length} collections (${(bytesScanned / 1024).toFixed(0)} KiB): none of it appears`,
  );
  let events = 0;
  const runIds = all.map((i) => i.workflowId!);
  for (const workflowId of runIds) {
    const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
    events += history.events?.length ?? 0;
    const bytes = Buffer.from(proto.api.history.v1.History.encode(history).finish());
    for (const label of secretsIn(bytes, unique)) hits.push(`${workflowId}: ${label}`);
  }
  check(hits.length === 0, `plaintext found in Temporal history: ${hits.slice(0, 10).join('; ')}`);
  ok(
    `nor in the ${events} events of the ${runIds.length} issuance runs' Temporal history (payloads are codec-encrypted)`,
  );

  // --- 3. consent and the signed callback ---------------------------------------------------------
  stepTitle(3, 'The user consents; the platform sends us a signed callback');
  say('The platform calls one callback URL per issuer. Register ours with the platform (the emulator):');
  const callbackUrl = `${endpoints.api}/v1/cak/callbacks`;
  const registered = await cakOrFail(['platform', 'register-callback', '--url', callbackUrl]);
  ok(registered.trim());
  say(`A Verifier, ${VERIFIER_DID}, asks Alice for each credential. In production the AIR verification`);
  say('SDK runs this: the Verifier starts a flow, Alice agrees in her wallet, the platform POSTs a signed');
  say('callback {userId, verifierDid, schemaId} to our URL, and the SDK hands the Verifier the CAK private');
  say('key of (Alice, issuer, schema): the issuer never holds it. The emulator plays all of that:');
  say('POST /verifier/verify/initialize opens a callback record, POST /emulator/verifier/consent gives');
  say('the consent; its answer carries cakPrivateKey, which the emulator derives from EMULATOR_MASTER_SECRET');
  say('(HKDF over curve, user, issuer and schema: src/emulator/cak-keys.ts; POST');
  say('/emulator/verifier/cak-private-key returns the same key on its own).');
  const consents: Consent[] = [];
  for (const issued of all) {
    out();
    say(bold(issued.schemaId));
    cmd(`curl -X POST ${endpoints.emulator}/verifier/verify/initialize -d '{"issuerDid": "${DEV_ISSUER_DID}"}'`);
    const init = (
      await http('POST', `${endpoints.emulator}/verifier/verify/initialize`, {
        headers: jsonHeaders,
        body: JSON.stringify({ issuerDid: DEV_ISSUER_DID }),
      })
    ).json<{ callbackRecordId: string; status: number }>();
    ok(`callback record ${init.callbackRecordId}, status ${init.status} (NOT_SEND)`);
    cmd(
      `curl -X POST ${endpoints.emulator}/emulator/verifier/consent -d '{"callbackRecordId": …, "userId": "${issued.userId}", ` +
        `"verifierDid": "${VERIFIER_DID}", "schemaId": "${issued.schemaId}", "curve": "${issued.curve}"}'`,
    );
    const consent = (
      await http('POST', `${endpoints.emulator}/emulator/verifier/consent`, {
        headers: jsonHeaders,
        body: JSON.stringify({
          callbackRecordId: init.callbackRecordId,
          userId: issued.userId,
          verifierDid: VERIFIER_DID,
          schemaId: issued.schemaId,
          curve: issued.curve,
        }),
      })
    ).json<{ status: number; cakPrivateKey: string }>();
    const cakKeyFile = join(workDir, `cak-key-${issued.schemaId}.hex`);
    writeFileSync(cakKeyFile, `${consent.cakPrivateKey}\n`, { mode: 0o600 });
    ok(`status ${consent.status} (PENDING); the Verifier's CAK private key (${issued.curve}) -> ${rel(cakKeyFile)}`);
    const delivered = await until(
      `the callback of record ${init.callbackRecordId} to be acknowledged by ${callbackUrl}`,
      async () => {
        const r = (await http('GET', `${endpoints.emulator}/emulator/callbacks/${init.callbackRecordId}`)).json<{
          status: number;
          attempts: { status?: number; error?: string }[];
        }>();
        return r.status === 1 ? r : undefined;
      },
      60_000,
    );
    ok(
      `callback delivered: attempts ${delivered.attempts.map((a) => a.status ?? a.error).join(', ')}; signed with ` +
        `${config.CALLBACK_SIGNATURE_SCHEME} (webhook-id/-timestamp/-signature), verified by our API`,
    );
    const authorizationId = authorizationIdFor(config.ID_HMAC_SECRET, {
      userId: issued.userId,
      verifierDid: VERIFIER_DID,
      schemaId: issued.schemaId,
    });
    const workflowId = authorizationWorkflowId(authorizationId);
    consents.push({
      issued,
      callbackRecordId: init.callbackRecordId,
      cakKeyFile,
      authorizationId,
      workflowId,
      webUiUrl: uiLink(workflowId),
    });
  }

  // --- 4. the authorization runs ---------------------------------------------------------------
  stepTitle(4, 'The authorization runs: verify, route by schemaId, audit');
  say('Each callback the API acknowledged started a Temporal run (one per user, Verifier and schema):');
  say('verify (the delivery proof, the data we hold) -> route (config/schemas.yaml: kyc-basic and');
  say('proof-of-address go to grant-access, age-over-18 to log-only) -> settle -> audit (an event for');
  say('the keyed, hash-chained audit trail).');
  let runState = 'RUNNING';
  for (const c of consents) {
    out();
    say(bold(c.issued.schemaId));
    const done = await until(
      `authorization run ${c.workflowId} to audit`,
      async () => {
        const names = await completedActivities(temporal, c.workflowId);
        return names.includes('auditAuthorization') ? names : undefined;
      },
      60_000,
      300,
    );
    ok(`activities completed: ${done.join(' -> ')}`);
    const doc = await db
      .collection<{ _id: string; state: string; accessUntil?: Date; handlers: string[] }>('authorizations')
      .findOne({ _id: c.authorizationId });
    check(doc, `authorization ${c.authorizationId} is not in the database`);
    const audited =
      (await db
        .collection('audit_events')
        .findOne({ type: 'authorization', 'data.authorizationId': c.authorizationId })) ??
      (await db
        .collection('audit_pending')
        .findOne({ type: 'authorization', 'data.authorizationId': c.authorizationId }));
    check(audited, `no audit event for authorization ${c.authorizationId}`);
    const run = await temporal.workflow.getHandle(c.workflowId).describe();
    runState = run.status.name;
    const expected = c.issued.schemaId === 'age-over-18' ? 'routed' : 'active';
    check(doc.state === expected, `authorization ${c.authorizationId} is ${doc.state}, expected ${expected}`);
    ok(
      `routed to [${doc.handlers.join(', ')}]: state ${doc.state}, window open until ${doc.accessUntil?.toISOString()}; ` +
        `audited (${'seq' in audited ? `sealed, seq ${String(audited.seq)}` : 'waiting to be sealed'})`,
    );
    if (expected === 'routed') {
      say(dim('log-only records and audits the consent but grants no access: the Verifier will be refused.'));
    }
    links.push({ label: `authorization ${c.issued.schemaId}`, workflowId: c.workflowId, url: c.webUiUrl });
    look(`Temporal Web UI: ${c.webUiUrl}`);
  }
  out();
  say(`Each pass is complete. The runs stay ${runState} on purpose: each holds its access window (30 days),`);
  say('collapses duplicate deliveries onto itself and audits the expiry when the window closes.');

  // --- 5. the Verifier ----------------------------------------------------------------------------
  stepTitle(5, 'The Verifier: its key, its JWT, the manifest, a signed URL, the download');
  say("Once, an operator registers the Verifier's ES256 public key with the issuer (admin API, bearer");
  say(`token from ADMIN_TOKENS; dev: ${DEV_ADMIN_TOKEN}). The Verifier keeps the private half.`);
  const { privateKey } = generateKeyPairSync('ec', { namedCurve: 'P-256' });
  const kid = `demo-${runTag}`;
  const privateJwk = { ...(privateKey.export({ format: 'jwk' }) as JWK), kid, alg: 'ES256' };
  const verifierKeyFile = join(workDir, 'verifier-key.json');
  writeFileSync(verifierKeyFile, `${JSON.stringify(privateJwk, null, 2)}\n`, { mode: 0o600 });
  const publicJwk = { kty: 'EC', crv: 'P-256', x: privateJwk.x, y: privateJwk.y, kid };
  cmd(
    `curl -X PUT ${endpoints.api}/v1/admin/verifiers/keys -H 'authorization: Bearer …' -d '{"verifierDid": "${VERIFIER_DID}", "jwk": {…}}'`,
  );
  await http('PUT', `${endpoints.api}/v1/admin/verifiers/keys`, {
    headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, ...jsonHeaders },
    body: JSON.stringify({ verifierDid: VERIFIER_DID, jwk: publicJwk }),
  });
  ok(`key ${kid} registered for ${VERIFIER_DID} (private key: ${rel(verifierKeyFile)})`);
  const jwt = await new SignJWT({})
    .setProtectedHeader({ alg: 'ES256', kid, typ: 'JWT' })
    .setIssuer(VERIFIER_DID)
    .setSubject(VERIFIER_DID)
    .setAudience('cak-issuer')
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(await importJWK(privateJwk, 'ES256'));
  say('The Verifier signs a short-lived JWT (at most 10 minutes):');
  show({ header: decodeProtectedHeader(jwt), claims: decodeJwt(jwt), token: short(jwt, 32) });
  const bearer = { authorization: `Bearer ${jwt}` };
  const downloads = new Map<Consent, { kind: string; curve: string; file: string }[]>();
  for (const c of consents) {
    out();
    say(bold(c.issued.schemaId));
    const query = `userId=${encodeURIComponent(c.issued.userId)}&schemaId=${c.issued.schemaId}`;
    cmd(`curl -H 'authorization: Bearer <JWT>' '${endpoints.api}/v1/verifier/data?${query}'`);
    if (c.issued.schemaId === 'age-over-18') {
      const refused = await http('GET', `${endpoints.api}/v1/verifier/data?${query}`, {
        headers: bearer,
        expect: [403],
      });
      ok(`403 ${refused.json<{ error: { code: string } }>().error.code}: a log-only route grants no access`);
      continue;
    }
    const manifest = (await http('GET', `${endpoints.api}/v1/verifier/data?${query}`, { headers: bearer })).json<{
      authorizationId: string;
      recordId: string;
      version: number;
      expiresAt: string;
      items: { itemId: string; kind: string; contentType: string; curve: string; url: string }[];
    }>();
    say('the manifest (the current record version; one signed URL per item):');
    show({ ...manifest, items: manifest.items.map((i) => ({ ...i, url: short(i.url, 40) })) });
    const files: { kind: string; curve: string; file: string }[] = [];
    for (const item of manifest.items) {
      const token = item.url.split('/').pop()!;
      const claims = JSON.parse(Buffer.from(token.split('.')[0]!, 'base64url').toString('utf8')) as Record<
        string,
        unknown
      >;
      say(`${item.kind}: the signed URL's claims (HMAC under SIGNED_URL_SECRET, no JWT needed to use it):`);
      show(claims);
      cmd(`curl -o ${item.kind}.pkg '${endpoints.api}${short(item.url, 40)}'`);
      const pkg = await http('GET', `${endpoints.api}${item.url}`);
      const file = join(workDir, `${c.issued.schemaId}-${item.kind}.pkg`);
      writeFileSync(file, pkg.body);
      ok(
        `${pkg.body.length} bytes -> ${rel(file)} (the inner CAK ECIES package: the outer layer is removed, the CAK layer is not)`,
      );
      files.push({ kind: item.kind, curve: item.curve, file });
    }
    downloads.set(c, files);
  }
  say('');
  say('Each manifest and each download was written to the audit trail.');

  // --- 6. decrypt and compare ---------------------------------------------------------------------
  stepTitle(6, 'The Verifier decrypts with the CAK private key; the bytes are compared');
  for (const [c, files] of downloads) {
    out();
    say(bold(`${c.issued.schemaId} (${c.issued.curve})`));
    for (const d of files) {
      const plainFile = d.file.replace(/\.pkg$/, d.kind === 'fields' ? '.json' : '.png');
      await cakOrFail([
        'decrypt',
        '--curve',
        d.curve,
        '--private-key-file',
        c.cakKeyFile,
        '--in',
        d.file,
        '--out',
        plainFile,
      ]);
      const plain = readFileSync(plainFile);
      const expected =
        d.kind === 'fields'
          ? Buffer.from(canonicalJson(c.issued.fields))
          : c.issued.files.find((f) => f.kind === d.kind)?.bytes;
      check(expected, `the manifest lists an item "${d.kind}" that was not issued`);
      check(
        plain.equals(expected),
        `${rel(plainFile)} differs from what was issued (${plain.length} vs ${expected.length} bytes)`,
      );
      ok(
        `${rel(plainFile)}: ${plain.length} bytes, identical to what was issued` +
          (d.kind === 'fields' ? ` ${dim(plain.toString('utf8'))}` : ''),
      );
    }
  }
  await verifierFetch(consents[0]!, verifierKeyFile, workDir, endpoints.api);

  // --- 7. audit ---------------------------------------------------------------------------------------
  stepTitle(7, 'The audit chain verifies');
  say('Every consent, manifest and download is an event in a hash chain keyed with CAK_AUDIT_KEYS; a');
  say('sequencer (the cak-audit-seal schedule) seals appended events into it. Waiting for ours:');
  const ids = consents.map((c) => c.authorizationId);
  const sealWaitStarted = Date.now();
  await until(
    "this run's audit events to be sealed",
    async () => {
      const pending = await db.collection('audit_pending').countDocuments({ 'data.authorizationId': { $in: ids } });
      return pending === 0 ? true : undefined;
    },
    90_000,
    500,
  ).catch(async (err: unknown) => {
    throw new DemoError(
      `${err instanceof Error ? err.message : String(err)}; ${await sealDiagnosis(temporal, config)}`,
    );
  });
  const sealed = await db.collection('audit_events').countDocuments({ 'data.authorizationId': { $in: ids } });
  ok(`${sealed} events of this run are sealed (${Math.round((Date.now() - sealWaitStarted) / 1000)} s)`);
  if (Date.now() - sealWaitStarted > 5_000) {
    say(dim('(a sequencer run lasts about a minute; after a worker restart the next one may take that long)'));
  }
  const verified = await cakOrFail(['audit', 'verify']);
  check(/audit chain intact/.test(verified), `cak audit verify: ${verified.trim()}`);
  ok(verified.trim());

  out();
  out(bold(green('The demo completed: every step passed.')));
  say('Temporal Web UI, one link per run:');
  for (const link of links) say(`  ${link.label.padEnd(30)} ${link.url}`);
  say(`Files of this run (keys, packages, decrypted data): ${rel(workDir)}/`);
}

/**
 * Why nothing seals: the cak-audit-seal schedule exists once per namespace and a worker creates it
 * only when it is missing, so a worker on another task queue (a test's, say) may own it.
 */
async function sealDiagnosis(temporal: Client, config: Config): Promise<string> {
  const fix = `temporal schedule delete --schedule-id ${AUDIT_SEAL_SCHEDULE_ID} --address ${config.TEMPORAL_ADDRESS} (.tools/bin/temporal), then restart \`npm start\``;
  try {
    const schedule = await temporal.schedule.getHandle(AUDIT_SEAL_SCHEDULE_ID).describe();
    const queue = schedule.action.type === 'startWorkflow' ? schedule.action.taskQueue : undefined;
    if (queue !== config.TEMPORAL_TASK_QUEUE) {
      return (
        `the ${AUDIT_SEAL_SCHEDULE_ID} schedule starts its runs on task queue "${queue}", which no worker of this ` +
        `system polls (ours: "${config.TEMPORAL_TASK_QUEUE}"); another worker created it first, and workers leave an ` +
        `existing schedule as it is. Fix: ${fix}`
      );
    }
    if (schedule.state.paused) return `the ${AUDIT_SEAL_SCHEDULE_ID} schedule is paused (unpause it in the Web UI)`;
    return `the ${AUDIT_SEAL_SCHEDULE_ID} schedule looks right (task queue "${queue}"): is the worker running? see its log`;
  } catch (err) {
    return `the ${AUDIT_SEAL_SCHEDULE_ID} schedule could not be read (${err instanceof Error ? err.message : String(err)}): is the worker running?`;
  }
}

/** Names of the activities a run completed, in order. */
async function completedActivities(temporal: Client, workflowId: string): Promise<string[]> {
  const history = await temporal.workflow.getHandle(workflowId).fetchHistory();
  const scheduled = new Map<string, string>();
  const completed: string[] = [];
  for (const event of history.events ?? []) {
    const s = event.activityTaskScheduledEventAttributes;
    if (s) scheduled.set(String(event.eventId), s.activityType?.name ?? '?');
    const c = event.activityTaskCompletedEventAttributes;
    if (c) completed.push(scheduled.get(String(c.scheduledEventId)) ?? '?');
  }
  return completed;
}

/** `cak verifier fetch`, when this checkout has it: the same download and decryption in one command. */
async function verifierFetch(c: Consent, verifierKeyFile: string, workDir: string, apiUrl: string): Promise<void> {
  const rel = (p: string) => relative(process.cwd(), p);
  const help = await cak(['verifier', 'fetch', '--help'], { quiet: true });
  out();
  if (help.code !== 0) {
    say(dim('(`cak verifier fetch` is not in this checkout: skipped)'));
    return;
  }
  say(bold('The same in one command: cak verifier fetch'));
  const outDir = join(workDir, 'verifier-fetch');
  mkdirSync(outDir, { recursive: true });
  await cakOrFail([
    'verifier',
    'fetch',
    '--verifier-did',
    VERIFIER_DID,
    '--verifier-key',
    verifierKeyFile,
    '--user',
    c.issued.userId,
    '--schema',
    c.issued.schemaId,
    '--cak-key',
    c.cakKeyFile,
    '--out',
    outDir,
    '--api',
    apiUrl,
  ]);
  const written = readdirSync(outDir);
  const expected = [
    { kind: 'fields', bytes: Buffer.from(canonicalJson(c.issued.fields)) },
    ...c.issued.files.map((f) => ({ kind: f.kind, bytes: f.bytes })),
  ];
  for (const item of expected) {
    const match = written.find(
      (name) => name.startsWith(item.kind) && readFileSync(join(outDir, name)).equals(item.bytes),
    );
    check(
      match,
      `cak verifier fetch wrote no file "${item.kind}*" with the issued bytes in ${rel(outDir)} (found: ${written.join(', ') || 'nothing'})`,
    );
    ok(`${rel(join(outDir, match))}: identical to what was issued`);
  }
}

if (require.main === module) {
  const started = Date.now();
  process.once('SIGINT', () => {
    process.stderr.write(`\ndemo: interrupted at step ${currentStep}\n`);
    void (stopStartedSystem?.() ?? Promise.resolve()).finally(() => process.exit(130));
  });
  main()
    .then(() => {
      out(dim(`(${Math.round((Date.now() - started) / 1000)} s)`));
      process.exit(0);
    })
    .catch((err: unknown) => {
      const message =
        err instanceof DemoError ? err.message : err instanceof Error ? (err.stack ?? err.message) : String(err);
      process.stderr.write(`\n${red(bold(`demo FAILED at step ${currentStep}`))}: ${message}\n`);
      process.exit(1);
    });
}
