import { createHash } from 'node:crypto';
import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { MongoClient, type Db, type MongoClientOptions } from 'mongodb';
import { createApp } from '../../src/api/app';
import { issuanceApiDeps } from '../../src/api/issuance-wiring';
import { DEV_API_KEY, type Config } from '../../src/config';
import { dataConverterFor } from '../../src/crypto/payload-codec';
import { parseKeyring } from '../../src/crypto/keyring';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/server';
import { createLogger } from '../../src/observability/logger';
import { ensureIndexes } from '../../src/storage/indexes';
import type { IssuanceActivityDeps } from '../../src/activities/issuance';
import { createWorker, type WorkerHandle } from '../../src/workers/worker';
import { eventually } from '../support/eventually';
import { testConfig, uniqueId, workflowBundle } from '../support/temporal';

/**
 * The whole issuance system in-process, on the real local Temporal and database: the API on a
 * real port, the AIR emulator (verifying our Partner JWTs against that API's JWKS) on another, and
 * a real worker on a task queue of its own. Each system uses a database of its own, so tests can
 * assert on whole collections.
 */
export interface IssuanceSystem {
  config: Config;
  apiUrl: string;
  db: Db;
  mongo: MongoClient;
  client: Client;
  emulator: EmulatorHandle;
  worker?: WorkerHandle;
  startWorker(hooks?: IssuanceActivityDeps['hooks']): Promise<void>;
  stopWorker(): Promise<void>;
  /** close the API (and with it our JWKS), as a deploy does; `startApi` listens again on the same port */
  stopApi(): Promise<void>;
  startApi(): Promise<void>;
  close(): Promise<void>;
}

export const API_KEY_HEADER = { 'x-api-key': DEV_API_KEY };

export async function startIssuanceSystem(
  env: NodeJS.ProcessEnv = {},
  options: {
    worker?: boolean;
    hooks?: IssuanceActivityDeps['hooks'];
    /** options of the MongoClient the API (and `system.db`) use, e.g. `monitorCommands` and an `appName` to tell its commands apart */
    mongo?: MongoClientOptions;
  } = {},
): Promise<IssuanceSystem> {
  const base = testConfig({
    TEMPORAL_TASK_QUEUE: uniqueId('tq-issuance'),
    MONGODB_DB: uniqueId('e2e')
      .slice(0, 40)
      .replace(/[^A-Za-z0-9_-]/g, '_'),
    GRIDFS_THRESHOLD_BYTES: String(64 * 1024),
    API_RATE_LIMIT_PER_MINUTE: '100000',
    ...env,
  });
  const mongo = await MongoClient.connect(base.MONGODB_URI, { serverSelectionTimeoutMS: 5_000, ...options.mongo });
  const db = mongo.db(base.MONGODB_DB);
  await ensureIndexes(db);
  const connection = await Connection.connect({ address: base.TEMPORAL_ADDRESS });
  const client = new Client({
    connection,
    namespace: base.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFor(parseKeyring(base.CAK_CODEC_KEYS)),
  });
  const log = createLogger({ level: 'silent', name: 'api' });
  const app = createApp({
    log,
    probes: { temporal: () => Promise.resolve(), database: () => Promise.resolve() },
    issuance: issuanceApiDeps(base, db, client),
  });
  const listen = (port: number) =>
    new Promise<Server>((resolve, reject) => {
      const s = app.listen(port, '127.0.0.1', () => resolve(s)).once('error', reject);
    });
  let server: Server | undefined = await listen(0);
  const apiPort = (server.address() as { port: number }).port;
  const apiUrl = `http://127.0.0.1:${apiPort}`;
  const closeApi = async () => {
    const closing = server;
    server = undefined;
    if (!closing) return;
    await new Promise<void>((resolve) => {
      closing.close(() => resolve());
      closing.closeAllConnections();
    });
  };
  const emulator = await startEmulator(base, { port: 0, jwksUrl: `${apiUrl}/.well-known/jwks.json` });
  const config = { ...base, AIR_PLATFORM_URL: emulator.url };

  let running: Promise<void> | undefined;
  const system: IssuanceSystem = {
    config,
    apiUrl,
    db,
    mongo,
    client,
    emulator,
    async startWorker(hooks) {
      system.worker = await createWorker(config, {
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        workflowBundle: workflowBundle(),
        shutdownForceTime: '5s',
        ...(hooks ? { issuanceHooks: hooks } : {}),
      });
      running = system.worker.worker.run();
    },
    async stopWorker() {
      if (!system.worker) return;
      system.worker.worker.shutdown();
      await running;
      await system.worker.close();
      system.worker = undefined;
    },
    stopApi: closeApi,
    async startApi() {
      server ??= await listen(apiPort);
    },
    async close() {
      await system.stopWorker();
      await emulator.close();
      await closeApi();
      await connection.close();
      await db.dropDatabase().catch(() => undefined);
      await mongo.close();
    },
  };
  if (options.worker !== false) await system.startWorker(options.hooks);
  return system;
}

/** Poll the status URL until the issuance ends (the run's own retries decide how long, or `timeoutMs`). */
export async function waitForIssuance(
  system: IssuanceSystem,
  issuanceId: string,
  until: readonly string[] = ['completed', 'failed'],
  timeoutMs = Infinity,
): Promise<Record<string, unknown>> {
  const answer = await eventually(
    async (): Promise<{ status?: number; body?: Record<string, unknown>; error?: string }> => {
      const res = await fetch(`${system.apiUrl}/v1/issuances/${issuanceId}`, { headers: API_KEY_HEADER }).catch(
        (err: unknown) => String(err),
      );
      if (typeof res === 'string') return { error: res }; // the API not listening (yet, or again): not an answer
      return { status: res.status, body: (await res.json().catch(() => undefined)) as Record<string, unknown> };
    },
    (a) => a.status === 200 && until.includes(a.body?.status as string),
    { what: `issuance ${issuanceId} to reach ${until.join('/')}`, timeoutMs, intervalMs: 250 },
  );
  return answer.body!;
}

export { countWorkflows, findMarkers, markedPng, PNG_SIGNATURE, scanDatabase, scanHistories } from '../support/scans';

export const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
