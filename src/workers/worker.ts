import { createServer } from 'node:http';
import { NativeConnection, Runtime, Worker, type WorkerOptions } from '@temporalio/worker';
import { activityDepsFrom, createActivities } from '../activities';
import type { IssuanceActivityDeps } from '../activities/issuance';
import { dataConverterFor } from '../crypto/payload-codec';
import { loadConfig, type Config } from '../config';
import { listen } from '../net/listen';
import { createLogger } from '../observability/logger';
import { createMetrics, type Metrics } from '../observability/metrics';
import { openResources, type Resources } from '../resources';
import { ensureIndexes } from '../storage/indexes';
import { activityFailureMetrics } from './metrics-interceptor';
import { temporalLoggerFrom } from './runtime-logger';
import { ensureAuditSealSchedule, ensureStagingSweepSchedule } from './schedules';

export interface WorkerHandle {
  worker: Worker;
  close: () => Promise<void>;
}

/**
 * Builds the worker with real dependencies. `workflowBundle` lets tests and benchmarks reuse one
 * pre-built bundle; in production the worker bundles `src/workflows` itself at start. The database
 * and the keyrings come from `resources` (src/resources.ts) when given (the caller closes them), else
 * the worker opens its own; the Worker's NativeConnection to Temporal is its own either way.
 */
export async function createWorker(
  config: Config,
  overrides: Partial<Pick<WorkerOptions, 'workflowBundle' | 'taskQueue' | 'shutdownForceTime'>> & {
    /** test-only seams into the issuance activities */
    issuanceHooks?: IssuanceActivityDeps['hooks'];
    /** counts failed activity attempts */
    metrics?: Metrics;
    /** the database client's server monitor went silent (src/storage/mongo.ts); when the worker opens its own */
    onDatabaseStall?: (silentMs: number) => void;
    /** resources already open (the worker process shares them with its schedules) */
    resources?: Resources;
  } = {},
): Promise<WorkerHandle> {
  const owned = overrides.resources
    ? undefined
    : await openResources(config, {
        appName: 'cak-issuer-worker',
        ...(overrides.onDatabaseStall ? { onDatabaseStall: overrides.onDatabaseStall } : {}),
      });
  const resources = (overrides.resources ?? owned)!;
  await ensureIndexes(resources.db);
  const deps = activityDepsFrom(config, resources);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const worker = await Worker.create({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    taskQueue: overrides.taskQueue ?? config.TEMPORAL_TASK_QUEUE,
    dataConverter: dataConverterFor(resources.keyrings.codec), // every payload encrypted (docs/crypto.md)
    ...(overrides.workflowBundle
      ? { workflowBundle: overrides.workflowBundle }
      : { workflowsPath: require.resolve('../workflows') }),
    activities: createActivities({
      db: resources.db,
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
      await owned?.close();
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
  const resources = await openResources(config, {
    appName: 'cak-issuer-worker',
    temporal: true, // the client that ensures the schedules
    // A client that stopped checking the database never recovers by itself: stop, and let the
    // supervisor (compose `restart`, the orchestrator) start a fresh worker. Activities are retried.
    onDatabaseStall: (silentMs) => {
      log.error({ silentMs }, 'database client stalled (its server monitor went silent); stopping for a restart');
      process.exitCode = 1;
      worker.shutdown();
    },
  });
  const { worker, close } = await createWorker(config, { metrics, resources });
  await ensureStagingSweepSchedule(resources.temporal, {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    intervalSeconds: config.STAGING_SWEEP_INTERVAL_SECONDS,
  });
  await ensureAuditSealSchedule(resources.temporal, {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    pollMs: config.AUDIT_SEAL_POLL_MS,
  });
  const health = workerHttp(worker, metrics);
  await listen(health, config.WORKER_HEALTH_PORT, config.WORKER_HEALTH_HOST); // a taken port stops the worker, named
  log.info({ taskQueue: config.TEMPORAL_TASK_QUEUE, temporal: config.TEMPORAL_ADDRESS }, 'worker started');
  await worker.run(); // returns after a shutdown signal once in-flight work has finished or been handed back
  health.close();
  await close();
  await resources.close();
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
