/**
 * `npm run soak [-- --minutes N --max-requests N]`: correctness under faults, for a bounded time.
 *
 * Starts its own Temporal dev server and FerretDB (free loopback ports, a temp data dir), the API
 * and the worker as child processes (the worker so it can be SIGKILLed) and the AIR platform
 * emulator in-process. For SOAK_MINUTES (default 10) it sends a mixed load, as the platform and a
 * client would: issuances (JSON, small items carrying distinctive plaintext markers, fixed
 * Idempotency-Keys, some replayed, every POST retried with its key until a 202) and signed
 * authorization callbacks (Standard Webhooks, via the emulator's dispatcher: retried until 2XX,
 * redelivered under the same webhook-id, and fresh deliveries of the same key). Meanwhile, every
 * 20-60 s, one fault: SIGKILL the worker and start another, stop and restart the database (same
 * port and data), or stop and restart Temporal (same port and state file). Then, with everything
 * up, it waits (bounded) for the work to settle, checks the invariants, prints one summary line on
 * stdout and exits 1 if any failed. Docs: docs/operations.md, "Soak".
 *
 * Settings: SOAK_MINUTES / --minutes (10), SOAK_MAX_REQUESTS / --max-requests (20000 HTTP requests
 * sent by the load), SOAK_SETTLE_MINUTES (5), SOAK_FAULT_MIN_SECONDS / SOAK_FAULT_MAX_SECONDS (20/60),
 * SOAK_KEEP_LOGS=1 (copy the servers' logs to .data/soak-logs/ before the temp dir is removed).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { cpSync, existsSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync } from 'node:fs';
import { setMaxListeners } from 'node:events';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { Client, Connection } from '@temporalio/client';
import { MongoClient, type Db } from 'mongodb';
import { DEV_API_KEY, loadConfig, type Config } from '../src/config';
import { parseKeyring } from '../src/crypto/keyring';
import { dataConverterFor } from '../src/crypto/payload-codec';
import { authorizationIdFor, authorizationWorkflowId } from '../src/domain/callback';
import type { CallbackPayload } from '../src/domain/authorization';
import { createDispatcher, type DispatchOutcome } from '../src/emulator/dispatcher';
import { startEmulator, type EmulatorHandle } from '../src/emulator/server';
import { parseSecrets } from '../src/platform/callback-signature';
import { auditRepository } from '../src/storage/audit';
import { freePort } from '../test/support/ports';
import { findMarkers, markedPng, scanDatabase, scanHistoriesWhere } from '../test/support/scans';
import { startDatabase, startTemporal, stopService, type Paths } from './lib/local-services';
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
  /** one new issuance every this many ms, and one new callback key every this many ms */
  issuanceEveryMs: 1_400,
  callbackKeyEveryMs: 2_000,
  maxIssuancesInFlight: 6,
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
  api: number;
  emulator: number;
  workerHealth: number;
  workerMetrics: number;
}

interface System {
  paths: Paths;
  ports: Ports;
  config: Config;
  env: NodeJS.ProcessEnv;
  apiUrl: string;
  emulator?: EmulatorHandle;
  api?: ChildProcess;
  worker?: ChildProcess;
  incarnations: Incarnation[];
  workerUnexpectedExits: number;
  /** set while the soak itself stops or kills the worker, so the watchdog does not restart it */
  workerExpectedExit: boolean;
  stopping: boolean;
}

const WORKER_ENTRY = 'src/workers/worker.ts';
const API_ENTRY = 'src/api/server.ts';

function spawnChild(sys: System, name: string, entry: string): ChildProcess {
  const log = openSync(join(sys.paths.dataDir, 'logs', `${name}.log`), 'a');
  const child = spawn(process.execPath, ['-r', '@swc-node/register', entry], {
    env: sys.env,
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  return child;
}

async function waitHttpOk(url: string, what: string, timeoutMs: number, child?: ChildProcess): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (child && child.exitCode !== null) throw new Error(`${what} exited (code ${child.exitCode}) before ready`);
    const ok = await fetch(url, { signal: AbortSignal.timeout(2_000) })
      .then((r) => r.ok)
      .catch(() => false);
    if (ok) return;
    await sleep(250);
  }
  throw new Error(`${what} not ready at ${url} after ${timeoutMs / 1000} s`);
}

let workerStarting: Promise<void> = Promise.resolve();

