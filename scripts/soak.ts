/**
 * `npm run soak [-- --minutes N --max-requests N]`: correctness under faults, deploys and key
 * rotations, for a bounded time.
 *
 * Starts its own Temporal dev server and FerretDB (free loopback ports, a temp data dir), two API
 * instances and the worker as child processes, a small reverse proxy in front of the two APIs
 * (scripts/lib/soak-proxy.ts) and the AIR platform emulator in-process. For SOAK_MINUTES (default
 * 10) it sends a mixed load through the proxy, as the platform and clients would: issuances (JSON,
 * small items carrying distinctive plaintext markers, fixed Idempotency-Keys, some replayed, every
 * POST retried with its key until a 202), signed authorization callbacks (Standard Webhooks, via the
 * emulator's dispatcher: retried until 2XX, redelivered under the same webhook-id, and fresh
 * deliveries of the same key) and reads (issuance status, the partner JWKS). Meanwhile, every 20-60
 * s, one fault: SIGKILL the worker and start another, stop and restart the database or Temporal
 * (same port and data), or a rolling restart of the API (docs/operations.md "Rolling restart of the
 * API"); and at 20, 40, 60 and 80 % of the run one key rotation each (codec, managed, callback,
 * partner; scripts/lib/soak-rotations.ts). Then, with everything up, it waits (bounded) for the
 * work to settle, checks the invariants, prints one summary line on stdout and exits 1 if any failed.
 * Docs: docs/operations.md, "Soak".
 *
 * Settings: SOAK_MINUTES / --minutes (10), SOAK_MAX_REQUESTS / --max-requests (20000 HTTP requests
 * sent by the load), SOAK_SETTLE_MINUTES (5), SOAK_FAULT_MIN_SECONDS / SOAK_FAULT_MAX_SECONDS (20/60),
 * SOAK_ISSUANCES_PER_SECOND (1.2), SOAK_CALLBACKS_PER_SECOND (0.7 new consents, about 3 requests
 * each), SOAK_READS_PER_SECOND (2.5): about 6 requests/s together; SOAK_KEEP_LOGS=1 (copy the
 * servers' logs to .data/soak-logs/ before the temp dir is removed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, mkdtempSync, openSync, closeSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { MongoClient, type Db } from 'mongodb';
import { parse as parseYaml, stringify as stringifyYaml } from 'yaml';
import { DEV_API_KEY, DEV_ISSUER_DID, loadConfig, type Config } from '../src/config';
import { parseKeyring } from '../src/crypto/keyring';
import { dataConverterFor } from '../src/crypto/payload-codec';
import { authorizationIdFor, authorizationWorkflowId } from '../src/domain/callback';
import type { CallbackPayload } from '../src/domain/authorization';
import { createDispatcher, type DispatcherOptions, type DispatchOutcome } from '../src/emulator/dispatcher';
import { startEmulator, type EmulatorHandle } from '../src/emulator/server';
import { parseSecrets } from '../src/platform/callback-signature';
import { devPartnerJwk } from '../src/platform/partner-keys';
import { packageKeyCounts } from '../src/operations/keys';
import { auditRepository } from '../src/storage/audit';
import { eventually } from '../test/support/eventually';
import { freePort } from '../test/support/ports';
import { findMarkers, markedPng, scanDatabase, scanHistoriesWhere } from '../test/support/scans';
import { startDatabase, startTemporal, stopService, type Paths } from './lib/local-services';
import { startProxy, type ProxyHandle } from './lib/soak-proxy';
import { rewrap, rotate, ROTATIONS, type Deployment, type RotationKind } from './lib/soak-rotations';
import { judgeIncarnation, mb, readRssKb, RSS_RULE, type Incarnation } from './lib/soak-rss';

// ---------------------------------------------------------------------------------------------
// Settings

function argValue(name: string): string | undefined {
  const i = process.argv.indexOf(`--${name}`);
  if (i >= 0) return process.argv[i + 1];
  return process.argv.find((a) => a.startsWith(`--${name}=`))?.split('=')[1];
}

function numberSetting(arg: string, env: string, fallback: number): number {
  const raw = argValue(arg) ?? process.env[env];
  const value = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`${env} / --${arg}: expected a positive number`);
  return value;
}

const SETTINGS = {
  minutes: numberSetting('minutes', 'SOAK_MINUTES', 10),
  maxRequests: numberSetting('max-requests', 'SOAK_MAX_REQUESTS', 20_000),
  settleMinutes: numberSetting('settle-minutes', 'SOAK_SETTLE_MINUTES', 5),
  faultMinSeconds: numberSetting('fault-min-seconds', 'SOAK_FAULT_MIN_SECONDS', 20),
  faultMaxSeconds: numberSetting('fault-max-seconds', 'SOAK_FAULT_MAX_SECONDS', 60),
  /** new issuances, new callback keys (each about 3 requests) and reads per second */
  issuancesPerSecond: numberSetting('issuances-per-second', 'SOAK_ISSUANCES_PER_SECOND', 1.2),
  callbacksPerSecond: numberSetting('callbacks-per-second', 'SOAK_CALLBACKS_PER_SECOND', 0.7),
  readsPerSecond: numberSetting('reads-per-second', 'SOAK_READS_PER_SECOND', 2.5),
  /** first POSTs of issuances still retrying (replays do not count) */
  maxIssuancesInFlight: 10,
  rssEveryMs: 5_000,
};

const started = Date.now();
const say = (line: string) =>
  process.stderr.write(`[soak ${((Date.now() - started) / 1000).toFixed(0).padStart(4)}s] ${line}\n`);
