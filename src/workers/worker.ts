import { createServer } from 'node:http';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { activityDepsFrom, createActivities } from '../activities';
import type { IssuanceActivityDeps } from '../activities/issuance';
import { parseKeyring } from '../crypto/keyring';
import { dataConverterFor } from '../crypto/payload-codec';
import { loadConfig, type Config } from '../config';
import { listen } from '../net/listen';
import { createLogger } from '../observability/logger';
import { createMetrics, type Metrics } from '../observability/metrics';
import { ensureIssuanceIndexes } from '../storage/indexes';
import { connectDatabase } from '../storage/mongo';
import { connectTemporalClient } from '../temporal/connection';
import { activityFailureMetrics } from './metrics-interceptor';
import { temporalLoggerFrom } from './runtime-logger';
import { ensureAuditSealSchedule, ensureStagingSweepSchedule } from './schedules';

export interface WorkerHandle {
  worker: Worker;
  close: () => Promise<void>;
}

/**
 * Builds the worker with real dependencies. `workflowBundle` lets tests and benchmarks reuse one
 * pre-built bundle; in production the worker bundles `src/workflows` itself at start.
 */
export async function createWorker(
  config: Config,
  overrides: Partial<Pick<WorkerOptions, 'workflowBundle' | 'taskQueue' | 'shutdownForceTime'>> & {
    /** test-only seams into the issuance activities */
    issuanceHooks?: IssuanceActivityDeps['hooks'];
    /** counts failed activity attempts */
    metrics?: Metrics;
    /** the database client's server monitor went silent (src/storage/mongo.ts) */
    onDatabaseStall?: (silentMs: number) => void;
  } = {},
): Promise<WorkerHandle> {
  const database = await connectDatabase(config.MONGODB_URI, config.MONGODB_DB, {
    ...(overrides.onDatabaseStall ? { onMonitorStall: overrides.onDatabaseStall } : {}),
  });
  await ensureIssuanceIndexes(database.db);
  const deps = activityDepsFrom(config);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: overrides.taskQueue ?? config.TEMPORAL_TASK_QUEUE,
    dataConverter: dataConverterFor(parseKeyring(config.CAK_CODEC_KEYS)), // every payload encrypted (docs/crypto.md)
    ...(overrides.workflowBundle
      ? { workflowBundle: overrides.workflowBundle }
      : { workflowsPath: require.resolve('../workflows') }),
    activities: createActivities({
      db: database.db,
      ...deps,
      issuance: { ...deps.issuance, ...(overrides.issuanceHooks ? { hooks: overrides.issuanceHooks } : {}) },
    }),
    ...(overrides.metrics ? { interceptors: { activity: [activityFailureMetrics(overrides.metrics)] } } : {}),
    // On SIGINT/SIGTERM the runtime stops polling; running activities get this long to finish, then
    // are cancelled and their tasks handed back to the server for another worker.
    shutdownGraceTime: config.WORKER_SHUTDOWN_GRACE_MS,
    ...(overrides.shutdownForceTime ? { shutdownForceTime: overrides.shutdownForceTime } : {}),
  });
  return {
    worker,
    async close() {
      await connection.close();
      await database.close();
    },
  };
}

async function main(): Promise<void> {
  const config = loadConfig();
  const log = createLogger({ level: config.LOG_LEVEL, name: 'worker' });
  const metrics = createMetrics('worker');
  Runtime.install({
    logger: temporalLoggerFrom(log),
    // The SDK's own metrics (task latencies, slots, polls) on a Prometheus endpoint of their own.
    ...(config.WORKER_SDK_METRICS_PORT > 0
      ? {
          telemetryOptions: {
            metrics: { prometheus: { bindAddress: `${config.WORKER_HEALTH_HOST}:${config.WORKER_SDK_METRICS_PORT}` } },
          },
        }
      : {}),
  });
  let stalled = false;
  const { worker, close } = await createWorker(config, {
    metrics,
    // A client that stopped checking the database never recovers by itself: stop, and let the
    // supervisor (compose `restart`, the orchestrator) start a fresh worker. Activities are retried.
    onDatabaseStall: (silentMs) => {
      if (stalled) return;
      stalled = true;
      log.error({ silentMs }, 'database client stalled (its server monitor went silent); stopping for a restart');
      process.exitCode = 1;
      worker.shutdown();
    },
  });
  const client = await connectTemporalClient(
    config.TEMPORAL_ADDRESS,
    config.TEMPORAL_NAMESPACE,
    parseKeyring(config.CAK_CODEC_KEYS),
  );
  await ensureStagingSweepSchedule(client, {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    intervalSeconds: config.STAGING_SWEEP_INTERVAL_SECONDS,
  });
  await ensureAuditSealSchedule(client, { taskQueue: config.TEMPORAL_TASK_QUEUE, pollMs: config.AUDIT_SEAL_POLL_MS });
  await client.connection.close();
  const health = workerHttp(worker, metrics);
  await listen(health, config.WORKER_HEALTH_PORT, config.WORKER_HEALTH_HOST); // a taken port stops the worker, named
  log.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, temporal: config.TEMPORAL_ADDRESS }, 'worker started');
  await worker.run(); // returns after a shutdown signal once in-flight work has finished or been handed back
  health.close();
  await close();
  log.info('worker stopped');
}

/** The worker's own HTTP port: `/healthz` (200 while it runs) and `/metrics` (Prometheus). */
function workerHttp(worker: Worker, metrics: Metrics) {
  return createServer((req, res) => {
    if (req.url === '/metrics') {
      void metrics.registry.metrics().then((body) => {
        res.writeHead(200, { 'content-type': metrics.registry.contentType });
        res.end(body);
      });
      return;
    }
    const running = worker.getState() === 'RUNNING';
    res.writeHead(req.url === '/healthz' ? (running ? 200 : 503) : 404, { 'content-type': 'application/json' });
    res.end(JSON.stringify({ status: worker.getState() }));
  });
}

if (require.main === module) {
  main().catch((err: unknown) => {
    process.stderr.write(`worker failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