/** Starts a worker incarnation and waits until its /healthz says RUNNING. Serialized. */
function startWorker(sys: System): Promise<void> {
  workerStarting = workerStarting.then(async () => {
    if (sys.stopping) return;
    const child = spawnChild(sys, 'worker', WORKER_ENTRY);
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

function sampleRss(sys: System): void {
  const child = sys.worker;
  const inc = sys.incarnations[sys.incarnations.length - 1];
  if (!child?.pid || !inc || inc.pid !== child.pid || inc.endedAt) return;
  const kb = readRssKb(child.pid);
  if (kb !== undefined) inc.samples.push({ t: Date.now(), kb });
}

// ---------------------------------------------------------------------------------------------
// Load: issuances

const ISSUER_DID = 'did:air:id:cak-dev-issuer';
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
    issuerDid: ISSUER_DID,
    credentialId: `prog-${spec.schemaId}`,
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

/** Marks issuances stored (the record version exists) so that consent can follow them. */
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

type FaultKind = 'worker-kill' | 'db-restart' | 'temporal-restart';
const FAULTS: FaultKind[] = ['worker-kill', 'db-restart', 'temporal-restart'];

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
  }
}

// ---------------------------------------------------------------------------------------------
// Settle and check

interface RunCounts {
  runs: Map<string, { total: number; completed: number }>;
}

async function listRuns(client: Client, workflowType: string): Promise<RunCounts> {
  const runs = new Map<string, { total: number; completed: number }>();
  for await (const wf of client.workflow.list({ query: `WorkflowType = '${workflowType}'` })) {
    const entry = runs.get(wf.workflowId) ?? { total: 0, completed: 0 };
    entry.total += 1;
    if (wf.status.name === 'COMPLETED') entry.completed += 1;
    runs.set(wf.workflowId, entry);
  }
  return { runs };
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
  const { count: running } = await client.workflow.count(
    `ExecutionStatus = 'Running' AND (WorkflowType = 'issuanceWorkflow' OR WorkflowType = 'authorizationWorkflow')`,
  );
  if (running > 0) return `${running} runs still running`;
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
  const issuanceRuns = (await listRuns(client, 'issuanceWorkflow')).runs;
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

  // Callbacks: each acknowledged key has one authorization, one audit event, one (completed) run.
  const authRuns = (await listRuns(client, 'authorizationWorkflow')).runs;
  const acked = [...load.keys.values()].filter((k) => k.acked);
  const authorizations = db.collection<{ _id: string; state: string }>('authorizations');
  const events = db.collection('audit_events');
  let callbackLost = 0;
  let callbackDuplicated = 0;
  for (const key of acked) {
    const id = authorizationIdFor(secret, key.payload);
    const doc = await authorizations.findOne({ _id: id });
    const sameKey = await authorizations.countDocuments({ ...key.payload });
    const audits = await events.countDocuments({ type: 'authorization', 'data.authorizationId': id });
    const runs = authRuns.get(authorizationWorkflowId(id)) ?? { total: 0, completed: 0 };
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
    } else if (doc.state !== expected || runs.completed !== 1) {
      failures.push(`${label}: state ${doc.state} (expected ${expected}), completed runs ${runs.completed}`);
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
  const inbox = await db.collection('callback_inbox').countDocuments({});
  if (inbox > 0) failures.push(`${inbox} callbacks left in the inbox`);
  const deliveriesLogged = await db.collection('callback_deliveries').countDocuments({});

  // Plaintext: every collection (GridFS included), every run's full history, and the processes' logs.
  const markers = [load.markerPrefix];
  const dbHits = await scanDatabase(db, markers);
  const { hits: historyHits, runs: scannedRuns } = await scanHistoriesWhere(client, '', markers);
  const logHits = ['api', 'worker', 'temporal', 'database'].flatMap((name) => {
    const file = join(sys.paths.dataDir, 'logs', `${name}.log`);
    return existsSync(file) && findMarkers(readFileSync(file), markers).length > 0 ? [`${name}.log`] : [];
  });
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
  const line =
    `soak: ${duration(elapsedMs)} issuances accepted=${accepted.length} stored=${stored} lost=${issuanceLost} duplicated=${issuanceDuplicated}` +
    ` | callbacks acked=${load.counters.callbackAcked} keys=${acked.length} authorizations=${authorizationCount} audit-events=${auditCount}` +
    ` lost=${callbackLost} duplicated=${callbackDuplicated}` +
    ` | chain=${chain.ok ? 'intact' : 'BROKEN'} | plaintext-markers=${plaintext}` +
    ` | faults worker-kill=${faults['worker-kill']} db-restart=${faults['db-restart']} temporal-restart=${faults['temporal-restart']}` +
    (sys.workerUnexpectedExits > 0 ? ` worker-exits=${sys.workerUnexpectedExits}` : '') +
    ` | worker-rss start=${mb(last?.baselineKb ?? 0)} end=${mb(last?.endKb ?? 0)} max=${mb(maxKb)} growth=${growth}` +
    ` (incarnations=${sys.incarnations.length} judged=${judged.length})`;
  say(
    `requests=${load.counters.requests} issuance-posts=${load.counters.issuancePosts} retries=${load.counters.issuanceRetries} ` +
      `replays=${load.counters.issuanceReplays} callback-deliveries=${load.counters.deliveries} attempts=${load.counters.callbackAttempts} ` +
      `duplicate-copies-not-acked=${load.counters.callbackDuplicateNotAcked} deliveries-logged=${deliveriesLogged}`,
  );
  return { failures, line };
}

// ---------------------------------------------------------------------------------------------
// Main

let cleanupOnce: Promise<void> | undefined;

function cleanup(sys: System | undefined, load: Load | undefined, extra: (() => Promise<void>)[]): Promise<void> {
  cleanupOnce ??= (async () => {
    load?.stopNew.abort();
    load?.hardStop.abort();
    if (!sys) return;
    sys.stopping = true;
    await stopWorker(sys, 'SIGTERM', 'stopped').catch(() => undefined);
    if (sys.api && sys.api.exitCode === null) {
      const gone = new Promise((r) => sys.api!.once('exit', r));
      sys.api.kill('SIGTERM');
      await Promise.race([gone, sleep(10_000)]);
      if (sys.api.exitCode === null) sys.api.kill('SIGKILL');
    }
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
  const paths: Paths = { dataDir, toolsDir: resolve(process.env.CAK_TOOLS_DIR ?? '.tools') };
  const ports: Ports = {
    temporal: await freePort(),
    ui: await freePort(),
    db: await freePort(),
    api: await freePort(),
    emulator: await freePort(),
    workerHealth: await freePort(),
    workerMetrics: await freePort(),
  };
  const apiUrl = `http://127.0.0.1:${ports.api}`;
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
    API_PORT: String(ports.api),
    API_RATE_LIMIT_PER_MINUTE: '100000',
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
    },
    violations: [],
    tasks: new Set(),
    stopNew: new AbortController(),
    hardStop: new AbortController(),
    faultCounts: { 'worker-kill': 0, 'db-restart': 0, 'temporal-restart': 0 },
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
    sys.api = spawnChild(sys, 'api', API_ENTRY);
    await waitHttpOk(`${apiUrl}/healthz`, 'api', 60_000, sys.api);
    sys.emulator = await startEmulator(config, { port: ports.emulator, jwksUrl: `${apiUrl}/.well-known/jwks.json` });
    await startWorker(sys);
    await waitHttpOk(`${apiUrl}/readyz`, 'api readiness', 60_000, sys.api);
    rssTimer = setInterval(() => sampleRss(sys), SETTINGS.rssEveryMs);

    const mongo = new MongoClient(config.MONGODB_URI, { serverSelectionTimeoutMS: 2_000 });
    closers.push(() => mongo.close());
    const db = mongo.db(config.MONGODB_DB);
    const dispatcher = createDispatcher({
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
    });

    // --- load and faults
    const loadMs = SETTINGS.minutes * 60_000;
    const loadStart = Date.now();
    const loadEnd = loadStart + loadMs;
    const stopNew = load.stopNew.signal;
    const capReached = () => load.counters.requests >= SETTINGS.maxRequests;
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
          const post = postIssuance(sys, load, spec, false).then(async () => {
            // some clients repeat a request they already got an answer for
            if (spec.acceptedId && Math.random() < 0.2 && !stopNew.aborted) {
              await sleep(rand(1_000, 30_000), stopNew);
              load.counters.issuanceReplays += 1;
              await postIssuance(sys, load, spec, true);
            }
          });
          inFlightPosts.add(post);
          track(load, post);
          void post.finally(() => inFlightPosts.delete(post));
        }
        await sleep(SETTINGS.issuanceEveryMs * rand(0.7, 1.3), stopNew);
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
        await sleep(SETTINGS.callbackKeyEveryMs * rand(0.7, 1.3), stopNew);
      }
    })();

    const faultLoop = (async () => {
      while (!stopNew.aborted) {
        await sleep(rand(SETTINGS.faultMinSeconds, SETTINGS.faultMaxSeconds) * 1000, stopNew);
        if (stopNew.aborted) break;
        const kind = pick(FAULTS);
        load.faultCounts[kind] += 1;
        await injectFault(sys, kind);
      }
    })();

    let lastProgress = Date.now();
    while (Date.now() < loadEnd && !capReached()) {
      await sleep(1_000);
      if (Date.now() - lastProgress >= 30_000) {
        lastProgress = Date.now();
        const inc = sys.incarnations[sys.incarnations.length - 1];
        say(
          `progress: issuances ${load.specs.filter((s) => s.acceptedId).length}/${load.specs.length} accepted, ` +
            `${load.specs.filter((s) => s.stored).length} stored; callback keys ${load.keys.size}, acked ${load.counters.callbackAcked}; ` +
            `requests ${load.counters.requests}; in flight ${load.tasks.size}; worker #${inc?.n} rss ${mb(inc?.samples[inc.samples.length - 1]?.kb ?? 0)}`,
        );
      }
    }
    const elapsedMs = Date.now() - loadStart;
    say(
      `load stops (${capReached() ? 'request cap' : 'time'}); waiting for the fault in progress and in-flight requests`,
    );
    load.stopNew.abort();
    await Promise.all([issuanceLoop, callbackLoop, faultLoop]);
    if (!sys.worker) await startWorker(sys); // final state: everything up

    // --- settle (bounded)
    const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
    closers.unshift(() => connection.close());
    const client = new Client({
      connection,
      namespace: config.TEMPORAL_NAMESPACE,
      dataConverter: dataConverterFor(parseKeyring(config.CAK_CODEC_KEYS)),
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