const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((done) => {
    if (signal?.aborted) return done();
    const onAbort = () => {
      clearTimeout(timer);
      done();
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      done();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
const rand = (min: number, max: number) => min + Math.random() * (max - min);
const pick = <T>(items: readonly T[]): T => items[Math.floor(Math.random() * items.length)]!;
const duration = (ms: number) => `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;

// ---------------------------------------------------------------------------------------------
// The system under test

interface Ports {
  temporal: number;
  ui: number;
  db: number;
  proxy: number;
  apiA: number;
  apiB: number;
  emulator: number;
  workerHealth: number;
  workerMetrics: number;
}

/** One API instance behind the proxy: restarted in place (same name, port and log). */
interface ApiInstance {
  name: 'api-a' | 'api-b';
  port: number;
  child?: ChildProcess;
  /** set while the soak itself stops it, so the watchdog does not restart it */
  expectedExit: boolean;
}

interface System {
  paths: Paths;
  ports: Ports;
  config: Config;
  /** the deployment's environment: rotations edit it, and every process started later gets it */
  env: NodeJS.ProcessEnv;
  /** the proxy's URL: all the load goes there */
  apiUrl: string;
  emulator?: EmulatorHandle;
  proxy?: ProxyHandle;
  apis: ApiInstance[];
  /** API instances stopped and started again by rolling restarts */
  apiRestarts: number;
  apiUnexpectedExits: number;
  violations: string[];
  worker?: ChildProcess;
  incarnations: Incarnation[];
  workerUnexpectedExits: number;
  /** set while the soak itself stops or kills the worker, so the watchdog does not restart it */
  workerExpectedExit: boolean;
  stopping: boolean;
}

const WORKER_ENTRY = 'src/workers/worker.ts';
const API_ENTRY = 'src/api/server.ts';

function spawnChild(sys: System, name: string, args: string[], env = sys.env, stdout?: 'pipe'): ChildProcess {
  const log = openSync(join(sys.paths.dataDir, 'logs', `${name}.log`), 'a');
  const child = spawn(process.execPath, ['-r', '@swc-node/register', ...args], {
    env,
    stdio: ['ignore', stdout ?? log, log],
  });
  closeSync(log);
  return child;
}

/** `cak <args>` with the deployment's environment (stderr to logs/cli.log); its exit code and stdout. */
function runCli(sys: System, args: string[]): Promise<{ code: number | null; stdout: string }> {
  const child = spawnChild(sys, 'cli', ['src/cli/cak.ts', ...args], sys.env, 'pipe');
  let stdout = '';
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk));
  return new Promise((done) => child.once('close', (code) => done({ code, stdout })));
}

function waitHttpOk(url: string, what: string, timeoutMs: number, child?: ChildProcess): Promise<boolean> {
  const probe = () => {
    if (child && child.exitCode !== null) throw new Error(`${what} exited (code ${child.exitCode}) before ready`);
    return fetch(url, { signal: AbortSignal.timeout(2_000) }).then(
      (r) => r.ok,
      () => false,
    );
  };
  return eventually(probe, (ok) => ok, { what: `${what} ready at ${url}`, timeoutMs, intervalMs: 250 });
}

let workerStarting: Promise<void> = Promise.resolve();

/** Starts a worker incarnation and waits until its /healthz says RUNNING. Serialized. */
function startWorker(sys: System): Promise<void> {
  workerStarting = workerStarting.then(async () => {
    if (sys.stopping) return;
    const child = spawnChild(sys, 'worker', [WORKER_ENTRY]);
    const inc: Incarnation = {
      n: sys.incarnations.length + 1,
      pid: child.pid ?? -1,
      startedAt: Date.now(),
      samples: [],
    };
    sys.incarnations.push(inc);
    sys.worker = child;
    sys.workerExpectedExit = false;
    child.once('exit', (code, signal) => {
      inc.endedAt = Date.now();
      inc.end ??= signal ?? `exit ${code}`;
      if (sys.worker === child) sys.worker = undefined;
      if (!sys.workerExpectedExit && !sys.stopping) {
        sys.workerUnexpectedExits += 1;
        say(`worker #${inc.n} (pid ${inc.pid}) exited on its own (${signal ?? `code ${code}`}); starting another`);
        void sleep(2_000).then(() =>
          startWorker(sys).catch((err: unknown) => say(`worker restart failed: ${String(err)}`)),
        );
      }
    });
    await waitHttpOk(`http://127.0.0.1:${sys.ports.workerHealth}/healthz`, `worker #${inc.n}`, 180_000, child);
    say(`worker #${inc.n} running (pid ${inc.pid}, ready in ${((Date.now() - inc.startedAt) / 1000).toFixed(1)} s)`);
  });
  return workerStarting;
}

async function stopWorker(sys: System, signal: NodeJS.Signals, label: string): Promise<void> {
  await workerStarting.catch(() => undefined);
  const child = sys.worker;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  sys.workerExpectedExit = true;
  const inc = sys.incarnations[sys.incarnations.length - 1];
  if (inc) inc.end = label;
  const gone = new Promise((r) => child.once('exit', r));
  child.kill(signal);
  const timeout = sleep(signal === 'SIGKILL' ? 10_000 : 40_000).then(() => 'timeout');
  if ((await Promise.race([gone, timeout])) === 'timeout') {
    child.kill('SIGKILL');
    await gone;
  }
}

/**
 * Starts an API instance (its own port, the deployment's current environment) and waits until the
 * proxy sees it ready. An instance that exits before it answers most likely lost its port meanwhile
 * (Temporal's dev server binds ports of its own): it gets another one, twice at most.
 */
async function startApi(sys: System, api: ApiInstance): Promise<void> {
  for (let attempt = 1; ; attempt += 1) {
    const child = spawnChild(sys, api.name, [API_ENTRY], { ...sys.env, API_PORT: String(api.port) });
    api.child = child;
    api.expectedExit = false;
    let up = false;
    child.once('exit', (code, signal) => {
      if (api.child === child) api.child = undefined;
      if (!up || api.expectedExit || sys.stopping) return;
      sys.apiUnexpectedExits += 1;
      say(`${api.name} (pid ${child.pid}) exited on its own (${signal ?? `code ${code}`}); starting it again`);
      void sleep(2_000).then(() =>
        startApi(sys, api).catch((err: unknown) => say(`${api.name} restart failed: ${String(err)}`)),
      );
    });
    try {
      await waitHttpOk(`http://127.0.0.1:${api.port}/healthz`, api.name, 60_000, child);
      up = true;
      break;
    } catch (err) {
      if (attempt >= 3 || child.exitCode === null) throw err;
      const log = readFileSync(join(sys.paths.dataDir, 'logs', `${api.name}.log`), 'utf8')
        .trim()
        .split('\n');
      say(`${api.name} exited at start (${log[log.length - 1]?.slice(0, 200)}); trying another port`);
      api.port = await freePort();
      sys.proxy!.upstreams.find((u) => u.name === api.name)!.port = api.port;
    }
  }
  await sys.proxy!.waitFor(api.name, 'ready', 120_000);
}

/** SIGTERM, as a deploy sends it: the instance drains and must exit 0 within API_SHUTDOWN_GRACE_MS (and a margin). */
async function stopApi(sys: System, api: ApiInstance): Promise<void> {
  const child = api.child;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  api.expectedExit = true;
  const gone = new Promise<number | null>((done) => child.once('exit', (code) => done(code)));
  child.kill('SIGTERM');
  // the delay, the grace, at most 5 s to close its clients, and a margin
  const limitMs = Number(sys.env.API_SHUTDOWN_DELAY_MS ?? 0) + Number(sys.env.API_SHUTDOWN_GRACE_MS) + 10_000;
  const code = await Promise.race([gone, sleep(limitMs).then(() => 'timeout' as const)]);
  if (code === 'timeout') {
    if (!sys.stopping) sys.violations.push(`${api.name}: still running ${limitMs / 1000} s after SIGTERM`);
    child.kill('SIGKILL');
    await gone;
  } else if (code !== 0 && !sys.stopping) {
    sys.violations.push(`${api.name}: exited with ${code} after SIGTERM (expected 0)`);
  }
}

/** docs/operations.md "Rolling restart of the API": one instance at a time; the next only once the new one is ready. */
async function rollingRestart(sys: System): Promise<void> {
  for (const api of sys.apis) {
    await stopApi(sys, api);
    await startApi(sys, api);
    sys.apiRestarts += 1;
  }
}

