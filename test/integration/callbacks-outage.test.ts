import { testAuditKeys } from '../support/temporal';
import { auditRepository } from '../../src/storage/audit';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Client } from '@temporalio/client';
import { startDatabase, startTemporal, stopService, type Paths } from '../../scripts/lib/local-services';
import type { ApiHandle } from '../../src/api/server';
import { DEV_CALLBACK_SECRET, type Config } from '../../src/config';
import type { CallbackPayload } from '../../src/domain/authorization';
import { createDispatcher, type DispatchAttempt } from '../../src/emulator/dispatcher';
import { freePort } from '../support/ports';
import { connectClient, countRuns, eventually, postCallback, seedRecord } from './callbacks-harness';
import { callbackConfig, openDb, runWorker, type RunningWorker, startCallbackApi } from '../support/system';

jest.setTimeout(300_000);

const quiet = () => undefined;

/**
 * Outages, on a Temporal dev server and a FerretDB of this test's own (free ports, temp data dir),
 * so stopping them does not disturb the shared services other tests use.
 */
describe('authorization callbacks through outages', () => {
  let paths: Paths;
  let ports: { temporal: number; ui: number; db: number };
  let config: Config;
  let api: ApiHandle;
  let worker: RunningWorker | undefined;
  const run = randomUUID().slice(0, 8);
  const key = (i: number): CallbackPayload => ({
    userId: `user-${run}-${i}`,
    verifierDid: `did:air:verifier-${run}`,
    schemaId: 'kyc-basic',
  });

  const startTemporalHere = () =>
    startTemporal(paths, { port: ports.temporal, uiPort: ports.ui, namespace: 'default' }, quiet);
  const startDatabaseHere = () => startDatabase(paths, { port: ports.db }, quiet);

  async function withDb<T>(fn: (db: Awaited<ReturnType<typeof openDb>>['db']) => Promise<T>): Promise<T> {
    const database = await openDb(config);
    try {
      return await fn(database.db);
    } finally {
      await database.close();
    }
  }

  async function withClient<T>(fn: (client: Client) => Promise<T>): Promise<T> {
    const client = await connectClient(config);
    try {
      return await fn(client);
    } finally {
      await client.connection.close();
    }
  }

  async function processed(keys: CallbackPayload[]): Promise<void> {
    await eventually(
      () =>
        withDb((db) =>
          db
            .collection('authorizations')
            .countDocuments({ state: 'active', userId: { $in: keys.map((k) => k.userId) } }),
        ),
      (n) => n === keys.length,
      120_000,
    );
  }

  beforeAll(async () => {
    paths = { dataDir: mkdtempSync(join(tmpdir(), 'cak-cb-outage-')), toolsDir: resolve('.tools') };
    ports = { temporal: await freePort(), ui: await freePort(), db: await freePort() };
    await startTemporalHere();
    await startDatabaseHere();
    config = await callbackConfig({
      TEMPORAL_ADDRESS: `127.0.0.1:${ports.temporal}`,
      MONGODB_URI: `mongodb://127.0.0.1:${ports.db}/`,
    });
    api = await startCallbackApi(config, { callbackStartTimeoutMs: 1_500 });
  });

  afterAll(async () => {
    await worker?.stop().catch(() => undefined);
    await api?.close();
    await stopService(paths, 'temporal');
    await stopService(paths, 'database');
    rmSync(paths.dataDir, { recursive: true, force: true });
  });

  it('Temporal stopped: callbacks are acknowledged from the inbox and each is processed exactly once after it is back', async () => {
    const keys = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9].map(key);
    await withDb(async (db) => {
      for (const k of keys) await seedRecord(db, k);
    });
    expect(await stopService(paths, 'temporal')).toBe(true);

    const answers = [];
    for (const k of [...keys, ...keys, ...keys]) answers.push(await postCallback(api.url, k));
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 30 }, () => 202));
    expect(answers.every((a) => a.body.queued === true)).toBe(true);
    expect(answers.filter((a) => a.body.duplicate === false)).toHaveLength(10);
    expect(await withDb((db) => db.collection('callback_inbox').countDocuments({}))).toBe(10);

    await startTemporalHere();
    worker = await runWorker(config);
    await processed(keys);
    await eventually(
      () => withDb((db) => db.collection('callback_inbox').countDocuments({})),
      (n) => n === 0,
    );

    // Once back, a redelivery is a plain duplicate of the run the relay started.
    const again = await postCallback(api.url, keys[0]);
    expect(again).toMatchObject({ status: 200, body: { duplicate: true, queued: false } });

    // every run audited (each then holds its key for the access window)
    await eventually(
      () => withDb((db) => auditRepository(db, testAuditKeys()).count({ type: 'authorization' })),
      (n) => n === 10,
    );
    expect(await withClient((c) => countRuns(c, config.TEMPORAL_TASK_QUEUE))).toBe(10);
    await eventually(
      () => withDb((db) => db.collection('callback_deliveries').countDocuments({})),
      (n) => n === 31,
    );
    await withDb(async (db) => {
      expect(await auditRepository(db, testAuditKeys()).count({ type: 'authorization' })).toBe(10);
    });
  });

  it('Temporal and the database stopped: 503, and the emulator dispatcher retries deliver every callback after recovery', async () => {
    const keys = [20, 21, 22, 23, 24].map(key);
    await withDb(async (db) => {
      for (const k of keys) await seedRecord(db, k);
    });
    await worker?.stop();
    worker = undefined;
    await stopService(paths, 'temporal');
    await stopService(paths, 'database');

    const seen = new Map<string, DispatchAttempt[]>();
    const dispatcher = createDispatcher({
      scheme: 'standard-webhooks',
      secret: DEV_CALLBACK_SECRET,
      timeoutMs: 15_000,
      initialBackoffMs: 200,
      maxBackoffMs: 1_000,
      maxAttempts: 0,
      onAttempt: (id, attempt) => seen.set(id, [...(seen.get(id) ?? []), attempt]),
    });
    const deliveries = keys.map((k, i) =>
      dispatcher.dispatch(`${api.url}/v1/cak/callbacks`, k, { messageId: `msg_${run}_${i}`, duplicates: 1 }),
    );
    // every delivery is refused with a 503 (nothing could take it) at least once
    await eventually(
      () => Promise.resolve(keys.filter((_, i) => seen.get(`msg_${run}_${i}`)?.some((a) => a.status === 503)).length),
      (n) => n === keys.length,
    );

    await startDatabaseHere();
    await startTemporalHere();
    worker = await runWorker(config);
    const outcomes = await Promise.all(deliveries);
    expect(outcomes.every((o) => o.delivered)).toBe(true);
    // the copies sent after delivery are acknowledged too (200 from Temporal, or 202 from the inbox
    // when the database came back before Temporal did)
    expect(outcomes.flatMap((o) => o.duplicateStatuses).every((s) => s === 200 || s === 202)).toBe(true);
    expect(
      outcomes
        .flatMap((o) => o.attempts.map((a) => a.status))
        .filter((s) => s !== undefined && s !== 503 && s !== 200 && s !== 202),
    ).toEqual([]);

    await processed(keys);
    // every run audited (each then holds its key for the access window)
    await eventually(
      () => withDb((db) => auditRepository(db, testAuditKeys()).count({ type: 'authorization' })),
      (n) => n === 15,
    );
    expect(await withClient((c) => countRuns(c, config.TEMPORAL_TASK_QUEUE))).toBe(15);
    await withDb(async (db) => {
      expect(await db.collection('authorizations').countDocuments({})).toBe(15);
      expect(await auditRepository(db, testAuditKeys()).count({ type: 'authorization' })).toBe(15);
    });
  });
});
