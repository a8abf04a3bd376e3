import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { MongoClient, type Db } from 'mongodb';
import type { IssuanceActivityDeps } from '../../src/activities/issuance';
import { startApi, type ApiHandle, type ApiOptions } from '../../src/api/server';
import type { Config } from '../../src/config';
import { parseKeyring } from '../../src/crypto/keyring';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/server';
import { platformFromConfig } from '../../src/platform';
import { issuerSettingsClient } from '../../src/platform/issuer-settings';
import { auditRepository } from '../../src/storage/audit';
import { ensureIndexes } from '../../src/storage/indexes';
import type { WorkerHandle } from '../../src/workers/worker';
import { eventually } from './eventually';
import { freePort } from './ports';
import { connectClient, startTestWorker, testConfig, uniqueId } from './temporal';

/**
 * The system in-process, on the real local Temporal and database: the production API (`startApi`),
 * the AIR emulator trusting the API's JWKS, a real worker (with the audit seal loop beside it, when
 * asked) and a Temporal client. Each system has a database, a task queue and an API port of its own,
 * so tests can assert on whole collections and stop and start the API on the same port.
 */

export type IssuanceHooks = IssuanceActivityDeps['hooks'];

export function uniqueDbName(prefix = 'cb'): string {
  return `t_${prefix}_${randomUUID().replace(/-/g, '').slice(0, 16)}`;
}

/** A test configuration with a database, a task queue and an API port of its own. */
export async function callbackConfig(overrides: NodeJS.ProcessEnv = {}): Promise<Config> {
  return testConfig({
    MONGODB_DB: uniqueDbName(),
    TEMPORAL_TASK_QUEUE: uniqueId('tq-cb'),
    API_PORT: String(await freePort()),
    ...(process.env.CAK_TEST_LOG_LEVEL ? { LOG_LEVEL: process.env.CAK_TEST_LOG_LEVEL } : {}),
    ...overrides,
  });
}

export async function openDb(config: Config): Promise<{ db: Db; close(): Promise<void> }> {
  const client = new MongoClient(config.MONGODB_URI, { serverSelectionTimeoutMS: 5_000 });
  await client.connect();
  return { db: client.db(config.MONGODB_DB), close: () => client.close() };
}

/** The real API with a quick inbox relay and a short denial bucket; `options` go over them. */
export async function startCallbackApi(config: Config, options: ApiOptions = {}): Promise<ApiHandle> {
  return startApi(config, {
    relay: { intervalMs: 100, maxBackoffMs: 500 },
    denialBucketMs: 1_000, // aggregated verifier.denied events appear within seconds
    ...options,
  });
}

export interface RunningWorker {
  handle: WorkerHandle;
  /** stops only the audit seal loop (the worker keeps running) */
  stopSealLoop(): Promise<void>;
  stop(): Promise<void>;
}

/**
 * A real worker on the config's task queue, and beside it (unless `sealLoop: false`) the audit
 * sequencer's loop (what the audit-seal schedule's activity runs in production; its workflow has a
 * test of its own), so audit events get sealed into the chain.
 */