/** What the rotations deploy with: the environment, rolling restarts, the platform's signing secret, the CLI. */
function deployment(sys: System, dispatcherOptions: DispatcherOptions, background: Promise<unknown>[]): Deployment {
  return {
    env: sys.env,
    async deploy(targets, why) {
      say(`deploy (${why}): rolling restart of the API${targets === 'api+worker' ? ', worker restart' : ''}`);
      const worker = async () => {
        await stopWorker(sys, 'SIGTERM', 'stopped (deploy)');
        await startWorker(sys);
      };
      await Promise.all([rollingRestart(sys), targets === 'api+worker' ? worker() : undefined]);
    },
    signCallbacksWith: (secret) => void (dispatcherOptions.secret = secret),
    cli: (args) => runCli(sys, args),
    background: (task) => void background.push(task),
    say,
    sleep: (ms) => sleep(ms),
    violation: (text) => void sys.violations.push(text),
  };
}

function sampleRss(sys: System): void {
  const child = sys.worker;
  const inc = sys.incarnations[sys.incarnations.length - 1];
  if (!child?.pid || !inc || inc.pid !== child.pid || inc.endedAt) return;
  const kb = readRssKb(child.pid);
  if (kb !== undefined) inc.samples.push({ t: Date.now(), kb });
}

// ---------------------------------------------------------------------------------------------
// Load: issuances

const SCHEMAS = ['kyc-basic', 'proof-of-address', 'age-over-18'] as const;
type SchemaId = (typeof SCHEMAS)[number];
const VERIFIERS = ['did:air:soak-verifier-a', 'did:air:soak-verifier-b', 'did:air:soak-verifier-c'];
/** the state an authorization ends in, per schema route (config/schemas.yaml) */
const EXPECTED_STATE: Record<SchemaId, string> = {
  'kyc-basic': 'active',
  'proof-of-address': 'active',
  'age-over-18': 'routed',
};

interface IssuanceSpec {
  n: number;
  key: string;
  userId: string;
  schemaId: SchemaId;
  body: string;
  acceptedId?: string;
  stored: boolean;
  usedVerifiers: string[];
}

interface Counters {
  requests: number;
  issuancePosts: number;
  issuanceRetries: number;
  issuanceReplays: number;
  callbackAttempts: number;
  callbackAcked: number;
  callbackDuplicateNotAcked: number;
  deliveries: number;
  reads: number;
  /** reads answered 5xx or not at all (a dependency down): tolerated, counted */
  readsUnavailable: number;
}

interface Load {
  run: string;
  markerPrefix: string;
  specs: IssuanceSpec[];
  keys: Map<string, { payload: CallbackPayload; acked: boolean; deliveries: number }>;
  counters: Counters;
  violations: string[];
  tasks: Set<Promise<unknown>>;
  /** stops new work (load end, request cap) */
  stopNew: AbortController;
  /** aborts everything in flight (hard deadline, signal) */
  hardStop: AbortController;
  faultCounts: Record<FaultKind, number>;
  rotations: Record<RotationKind, number>;
}

function issuanceBody(load: Load, spec: Omit<IssuanceSpec, 'body'>): string {
  const marker = (kind: string) => `${load.markerPrefix}I${spec.n}${kind}`;
  const png = (kind: string, size: number) => ({
    kind,
    contentType: 'image/png',
    data: markedPng(marker(kind.toUpperCase().replace(/-/g, '')), size).toString('base64'),
  });
  const base = {
    userId: spec.userId,
    issuerDid: DEV_ISSUER_DID,
    credentialId: `prog-${spec.schemaId}`, // the schema's one program (config/schemas.yaml)
    schemaId: spec.schemaId,
    credentialSubject: { level: 1 + (spec.n % 3), note: marker('SUBJECT') },
  };
  switch (spec.schemaId) {
    case 'kyc-basic':
      return JSON.stringify({
        ...base,
        fields: { fullName: `${marker('NAME')} Doe`, dateOfBirth: '1990-01-01', documentNumber: marker('DOC') },
        files: [png('id-front', 6 * 1024), png('face-photo', 3 * 1024)],
      });
    case 'proof-of-address':
      return JSON.stringify({
        ...base,
        fields: { fullName: `${marker('NAME')} Roe`, address: `${marker('ADDR')} 1 Main St` },
        files: [png('utility-bill', 5 * 1024)],
      });
    case 'age-over-18':
      return JSON.stringify({ ...base, fields: { dateOfBirth: `2000-01-01 ${marker('DOB')}` } });
  }
}

/** POSTs until a 202 (same Idempotency-Key and body every time), as a client with retries would. */
async function postIssuance(sys: System, load: Load, spec: IssuanceSpec, replay: boolean): Promise<void> {
  let backoff = 500;
  while (!load.hardStop.signal.aborted) {
    load.counters.requests += 1;
    load.counters.issuancePosts += 1;
    let status: number | undefined;
    let body: { issuanceId?: string; error?: { code?: string } } = {};
    let replayed = false;
    try {
      const res = await fetch(`${sys.apiUrl}/v1/issuances`, {
        method: 'POST',
        headers: { 'x-api-key': DEV_API_KEY, 'content-type': 'application/json', 'idempotency-key': spec.key },
        body: spec.body,
        signal: AbortSignal.any([AbortSignal.timeout(30_000), load.hardStop.signal]),
      });
      status = res.status;
      replayed = res.headers.get('idempotent-replayed') === 'true';
      body = (await res.json().catch(() => ({}))) as typeof body;
    } catch {
      status = undefined; // timeout or connection refused: retry with the same key
    }
    if (status === 202 && body.issuanceId) {
      if (spec.acceptedId && spec.acceptedId !== body.issuanceId) {
        load.violations.push(`issuance ${spec.key}: a repeat answered another id (${body.issuanceId})`);
      }
      if (replay && !replayed)
        load.violations.push(`issuance ${spec.key}: a replay was not marked Idempotent-Replayed`);
      spec.acceptedId ??= body.issuanceId;
      return;
    }
    if (status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429) {
      load.violations.push(`issuance ${spec.key}: refused with ${status} ${body.error?.code ?? ''}`);
      return;
    }
    load.counters.issuanceRetries += 1;
    await sleep(backoff * rand(0.5, 1), load.hardStop.signal);
    backoff = Math.min(backoff * 2, 10_000);
  }
}

/**
 * One read, as clients and the platform make them: an issuance's status (the client that posted it)
 * or the partner JWKS (the platform verifying our tokens). A 4XX is a violation; a 5XX or no answer
 * (a dependency down) is counted.
 */
