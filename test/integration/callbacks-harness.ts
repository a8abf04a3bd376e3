import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { MongoClient, type Db } from 'mongodb';
import { startApi, type ApiHandle } from '../../src/api/server';
import { DEV_CALLBACK_SECRET, DEV_ISSUER_DID, type Config } from '../../src/config';
import { recordIdFor } from '../../src/domain/ids';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/server';
import { platformFromConfig } from '../../src/platform';
import { issuerSettingsClient } from '../../src/platform/issuer-settings';
import type { AuditEventTypeName, CallbackPayload } from '../../src/domain/authorization';
import { signStandardWebhook } from '../../src/platform/callback-signature';
import { freePort } from '../support/ports';
import { connectClient, startTestWorker, testConfig, uniqueId } from '../support/temporal';
import type { WorkerHandle } from '../../src/workers/worker';
import { parseKeyring } from '../../src/crypto/keyring';
import { auditRepository } from '../../src/storage/audit';

/** Test stack for the callback pipeline: the real API (with its inbox relay) and a real worker, on a database and task queue of their own. */

export function uniqueDbName(prefix = 'cb'): string {
  return `t_${prefix}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
}

export async function callbackConfig(overrides: NodeJS.ProcessEnv = {}): Promise<Config> {
  return testConfig({
    MONGODB_DB: uniqueDbName(),
    TEMPORAL_TASK_QUEUE: uniqueId('tq-cb'),
    API_PORT: String(await freePort()),
    ...(process.env.CAK_TEST_LOG_LEVEL ? { LOG_LEVEL: process.env.CAK_TEST_LOG_LEVEL } : {}),
    ...overrides,
  });
}

export interface RunningWorker {
  handle: WorkerHandle;
  /** stops only the audit seal loop (the worker keeps running) */
  stopSealLoop(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real worker on the config's task queue, and beside it the audit sequencer's loop (what the
 * audit-seal schedule's activity runs in production; its workflow has a test of its own), so audit
 * events get sealed into the chain.
 */
export async function runWorker(config: Config): Promise<RunningWorker> {
  const handle = await startTestWorker(config, config.TEMPORAL_TASK_QUEUE);
  const running = handle.worker.run();
  const sealer = startSealLoop(config);
  return {
    handle,
    stopSealLoop: () => sealer.stop(),
    async stop() {
      await sealer.stop();
      if (handle.worker.getState() === 'RUNNING') handle.worker.shutdown();
      await running;
      await handle.close();
    },
  };
}

/** Seals pending audit events every 50 ms until stopped (errors, e.g. a database outage, are retried). */
export function startSealLoop(config: Config): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    const database = await openDb(config);
    try {
      const audit = auditRepository(database.db, parseKeyring(config.CAK_AUDIT_KEYS));
      while (!stopped) {
        const sealed = await audit.seal().catch(() => 0);
        if (sealed === 0) await new Promise((r) => setTimeout(r, 50));
      }
    } finally {
      await database.close();
    }
  })();
  return {
    async stop() {
      stopped = true;
      await loop.catch(() => undefined);
    },
  };
}

/** The real API with a quick inbox relay; `startTimeoutMs` shortens the wait for a stopped Temporal. */
export async function startCallbackApi(config: Config, options: { startTimeoutMs?: number } = {}): Promise<ApiHandle> {
  return startApi(config, {
    relay: { intervalMs: 100, maxBackoffMs: 500 },
    denialBucketMs: 1_000, // aggregated verifier.denied events appear within seconds
    ...(options.startTimeoutMs ? { callbackStartTimeoutMs: options.startTimeoutMs } : {}),
  });
}

/** One test file's callback pipeline: its own database, the real API and a worker. */
export interface CallbackStack {
  db: Db;
  api: ApiHandle;
  /** stops the worker and starts a fresh one on the same task queue (e.g. after a registry change) */
  restartWorker(): Promise<void>;
  /** stops the audit seal loop beside the worker, until the next restart */
  stopSealLoop(): Promise<void>;
  /** stops the worker and the API, drops the database */
  close(): Promise<void>;
}

export async function startCallbackStack(config: Config): Promise<CallbackStack> {
  const database = await openDb(config);
  const api = await startCallbackApi(config);
  let worker = await runWorker(config);
  return {
    db: database.db,
    api,
    async restartWorker() {
      await worker.stop();
      worker = await runWorker(config);
    },
    stopSealLoop: () => worker.stopSealLoop(),
    async close() {
      await worker.stop();
      await api.close();
      await database.db.dropDatabase().catch(() => undefined);
      await database.close();
    },
  };
}

export async function openDb(config: Config): Promise<{ db: Db; close(): Promise<void> }> {
  const client = new MongoClient(config.MONGODB_URI, { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
  return { db: client.db(config.MONGODB_DB), close: () => client.close() };
}

/** Marks (userId, schemaId) as data we hold, as a stored issuance would (the record document only). */
export async function seedRecord(db: Db, payload: Pick<CallbackPayload, 'userId' | 'schemaId'>): Promise<void> {
  const now = new Date();
  await db.collection<{ _id: string }>('records').updateOne(
    { _id: recordIdFor(testConfig().ID_HMAC_SECRET, DEV_ISSUER_DID, payload.userId, payload.schemaId) },
    {
      $set: {
        clientId: 'dev',
        issuerDid: DEV_ISSUER_DID,
        userId: payload.userId,
        schemaId: payload.schemaId,
        currentVersion: 1,
        updatedAt: now,
      },
      $setOnInsert: { createdAt: now },
    },
    { upsert: true },
  );
}

export function signedCallback(
  payload: unknown,
  options: { secret?: string; id?: string; timestamp?: Date; body?: string } = {},
): { body: string; headers: Record<string, string> } {
  const body = options.body ?? JSON.stringify(payload);
  const headers = signStandardWebhook(options.secret ?? DEV_CALLBACK_SECRET, body, {
    id: options.id ?? `msg_${randomUUID()}`,
    ...(options.timestamp ? { timestamp: options.timestamp } : {}),
  });
  return { body, headers: { 'content-type': 'application/json', ...headers } };
}

export async function postCallback(
  apiUrl: string,
  payload: unknown,
  options: Parameters<typeof signedCallback>[1] = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { body, headers } = signedCallback(payload, options);
  const res = await fetch(`${apiUrl}/v1/cak/callbacks`, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** A durable acknowledgement: 200 (Temporal has the run) or 202 (the inbox has the delivery). */
export const ACKED = [200, 202];

/** Runs `tasks` with at most `limit` in flight. */
export async function inParallel<T>(limit: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

/** The one polling helper (test/support/eventually.ts), re-exported for the callback tests' imports. */
export { eventually } from '../support/eventually';

/** Workflow runs of a task queue, by status (Temporal visibility). */
export async function countRuns(client: Client, taskQueue: string, extra = ''): Promise<number> {
  const { count } = await client.workflow.count(
    `TaskQueue = '${taskQueue}' AND WorkflowType = 'authorizationWorkflow'${extra}`,
  );
  return count;
}

export { connectClient };

/** An authorization's audit event of a type (sealed or still pending), or null. */
export async function auditEventOf(
  db: Db,
  authorizationId: string,
  type: AuditEventTypeName = 'authorization',
): Promise<{ _id: string; type: string; data: Record<string, unknown> } | null> {
  const filter = { type, 'data.authorizationId': authorizationId };
  return (
    (await db
      .collection<{ _id: string; type: string; data: Record<string, unknown> }>('audit_events')
      .findOne(filter)) ??
    (await db.collection<{ _id: string; type: string; data: Record<string, unknown> }>('audit_pending').findOne(filter))
  );
}

/**
 * The whole system for a consent story: the real API, the AIR emulator (trusting the API's JWKS,
 * with our callback URL registered, as `cak platform register-callback` does), a worker with the
 * audit seal loop, a Temporal client, and the database, on the config's own database and task queue.
 */
export interface ConsentStack {
  database: { db: Db; close(): Promise<void> };
  api: ApiHandle;
  emulator: EmulatorHandle;
  worker: RunningWorker;
  temporal: Client;
  close(): Promise<void>;
}

export async function startConsentStack(config: Config): Promise<ConsentStack> {
  const database = await openDb(config);
  const api = await startCallbackApi(config);
  const emulator = await startEmulator(config, { port: 0, jwksUrl: `${api.url}/.well-known/jwks.json` });
  const worker = await runWorker({ ...config, AIR_PLATFORM_URL: emulator.url });
  const temporal = await connectClient(config);
  await issuerSettingsClient({
    baseUrl: emulator.url,
    timeoutMs: 5_000,
    partnerTokens: platformFromConfig(config).partnerTokens,
  }).setCallbackUrl(`${api.url}/v1/cak/callbacks`);
  return {
    database,
    api,
    emulator,
    worker,
    temporal,
    async close() {
      await worker.stop();
      await emulator.close();
      await api.close();
      await temporal.connection.close();
      await database.db.dropDatabase().catch(() => undefined);
      await database.close();
    },
  };
}