export async function runWorker(
  config: Config,
  options: { hooks?: IssuanceHooks; sealLoop?: boolean } = {},
): Promise<RunningWorker> {
  const handle = await startTestWorker(config, config.TEMPORAL_TASK_QUEUE, options.hooks);
  const running = handle.worker.run();
  const sealer = options.sealLoop === false ? undefined : startSealLoop(config);
  return {
    handle,
    stopSealLoop: async () => sealer?.stop(),
    async stop() {
      await sealer?.stop();
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

/** The parts of a system beside the API, all on by default but the seal loop and the registration. */
interface SystemParts {
  /** the AIR emulator, trusting the API's JWKS; the worker issues to it */
  emulator?: boolean;
  /**
   * registers the API's callback URL at the emulator, as `cak platform register-callback` does (off
   * by default: the emulator then fetches, and caches, our JWKS)
   */
  registerCallbackUrl?: boolean;
  /** a worker at start (`startWorker` starts one later) */
  worker?: boolean;
  /** test-only seams into the worker's issuance activities */
  hooks?: IssuanceHooks;
  /** the audit seal loop beside the worker */
  sealLoop?: boolean;
  /** the API's options, over `startCallbackApi`'s */
  api?: ApiOptions;
}

/**
 * `config` is the caller's (its API_PORT fixed); else `callbackConfig` with the issuance tests'
 * settings and `env` over them.
 */
export type SystemOptions = SystemParts &
  ({ config: Config; env?: never } | { config?: never; env?: NodeJS.ProcessEnv });

/** GridFS from 64 KiB (so the issuance tests' files take both paths), and no practical rate limit. */
const ISSUANCE_ENV = { GRIDFS_THRESHOLD_BYTES: String(64 * 1024), API_RATE_LIMIT_PER_MINUTE: '100000' };

export interface System {
  /** what the API, the worker and the seal loop run with (AIR_PLATFORM_URL the emulator's) */
  config: Config;
  /** the API's URL: the same across `stopApi` and `startApi` */
  apiUrl: string;
  /** the running API (throws while it is stopped) */
  readonly api: ApiHandle;
  /** the AIR emulator (throws when the system has none) */
  readonly emulator: EmulatorHandle;
  /** the system's database, on a client of the harness's own */
  db: Db;
  /** a Temporal client (payloads encrypted with the codec keyring) */
  client: Client;
  /** closes the API (and with it our JWKS), as a deploy does */
  stopApi(): Promise<void>;
  /** listens again on the same port */
  startApi(): Promise<void>;
  startWorker(hooks?: IssuanceHooks): Promise<void>;
  stopWorker(): Promise<void>;
  /** stops the worker and starts a fresh one on the same task queue (e.g. after a registry change) */
  restartWorker(): Promise<void>;
  /** stops the audit seal loop beside the worker, until the next start */
  stopSealLoop(): Promise<void>;
  /** stops everything and drops the database */
  close(): Promise<void>;
}

export async function startSystem(options: SystemOptions = {}): Promise<System> {
  const base = options.config ?? (await callbackConfig({ ...ISSUANCE_ENV, ...options.env }));
  const apiUrl = `http://${base.API_HOST}:${base.API_PORT}`;
  const emulator =
    options.emulator === false
      ? undefined
      : await startEmulator(base, { port: 0, jwksUrl: `${apiUrl}/.well-known/jwks.json` });
  const config = emulator ? { ...base, AIR_PLATFORM_URL: emulator.url } : base;
  const database = await openDb(config);
  await ensureIndexes(database.db); // before the first request, even when no worker (which ensures them) runs yet
  const client = await connectClient(config);
  let api: ApiHandle | undefined;
  let worker: RunningWorker | undefined;
  let hooks: IssuanceHooks;

  const system: System = {
    config,
    apiUrl,
    db: database.db,
    client,
    get api() {
      if (!api) throw new Error('the API is stopped');
      return api;
    },
    get emulator() {
      if (!emulator) throw new Error('this system was started without the emulator');
      return emulator;
    },
    async stopApi() {
      const closing = api;
      api = undefined;
      await closing?.close();
    },
    async startApi() {
      api ??= await startSettledApi(config, options.api);
    },
    async startWorker(withHooks) {
      if (worker) throw new Error('a worker is running (restartWorker replaces it)');
      hooks = withHooks;
      worker = await runWorker(config, { hooks, sealLoop: options.sealLoop ?? false });
    },
    async stopWorker() {
      const stopping = worker;
      worker = undefined;
      await stopping?.stop();
    },
    async restartWorker() {
      await system.stopWorker();
      await system.startWorker(hooks);
    },
    stopSealLoop: async () => worker?.stopSealLoop(),
    async close() {
      await system.stopWorker();
      await emulator?.close();
      await system.stopApi();
      await client.connection.close();
      await database.db.dropDatabase().catch(() => undefined);
      await database.close();
    },
  };
  try {
    await system.startApi();
    if (options.registerCallbackUrl) {
      await issuerSettingsClient({
        baseUrl: system.emulator.url,
        timeoutMs: 5_000,
        partnerTokens: platformFromConfig(config).partnerTokens,
      }).setCallbackUrl(`${apiUrl}/v1/cak/callbacks`);
    }
    if (options.worker !== false) await system.startWorker(options.hooks);
  } catch (err) {
    await system.close().catch(() => undefined); // what started would keep jest from exiting
    throw err;
  }
  return system;
}

/** The API's last database gauges (src/api/metrics.ts, refreshed in order): present once its first refresh is done. */
const LAST_GAUGES = ['cak_audit_chain_length', 'cak_callback_inbox_pending'];

/**
 * Resolves once the API's first refresh of its database gauges (started with the API) is done: its
 * reads then never fall in a test's count of the commands a request sends.
 */
export async function gaugesRefreshed(api: ApiHandle): Promise<void> {
  await eventually(
    async () => (await fetch(`${api.metricsUrl}/metrics`)).text(),
    (text) => LAST_GAUGES.every((name) => new RegExp(`^${name}(\\{[^}]*\\})? \\d+$`, 'm').test(text)),
    { what: "the API's first refresh of its database gauges", intervalMs: 20 },
  );
}

/** `startCallbackApi`, once its gauges are refreshed. */
async function startSettledApi(config: Config, options?: ApiOptions): Promise<ApiHandle> {
  const api = await startCallbackApi(config, options);
  try {
    await gaugesRefreshed(api);
    return api;
  } catch (err) {
    await api.close();
    throw err;
  }
}