async function read(sys: System, load: Load): Promise<void> {
  const accepted = load.specs.filter((s) => s.acceptedId);
  const spec = accepted.length > 0 && Math.random() < 0.7 ? pick(accepted) : undefined;
  const path = spec ? `/v1/issuances/${spec.acceptedId}` : '/.well-known/jwks.json';
  load.counters.requests += 1;
  load.counters.reads += 1;
  const status = await fetch(`${sys.apiUrl}${path}`, {
    headers: spec ? { 'x-api-key': DEV_API_KEY } : {},
    signal: AbortSignal.any([AbortSignal.timeout(15_000), load.hardStop.signal]),
  })
    .then(async (res) => {
      await res.body?.cancel();
      return res.status;
    })
    .catch(() => undefined);
  if (status !== undefined && status >= 400 && status < 500) {
    load.violations.push(`read ${spec ? `issuance ${spec.acceptedId}` : 'jwks'}: answered ${status}`);
  } else if (status === undefined || status >= 500) {
    load.counters.readsUnavailable += 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Load: callbacks

function track(load: Load, task: Promise<unknown>): void {
  load.tasks.add(task);
  void task.finally(() => load.tasks.delete(task));
}

function dispatchCallback(
  sys: System,
  load: Load,
  dispatcher: ReturnType<typeof createDispatcher>,
  keyId: string,
  messageId: string,
  duplicates: number,
): void {
  const entry = load.keys.get(keyId)!;
  entry.deliveries += 1;
  load.counters.deliveries += 1;
  const task = dispatcher
    .dispatch(`${sys.apiUrl}/v1/cak/callbacks`, entry.payload, {
      messageId,
      duplicates,
      signal: load.hardStop.signal,
    })
    .then((outcome: DispatchOutcome) => {
      load.counters.requests += outcome.duplicateStatuses.length;
      if (outcome.delivered) {
        entry.acked = true;
        load.counters.callbackAcked += 1;
      }
      for (const s of outcome.duplicateStatuses) {
        if (s >= 200 && s < 300) load.counters.callbackAcked += 1;
        else load.counters.callbackDuplicateNotAcked += 1;
      }
      for (const a of [...outcome.attempts.map((x) => x.status), ...outcome.duplicateStatuses]) {
        if (a !== undefined && a >= 400 && a < 500) {
          load.violations.push(`callback ${keyId} (${messageId}): answered ${a} (a valid delivery refused)`);
        }
      }
    });
  track(load, task);
}

function newCallbackKey(sys: System, load: Load, dispatcher: ReturnType<typeof createDispatcher>): void {
  const candidates = load.specs.filter((s) => s.stored && s.usedVerifiers.length < VERIFIERS.length);
  if (candidates.length === 0) return;
  // prefer recently stored users, so consent follows issuance closely, but reach back sometimes
  const spec = Math.random() < 0.7 ? candidates[candidates.length - 1]! : pick(candidates);
  const verifierDid = VERIFIERS.find((v) => !spec.usedVerifiers.includes(v))!;
  spec.usedVerifiers.push(verifierDid);
  const payload: CallbackPayload = { userId: spec.userId, verifierDid, schemaId: spec.schemaId };
  const keyId = `${spec.userId}|${verifierDid}|${spec.schemaId}`;
  load.keys.set(keyId, { payload, acked: false, deliveries: 0 });
  const messageId = `msg_${load.run}_${load.keys.size}`;
  // the delivery, plus 0-2 copies of the same message after its 2XX (a lost ack)
  dispatchCallback(sys, load, dispatcher, keyId, messageId, Math.floor(rand(0, 3)));
  // a platform retry of the same message overlapping the first one
  if (Math.random() < 0.25) dispatchCallback(sys, load, dispatcher, keyId, messageId, 0);
  // a fresh message (new webhook-id, fresh signature) for the same consent, a little later
  if (Math.random() < 0.5) {
    const later = sleep(rand(2_000, 60_000), load.stopNew.signal).then(() => {
      if (!load.stopNew.signal.aborted) {
        dispatchCallback(sys, load, dispatcher, keyId, `${messageId}_again`, Math.floor(rand(0, 2)));
      }
    });
    track(load, later);
  }
}

/** Marks issuances stored (completed; `stored` in documents from before the status route derived it) so that consent can follow them. */
async function refreshStored(db: Db, load: Load): Promise<void> {
  const pending = load.specs.filter((s) => s.acceptedId && !s.stored).map((s) => s.acceptedId!);
  if (pending.length === 0) return;
  const stored = await db
    .collection<{ _id: string }>('issuances')
    .find({ _id: { $in: pending }, status: { $in: ['stored', 'completed'] } }, { projection: { _id: 1 } })
    .toArray();
  const ids = new Set(stored.map((d) => d._id));
  for (const s of load.specs) if (s.acceptedId && ids.has(s.acceptedId)) s.stored = true;
}

// ---------------------------------------------------------------------------------------------
// Faults

type FaultKind = 'worker-kill' | 'db-restart' | 'temporal-restart' | 'api-rolling-restart';
const FAULTS: FaultKind[] = ['worker-kill', 'db-restart', 'temporal-restart', 'api-rolling-restart'];

async function injectFault(sys: System, kind: FaultKind): Promise<void> {
  const quiet = () => undefined;
  const down = rand(3_000, 15_000);
  switch (kind) {
    case 'worker-kill': {
      const inc = sys.incarnations[sys.incarnations.length - 1];
      say(`fault: SIGKILL worker #${inc?.n} (pid ${sys.worker?.pid})`);
      await stopWorker(sys, 'SIGKILL', 'SIGKILL (fault)');
      await sleep(rand(1_000, 5_000));
      await startWorker(sys);
      return;
    }
    case 'db-restart':
      say(`fault: database down for ${(down / 1000).toFixed(0)} s`);
      await stopService(sys.paths, 'database');
      await sleep(down);
      await startDatabase(sys.paths, { port: sys.ports.db }, quiet);
      say('fault: database back');
      return;
    case 'temporal-restart':
      say(`fault: Temporal down for ${(down / 1000).toFixed(0)} s`);
      await stopService(sys.paths, 'temporal');
      await sleep(down);
      await startTemporal(sys.paths, { port: sys.ports.temporal, uiPort: sys.ports.ui, namespace: 'default' }, quiet);
      say('fault: Temporal back');
      return;
    case 'api-rolling-restart':
      say('fault: rolling restart of the API');
      await rollingRestart(sys);
      say('fault: API restarted');
      return;
  }
}

// ---------------------------------------------------------------------------------------------
// Settle and check

/** Runs (executions, of any status) per workflow id. */
async function listRuns(client: Client, workflowType: string): Promise<Map<string, { total: number }>> {
  const runs = new Map<string, { total: number }>();
  for await (const wf of client.workflow.list({ query: `WorkflowType = '${workflowType}'` })) {
    const entry = runs.get(wf.workflowId) ?? { total: 0 };
    entry.total += 1;
    runs.set(wf.workflowId, entry);
  }
  return runs;
}

async function settled(db: Db, client: Client, load: Load, secret: string): Promise<string | undefined> {
  if (load.tasks.size > 0) return `${load.tasks.size} requests still retrying`;
  const accepted = load.specs.filter((s) => s.acceptedId).map((s) => s.acceptedId!);
  const open = await db
    .collection('issuances')
    .countDocuments({ _id: { $in: accepted as never[] }, status: { $nin: ['completed', 'failed'] } });
  if (open > 0) return `${open} issuances not terminal`;
  const inbox = await db.collection('callback_inbox').countDocuments({});
  if (inbox > 0) return `${inbox} callbacks in the inbox`;
  const ackedIds = [...load.keys.values()].filter((k) => k.acked).map((k) => authorizationIdFor(secret, k.payload));
  const final = await db
    .collection('authorizations')
    .countDocuments({ _id: { $in: ackedIds as never[] }, state: { $in: ['active', 'routed'] } });
  if (final < ackedIds.length) return `${ackedIds.length - final} authorizations not routed yet`;
  // authorization runs stay open for their access window; routed and audited is their settled state
  const audited = await db
    .collection('audit_events')
    .distinct('data.authorizationId', { type: 'authorization', 'data.authorizationId': { $in: ackedIds } });
  if (audited.length < ackedIds.length)
    return `${ackedIds.length - audited.length} authorizations not audited (sealed) yet`;
  const unsealed = await db.collection('audit_pending').countDocuments({});
  if (unsealed > 0) return `${unsealed} audit events not sealed yet`;
  const { count: running } = await client.workflow.count(
    `ExecutionStatus = 'Running' AND WorkflowType = 'issuanceWorkflow'`,
  );
  if (running > 0) return `${running} issuance runs still running`;
  return undefined;
}

interface Report {
  failures: string[];
  line: string;
}

async function check(sys: System, db: Db, client: Client, load: Load, elapsedMs: number): Promise<Report> {
  const failures = [...load.violations];
  const secret = sys.config.ID_HMAC_SECRET;

  // Issuances: each accepted one completed, with exactly one record version and exactly one run.
  const issuanceRuns = await listRuns(client, 'issuanceWorkflow');
  const accepted = load.specs.filter((s) => s.acceptedId);
  let stored = 0;
  let issuanceLost = 0;
  let issuanceDuplicated = 0;
  for (const spec of accepted) {
    const doc = await db
      .collection<{ _id: string; status: string; recordId: string; workflowId: string; error?: { type: string } }>(
        'issuances',
      )
      .findOne({ _id: spec.acceptedId! });
    const versions = doc ? await db.collection('record_versions').countDocuments({ recordId: doc.recordId }) : 0;
    const own = await db.collection('record_versions').countDocuments({ _id: spec.acceptedId! as never });
    const runs = doc ? (issuanceRuns.get(doc.workflowId)?.total ?? 0) : 0;
    if (!doc || doc.status !== 'completed' || own !== 1) {
      issuanceLost += 1;
      failures.push(
        `issuance ${spec.acceptedId} (${spec.key}) lost: status ${doc?.status ?? 'missing'}${doc?.error ? ` (${doc.error.type})` : ''}, own version ${own}`,
      );
    } else if (versions !== 1 || runs !== 1) {
      issuanceDuplicated += 1;
      failures.push(`issuance ${spec.acceptedId} (${spec.key}) duplicated: ${versions} versions, ${runs} runs`);
    } else {
      stored += 1;
    }
  }
  const issuanceDocs = await db.collection('issuances').countDocuments({});
  if (issuanceDocs !== accepted.length) {
    failures.push(`issuances collection has ${issuanceDocs} documents for ${accepted.length} accepted issuances`);
  }
  if (issuanceRuns.size !== accepted.length)
    failures.push(`${issuanceRuns.size} issuance workflow ids for ${accepted.length} issuances`);

  // Callbacks: each acknowledged key has one authorization, one sealed audit event and one run (of
  // any status: it stays open for the access window, longer than the soak).
  const authRuns = await listRuns(client, 'authorizationWorkflow');
  const acked = [...load.keys.values()].filter((k) => k.acked);
  const authorizations = db.collection<{ _id: string; state: string }>('authorizations');
  const events = db.collection<{ _id: string }>('audit_events');
  let callbackLost = 0;
  let callbackDuplicated = 0;
  for (const key of acked) {
    const id = authorizationIdFor(secret, key.payload);
    const doc = await authorizations.findOne({ _id: id });
    const sameKey = await authorizations.countDocuments({ ...key.payload });
    const audited = await events.find({ type: 'authorization', 'data.authorizationId': id }).toArray();
    const audits = audited.length;
    const runs = authRuns.get(authorizationWorkflowId(id)) ?? { total: 0 };
    const expected = EXPECTED_STATE[key.payload.schemaId as SchemaId];
    const label = `callback key ${key.payload.userId}/${key.payload.verifierDid}/${key.payload.schemaId}`;
    if (!doc || audits === 0 || runs.total === 0) {
      callbackLost += 1;
      failures.push(
        `${label} lost: authorization ${doc ? doc.state : 'missing'}, ${audits} audit events, ${runs.total} runs`,
      );
    } else if (sameKey !== 1 || audits !== 1 || runs.total !== 1) {
      callbackDuplicated += 1;
      failures.push(`${label} duplicated: ${sameKey} authorizations, ${audits} audit events, ${runs.total} runs`);
    } else if (doc.state !== expected) {
      failures.push(`${label}: state ${doc.state} (expected ${expected})`);
    } else if (!audited[0]!._id.startsWith(`authorization:${id}:`)) {
      failures.push(`${label}: audit event ${audited[0]!._id} is not keyed authorization:${id}:<receivedAt>`);
    }
  }
  const authorizationCount = await authorizations.countDocuments({});
  const auditCount = await events.countDocuments({ type: 'authorization' });
  if (authorizationCount !== acked.length) {
    // a key whose every delivery was cut off by the hard stop may exist without an ack; nothing else may
    const sent = load.keys.size;
    if (authorizationCount > sent || authorizationCount < acked.length) {
      failures.push(`${authorizationCount} authorizations for ${acked.length} acknowledged keys (${sent} sent)`);
    }
  }
  if (auditCount !== authorizationCount)
    failures.push(`${auditCount} authorization audit events for ${authorizationCount} authorizations`);
  if (authRuns.size !== authorizationCount)
    failures.push(`${authRuns.size} authorization workflow ids for ${authorizationCount} authorizations`);
  const chain = await auditRepository(db, parseKeyring(sys.config.CAK_AUDIT_KEYS)).verifyChain();
  if (!chain.ok) failures.push(`audit chain broken at seq ${chain.seq} (${chain.eventId}): ${chain.reason}`);
  if (chain.unsealed > 0) failures.push(`${chain.unsealed} audit events still pending (not sealed)`);
  const inbox = await db.collection('callback_inbox').countDocuments({});
  if (inbox > 0) failures.push(`${inbox} callbacks left in the inbox`);
  const deliveriesLogged = await db.collection('callback_deliveries').countDocuments({});

  // Managed rotation, runbook step 4: after the last rewrap (main, once settled) every stored
  // package is under the active key, so the old one could be removed.
  const managed = parseKeyring(loadConfig(sys.env).CAK_MANAGED_KEYS).activeKeyId;
  if (load.rotations.managed > 0) {
    const counts = await packageKeyCounts(db, sys.config.GRIDFS_THRESHOLD_BYTES);
    for (const [kid, count] of Object.entries(counts)) {
      if (kid !== managed) failures.push(`after the last rewrap, packages under ${kid}: ${JSON.stringify(count)}`);
    }
  }

  // Rolling restarts: the proxy always had an instance to send to, and a retry on the other one sufficed.
  const proxy = sys.proxy!.stats;
  if (proxy.failed + proxy.noUpstream > 0) {
    failures.push(
      `the proxy answered ${proxy.failed} requests 502 (connection failed on both instances) and ${proxy.noUpstream} 503 (no instance up)`,
    );
  }

  // Plaintext: every collection (GridFS included), every run's full history, and the processes' logs.
  const markers = [load.markerPrefix];
  const dbHits = await scanDatabase(db, markers);
  const { hits: historyHits, runs: scannedRuns } = await scanHistoriesWhere(client, '', markers);
  const logsDir = join(sys.paths.dataDir, 'logs');
  const logHits = readdirSync(logsDir).filter(
    (name) => findMarkers(readFileSync(join(logsDir, name)), markers).length > 0,
  );
  const plaintext = dbHits.length + historyHits.length + logHits.length;
  for (const hit of [...dbHits, ...historyHits, ...logHits].slice(0, 20)) failures.push(`plaintext marker in ${hit}`);
  say(`scanned ${scannedRuns} run histories, every collection and the logs for plaintext markers`);

  // Worker memory.
  const verdicts = sys.incarnations.map((inc) => ({ inc, verdict: judgeIncarnation(inc) }));
  for (const { inc, verdict } of verdicts) {
    say(
      `worker #${inc.n} pid ${inc.pid}: lived ${duration((inc.endedAt ?? Date.now()) - inc.startedAt)}, ended ${inc.end ?? 'running'}; ` +
        `rss first ${mb(verdict.firstKb)} baseline ${mb(verdict.baselineKb)} end ${mb(verdict.endKb)} max ${mb(verdict.maxKb)}; ` +
        `${verdict.judged ? (verdict.ok ? 'ok' : 'GROWTH') : 'not judged'} (${verdict.reason})`,
    );
    if (verdict.judged && !verdict.ok) failures.push(`worker #${inc.n} memory: ${verdict.reason}`);
  }
  const judged = verdicts.filter((v) => v.verdict.judged);
  const growth = judged.length === 0 ? 'not-judged' : judged.every((v) => v.verdict.ok) ? 'ok' : 'FAILED';
  const last = verdicts[verdicts.length - 1]?.verdict;
  const maxKb = Math.max(0, ...verdicts.map((v) => v.verdict.maxKb));

  const faults = load.faultCounts;
  const rotations = ROTATIONS.map(
    (kind) => `${kind}=${load.rotations[kind] < 0 ? 'FAILED' : load.rotations[kind]}`,
  ).join(' ');
  const rate = (load.counters.requests / (elapsedMs / 1000)).toFixed(1);
  const line =
    `soak: ${duration(elapsedMs)} requests=${load.counters.requests} (${rate}/s)` +
    ` | issuances accepted=${accepted.length} stored=${stored} lost=${issuanceLost} duplicated=${issuanceDuplicated}` +
    ` | callbacks acked=${load.counters.callbackAcked} keys=${acked.length} authorizations=${authorizationCount} audit-events=${auditCount}` +
    ` lost=${callbackLost} duplicated=${callbackDuplicated}` +
    ` | chain=${chain.ok ? 'intact' : 'BROKEN'} unsealed=${chain.unsealed} | plaintext-markers=${plaintext}` +
    ` | faults ${FAULTS.map((kind) => `${kind}=${faults[kind]}`).join(' ')}` +
    (sys.workerUnexpectedExits > 0 ? ` worker-exits=${sys.workerUnexpectedExits}` : '') +
    ` | rotations ${rotations} | api-restarts=${sys.apiRestarts}` +
    ` proxy-retried=${sys.proxy?.stats.retried ?? 0} proxy-no-upstream=${sys.proxy?.stats.noUpstream ?? 0}` +
    ` proxy-failed=${sys.proxy?.stats.failed ?? 0}` +
    (sys.apiUnexpectedExits > 0 ? ` api-exits=${sys.apiUnexpectedExits}` : '') +
    ` | worker-rss start=${mb(last?.baselineKb ?? 0)} end=${mb(last?.endKb ?? 0)} max=${mb(maxKb)} growth=${growth}` +
    ` (incarnations=${sys.incarnations.length} judged=${judged.length})`;
  say(
    `requests=${load.counters.requests} issuance-posts=${load.counters.issuancePosts} retries=${load.counters.issuanceRetries} ` +
      `replays=${load.counters.issuanceReplays} callback-deliveries=${load.counters.deliveries} attempts=${load.counters.callbackAttempts} ` +
      `duplicate-copies-not-acked=${load.counters.callbackDuplicateNotAcked} deliveries-logged=${deliveriesLogged} ` +
      `reads=${load.counters.reads} reads-unavailable=${load.counters.readsUnavailable} proxy-requests=${sys.proxy?.stats.requests}`,
  );
  return { failures, line };
}

// ---------------------------------------------------------------------------------------------
// Main

/**
 * The soak's own copy of config/schemas.yaml, every callback route's access window set longer than
 * the whole soak: a delivery after the window is a new consent by design, and the checks count one
 * authorization run and one audit event per acknowledged key.
 */
function soakRegistry(dataDir: string): string {
  const registry = parseYaml(readFileSync('config/schemas.yaml', 'utf8')) as {
    schemas: Record<string, { callback?: { accessWindow?: string } }>;
  };
  const days = Math.ceil((SETTINGS.minutes + SETTINGS.settleMinutes) / 1440) + 1;
  for (const schema of Object.values(registry.schemas)) {
    if (schema.callback) schema.callback.accessWindow = `${days}d`;
  }
  const path = join(dataDir, 'schemas.yaml');
  writeFileSync(path, stringifyYaml(registry));
  return path;
}

let cleanupOnce: Promise<void> | undefined;

function cleanup(sys: System | undefined, load: Load | undefined, extra: (() => Promise<void>)[]): Promise<void> {
  cleanupOnce ??= (async () => {
    load?.stopNew.abort();
    load?.hardStop.abort();
    if (!sys) return;
    sys.stopping = true;
    await stopWorker(sys, 'SIGTERM', 'stopped').catch(() => undefined);
    await Promise.all(sys.apis.map((api) => stopApi(sys, api).catch(() => undefined)));
    await sys.proxy?.close().catch(() => undefined);
    for (const close of extra) await close().catch(() => undefined);
    await sys.emulator?.close().catch(() => undefined);
    await stopService(sys.paths, 'temporal').catch(() => undefined);
    await stopService(sys.paths, 'database').catch(() => undefined);
    if (process.env.SOAK_KEEP_LOGS === '1') {
      const keep = resolve('.data', 'soak-logs', new Date().toISOString().replace(/[:.]/g, '-'));
      cpSync(join(sys.paths.dataDir, 'logs'), keep, { recursive: true });
      say(`logs kept in ${keep}`);
    }
    rmSync(sys.paths.dataDir, { recursive: true, force: true });
  })();
  return cleanupOnce;
}

async function main(): Promise<number> {
  const dataDir = mkdtempSync(join(tmpdir(), 'cak-soak-'));
  const defaults = loadConfig({});
  const paths: Paths = { dataDir, toolsDir: resolve(process.env.CAK_TOOLS_DIR ?? '.tools') };
  const ports: Ports = {
    temporal: await freePort(),
    ui: await freePort(),
    db: await freePort(),
    proxy: await freePort(),
    apiA: await freePort(),
    apiB: await freePort(),
    emulator: await freePort(),
    workerHealth: await freePort(),
    workerMetrics: await freePort(),
  };
  const apiUrl = `http://127.0.0.1:${ports.proxy}`;
  const emulatorUrl = `http://127.0.0.1:${ports.emulator}`;
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'development',
    LOG_LEVEL: process.env.SOAK_LOG_LEVEL ?? 'warn',
    CAK_DATA_DIR: dataDir,
    TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
    TEMPORAL_NAMESPACE: 'default',
    TEMPORAL_TASK_QUEUE: 'cak-soak',
    MONGODB_URI: `mongodb://127.0.0.1:${ports.db}/`,
    MONGODB_DB: 'cak_soak',
    API_HOST: '127.0.0.1',
    API_RATE_LIMIT_PER_MINUTE: '100000',
    PUBLIC_RATE_LIMIT_PER_MINUTE: '100000',
    // longer than the slowest request under the soak's faults (an upload while the database is
    // locked by a restart can take over 10 s): a drain cuts nothing a client is still owed
    API_SHUTDOWN_GRACE_MS: '30000',
    API_METRICS_PORT: '0', // two instances: each its own free metrics port
    SCHEMA_REGISTRY_PATH: soakRegistry(dataDir),
    // explicit, so that the rotations have something to rotate from (the same dev values as the defaults)
    CAK_CODEC_KEYS: defaults.CAK_CODEC_KEYS,
    CAK_MANAGED_KEYS: defaults.CAK_MANAGED_KEYS,
    CALLBACK_SECRETS: defaults.CALLBACK_SECRETS,
    PARTNER_SIGNING_KEYS: JSON.stringify([devPartnerJwk(defaults.PARTNER_ID)]),
    PARTNER_TOKEN_TTL_SECONDS: '30', // the partner rotation waits this out before removing the old key
    AIR_PLATFORM_URL: emulatorUrl,
    EMULATOR_ENABLED: 'false',
    EMULATOR_HOST: '127.0.0.1',
    EMULATOR_PORT: String(ports.emulator),
    EMULATOR_JWKS_URL: `${apiUrl}/.well-known/jwks.json`,
    WORKER_HEALTH_HOST: '127.0.0.1',
    WORKER_HEALTH_PORT: String(ports.workerHealth),
    // the SDK's Prometheus endpoint: a port of its own, so the soak never collides with another worker
    WORKER_SDK_METRICS_PORT: String(ports.workerMetrics),
    WORKER_SHUTDOWN_GRACE_MS: '10000',
  };
  const config = loadConfig(env);
  const sys: System = {
    paths,
    ports,
    config,
    env,
    apiUrl,
    apis: [
      { name: 'api-a', port: ports.apiA, expectedExit: false },
      { name: 'api-b', port: ports.apiB, expectedExit: false },
    ],
    apiRestarts: 0,
    apiUnexpectedExits: 0,
    violations: [],
    incarnations: [],
    workerUnexpectedExits: 0,
    workerExpectedExit: false,
    stopping: false,
  };
  const run = randomUUID().replace(/-/g, '').slice(0, 8);
  const load: Load = {
    run,
    markerPrefix: `SOAKPII${run}`,
    specs: [],
    keys: new Map(),
    counters: {
      requests: 0,
      issuancePosts: 0,
      issuanceRetries: 0,
      issuanceReplays: 0,
      callbackAttempts: 0,
      callbackAcked: 0,
      callbackDuplicateNotAcked: 0,
      deliveries: 0,
      reads: 0,
      readsUnavailable: 0,
    },
    violations: sys.violations,
    tasks: new Set(),
    stopNew: new AbortController(),
    hardStop: new AbortController(),
    faultCounts: { 'worker-kill': 0, 'db-restart': 0, 'temporal-restart': 0, 'api-rolling-restart': 0 },
    rotations: { codec: 0, managed: 0, callback: 0, partner: 0 },
  };
  // many concurrent waits (and the dispatcher's backoffs) listen on these two
  setMaxListeners(0, load.stopNew.signal, load.hardStop.signal);
  const closers: (() => Promise<void>)[] = [];
  const onSignal = (signal: NodeJS.Signals) => {
    say(`${signal}: stopping the soak and its servers`);
    void cleanup(sys, load, closers).finally(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  let rssTimer: NodeJS.Timeout | undefined;
  try {
    say(
      `run ${run}: ${SETTINGS.minutes} min (at most ${SETTINGS.maxRequests} requests), faults every ${SETTINGS.faultMinSeconds}-${SETTINGS.faultMaxSeconds} s; state in ${dataDir}`,
    );
    say(
      `memory rule: after ${RSS_RULE.warmupMs / 1000} s warm-up, end <= ${RSS_RULE.maxGrowthFactor} x baseline and the last third grows <= ${RSS_RULE.maxSlopePerMinute * 100} %/min (lives >= ${(RSS_RULE.warmupMs + RSS_RULE.minJudgedMs) / 1000} s)`,
    );
    await startTemporal(paths, { port: ports.temporal, uiPort: ports.ui, namespace: 'default' }, say);
    await startDatabase(paths, { port: ports.db }, say);
    sys.proxy = await startProxy({
      port: ports.proxy,
      upstreams: sys.apis.map((api) => ({ name: api.name, port: api.port })),
      checkEveryMs: 100,
    });
    await Promise.all(sys.apis.map((api) => startApi(sys, api)));
    sys.emulator = await startEmulator(config, { port: ports.emulator, jwksUrl: `${apiUrl}/.well-known/jwks.json` });
    await startWorker(sys);
    rssTimer = setInterval(() => sampleRss(sys), SETTINGS.rssEveryMs);

    const mongo = new MongoClient(config.MONGODB_URI, { serverSelectionTimeoutMS: 2_000 });
    closers.push(() => mongo.close());
    const db = mongo.db(config.MONGODB_DB);
    // the dispatcher reads `secret` at every attempt: the callback rotation switches it here, as the
    // platform does (it signs every attempt afresh, retries of older deliveries included)
    const dispatcherOptions: DispatcherOptions = {
      scheme: 'standard-webhooks',
      secret: parseSecrets(config.CALLBACK_SECRETS)[0]!,
      timeoutMs: 15_000,
      initialBackoffMs: 500,
      maxBackoffMs: 10_000,
      maxAttempts: 0,
      onAttempt: () => {
        load.counters.requests += 1;
        load.counters.callbackAttempts += 1;
      },
    };
    const dispatcher = createDispatcher(dispatcherOptions);
    const background: Promise<unknown>[] = [];
    const deploy = deployment(sys, dispatcherOptions, background);

    // --- load and faults
    const loadMs = SETTINGS.minutes * 60_000;
    const loadStart = Date.now();
    const loadEnd = loadStart + loadMs;
    const stopNew = load.stopNew.signal;
    const capReached = () => load.counters.requests >= SETTINGS.maxRequests;
    const every = (perSecond: number) => (1000 / perSecond) * rand(0.7, 1.3);
    // One rotation each at 10, 20, 30 and 40 % of the run; the load goes on until all are done. Three
    // of them restart the worker, so they come first and the worker is not killed in the last 60 %:
    // its last life is long enough for the memory rule to judge it.
    const plan = ROTATIONS.map((kind, i) => ({ kind, at: loadStart + (loadMs * (i + 1)) / 10 }));
    const quietWorkerFrom = loadStart + loadMs * 0.4;
    const rotationsDone = () => ROTATIONS.every((kind) => load.rotations[kind] !== 0); // done or failed
    const inFlightPosts = new Set<Promise<void>>();

    const issuanceLoop = (async () => {
      while (!stopNew.aborted) {
        if (inFlightPosts.size < SETTINGS.maxIssuancesInFlight) {
          const n = load.specs.length + 1;
          const schemaId = SCHEMAS[n % SCHEMAS.length]!;
          const partial = {
            n,
            key: `soak-${run}-k${n}`,
            userId: `soak-${run}-u${n}`,
            schemaId,
            stored: false,
            usedVerifiers: [],
          };
          const spec: IssuanceSpec = { ...partial, body: issuanceBody(load, partial) };
          load.specs.push(spec);
          const post = postIssuance(sys, load, spec, false);
          inFlightPosts.add(post);
          void post.finally(() => inFlightPosts.delete(post));
          const replay = post.then(async () => {
            // some clients repeat a request they already got an answer for
            if (spec.acceptedId && Math.random() < 0.2 && !stopNew.aborted) {
              await sleep(rand(1_000, 30_000), stopNew);
              load.counters.issuanceReplays += 1;
              await postIssuance(sys, load, spec, true);
            }
          });
          track(load, replay);
        }
        await sleep(every(SETTINGS.issuancesPerSecond), stopNew);
      }
    })();

    const callbackLoop = (async () => {
      let lastRefresh = 0;
      while (!stopNew.aborted) {
        if (Date.now() - lastRefresh > 3_000) {
          lastRefresh = Date.now();
          await refreshStored(db, load).catch(() => undefined); // the database may be down: next time
        }
        newCallbackKey(sys, load, dispatcher);
        await sleep(every(SETTINGS.callbacksPerSecond), stopNew);
      }
    })();

    const readLoop = (async () => {
      while (!stopNew.aborted) {
        track(load, read(sys, load));
        await sleep(every(SETTINGS.readsPerSecond), stopNew);
      }
    })();

    // faults and rotations, one at a time: a rotation when its time has come, else a random fault
    const faultLoop = (async () => {
      const nextFault = () => Date.now() + rand(SETTINGS.faultMinSeconds, SETTINGS.faultMaxSeconds) * 1000;
      let faultAt = nextFault();
      while (!stopNew.aborted) {
        const rotation = plan.find((r) => load.rotations[r.kind] === 0);
        await sleep(Math.max(0, Math.min(faultAt, rotation?.at ?? Infinity) - Date.now()), stopNew);
        if (stopNew.aborted) break;
        try {
          if (rotation && rotation.at <= Date.now()) {
            say(`rotation: ${rotation.kind} keys`);
            await rotate(rotation.kind, deploy, config.PARTNER_ID);
            load.rotations[rotation.kind] += 1;
            say(`rotation: ${rotation.kind} done`);
          } else {
            const kind = pick(
              Date.now() >= quietWorkerFrom && rotationsDone() ? FAULTS.filter((f) => f !== 'worker-kill') : FAULTS,
            );
            load.faultCounts[kind] += 1;
            await injectFault(sys, kind);
            faultAt = nextFault();
          }
        } catch (err) {
          sys.violations.push(`fault or rotation failed: ${err instanceof Error ? err.message : String(err)}`);
          if (rotation) load.rotations[rotation.kind] = -1; // not retried: reported as failed
        }
      }
    })();

    let lastProgress = Date.now();
    while ((Date.now() < loadEnd || !rotationsDone()) && !capReached()) {
      await sleep(1_000);
      if (Date.now() - lastProgress >= 30_000) {
        lastProgress = Date.now();
        const inc = sys.incarnations[sys.incarnations.length - 1];
        say(
          `progress: issuances ${load.specs.filter((s) => s.acceptedId).length}/${load.specs.length} accepted, ` +
            `${load.specs.filter((s) => s.stored).length} stored; callback keys ${load.keys.size}, acked ${load.counters.callbackAcked}; ` +
            `requests ${load.counters.requests}; in flight ${load.tasks.size}; api restarts ${sys.apiRestarts}; ` +
            `rotations ${ROTATIONS.filter((k) => load.rotations[k] > 0).join(',') || 'none'}; worker #${inc?.n} rss ${mb(inc?.samples[inc.samples.length - 1]?.kb ?? 0)}`,
        );
      }
    }
    const elapsedMs = Date.now() - loadStart;
    say(
      `load stops (${capReached() ? 'request cap' : 'time'}); waiting for the fault in progress and in-flight requests`,
    );
    load.stopNew.abort();
    await Promise.all([issuanceLoop, callbackLoop, readLoop, faultLoop]);
    if (!sys.worker) await startWorker(sys); // final state: everything up
    const final = loadConfig(sys.env); // after the rotations: both codec keys decode the histories

    // --- settle (bounded)
    const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
    closers.unshift(() => connection.close());
    const client = new Client({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter: dataConverterFor(parseKeyring(final.CAK_CODEC_KEYS)),
    });
    const settleDeadline = Date.now() + SETTINGS.settleMinutes * 60_000;
    let waitingFor: string | undefined = 'start';
    let lastSay = 0;
    while (Date.now() < settleDeadline) {
      waitingFor = await settled(db, client, load, config.ID_HMAC_SECRET).catch(
        (err: unknown) => `probe failed: ${String(err)}`,
      );
      if (waitingFor === undefined) break;
      if (Date.now() - lastSay > 15_000) {
        lastSay = Date.now();
        say(`settling: ${waitingFor}`);
      }
      await sleep(2_000);
    }
    load.hardStop.abort(); // whatever still retries now is cut off
    await Promise.all([...load.tasks]);
    clearInterval(rssTimer);
    sampleRss(sys);
    say(waitingFor === undefined ? 'settled' : `NOT settled after ${SETTINGS.settleMinutes} min: ${waitingFor}`);

    // the managed rotation's last step: once its first rewrap is over, rewrap what was in flight then
    if (background.length > 0) say('waiting for the rewrap started by the managed rotation');
    await Promise.all(background);
    if (load.rotations.managed > 0) await rewrap(deploy);
    const report = await check(sys, db, client, load, elapsedMs);
    if (waitingFor !== undefined)
      report.failures.unshift(`did not settle within ${SETTINGS.settleMinutes} min: ${waitingFor}`);
    for (const failure of report.failures.slice(0, 50)) say(`FAIL ${failure}`);
    if (report.failures.length > 50) say(`... and ${report.failures.length - 50} more failures`);
    process.stdout.write(`${report.line}\n`);
    return report.failures.length === 0 ? 0 : 1;
  } finally {
    if (rssTimer) clearInterval(rssTimer);
    await cleanup(sys, load, closers);
  }
}

main()
  .then((code) => process.exit(code))
  .catch((err: unknown) => {
    say(`soak failed: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    process.exit(1);
  });
