import { createServer, type Server } from 'node:http';
import { loadConfig, type Config } from '../config';
import { createLogger } from '../observability/logger';
import { openResources } from '../resources';
import { ensureIndexes } from '../storage/indexes';
import { pingDatabase } from '../storage/mongo';
import { pingTemporal } from '../temporal/connection';
import { appLimitsOf, createApp } from './app';
import { answerClientErrors } from './errors';
import { apiMetrics } from './metrics';
import { metricsServer } from '../observability/metrics';
import { deniedAccessLog } from './verifier';
import { authorizationApiDeps } from './authorization-wiring';
import type { RelayOptions } from './callback-relay';
import { issuanceApiDeps } from './issuance-wiring';
import { listen, ListenError } from '../net/listen';
import { drain, drainState } from './lifecycle';

export interface ApiHandle {
  server: Server;
  url: string;
  /** the metrics listener (API_METRICS_HOST:API_METRICS_PORT), `<metricsUrl>/metrics` */
  metricsUrl: string;
  /**
   * Graceful stop: /readyz answers 503 and responses close their connections; after
   * API_SHUTDOWN_DELAY_MS the listener and idle keep-alive connections close; requests in flight get
   * API_SHUTDOWN_GRACE_MS to finish before their connections are cut; then the relay and clients stop.
   */
  close: () => Promise<void>;
}

/**
 * Starts the API even when Temporal or the database is down (connections are lazy), so `/healthz`
 * answers and `/readyz` says which dependency is missing.
 */
export interface ApiOptions {
  /** inbox relay timing (tests shorten the backoff) */
  relay?: Partial<RelayOptions>;
  /** how long a callback waits for Temporal before the inbox takes it */
  callbackStartTimeoutMs?: number;
  /** the time bucket of aggregated `verifier.denied` audit events (default a minute; tests shorten it) */
  denialBucketMs?: number;
}

export async function startApi(config: Config, options: ApiOptions = {}): Promise<ApiHandle> {
  const log = createLogger({ level: config.LOG_LEVEL, name: 'api' });
  // Lazy: the database client and the Temporal connection connect on first use, so the API starts
  // while either is down. Temporal payloads (workflow inputs) are encrypted with the codec keyring.
  const resources = await openResources(config, {
    appName: 'cak-issuer-api',
    temporal: true,
    lazy: true,
    // A client whose server monitor went silent never recovers by itself (src/storage/mongo.ts): drain
    // and exit 1, for the supervisor to start a fresh instance.
    onDatabaseStall: (silentMs) => {
      log.error({ silentMs }, 'database client stalled (its server monitor went silent); stopping for a restart');
      process.exitCode = 1;
      process.kill(process.pid, 'SIGTERM');
    },
  });
  const { db, temporal, keyrings } = resources;
  const authorization = authorizationApiDeps(
    config,
    db,
    temporal,
    log,
    { ...(options.callbackStartTimeoutMs ? { startTimeoutMs: options.callbackStartTimeoutMs } : {}) },
    resources,
  );
  const draining = drainState();
  const metrics = apiMetrics(db, keyrings.audit, {
    refreshMs: config.API_METRICS_REFRESH_SECONDS * 1000,
  });
  const denials = deniedAccessLog(authorization.verifier.audit, {
    counter: metrics.verifierDenied,
    ...(options.denialBucketMs ? { bucketMs: options.denialBucketMs } : {}),
  });
  const app = createApp({
    log,
    trustProxy: config.API_TRUST_PROXY,
    limits: appLimitsOf(config),
    probes: { temporal: () => pingTemporal(temporal), database: () => pingDatabase(db) },
    issuance: issuanceApiDeps(config, db, temporal, resources),
    authorization,
    denials,
    metrics,
    codec: {
      keyring: keyrings.codec,
      bearerTokens: config.CODEC_AUTH_TOKENS,
      allowedOrigins: config.CODEC_ALLOWED_ORIGINS,
    },
    drain: draining,
  });
  const metricsListener = metricsServer(metrics);
  const release = async () => {
    metrics.gauges.stop();
    await new Promise<void>((resolve) => {
      if (!metricsListener.listening) return resolve();
      metricsListener.close(() => resolve());
      metricsListener.closeAllConnections();
    });
    await denials.close().catch((err: unknown) => log.warn({ err }, 'verifier denials not audited at shutdown'));
    await authorization.close();
    await resources.close();
  };
  // Bind first: a taken port fails the start before any background work begins.
  const server = createServer(app);
  answerClientErrors(server);
  let port: number;
  let metricsPort: number;
  try {
    port = await listen(server, config.API_PORT, config.API_HOST);
    metricsPort = await listen(metricsListener, config.API_METRICS_PORT, config.API_METRICS_HOST);
  } catch (err) {
    if (server.listening) server.close();
    await release();
    throw err;
  }
  ensureIndexes(db).catch((err: unknown) =>
    log.warn({ err }, 'indexes not ensured yet (database down?); the worker ensures them at start'),
  );
  authorization.startRelay(options.relay);
  const url = `http://${config.API_HOST}:${port}`;
  const metricsUrl = `http://${config.API_METRICS_HOST}:${metricsPort}`;
  log.info({ url, metricsUrl }, 'api listening');
  let closing: Promise<void> | undefined;
  return {
    server,
    url,
    metricsUrl,
    close() {
      closing ??= (async () => {
        draining.begin();
        log.info(
          { delayMs: config.API_SHUTDOWN_DELAY_MS, graceMs: config.API_SHUTDOWN_GRACE_MS },
          'api shutting down: /readyz answers 503',
        );
        if (config.API_SHUTDOWN_DELAY_MS > 0) await sleep(config.API_SHUTDOWN_DELAY_MS);
        await drain(server, config.API_SHUTDOWN_GRACE_MS, log);
        // Closing clients can wait on a dependency that is down (the inbox relay on a Temporal start,
        // denial audits on the database); what they hold is durable or already retried, so they get
        // a bounded time and the process exits anyway.
        const released = await Promise.race([release().then(() => true), sleep(RELEASE_BUDGET_MS).then(() => false)]);
        if (!released) log.warn({ budgetMs: RELEASE_BUDGET_MS }, 'connections not closed in time; exiting anyway');
        log.info('api stopped');
      })();
      return closing;
    },
  };
}

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms).unref());
/** How long closing the API's clients may take after the drain (see `close`). */
const RELEASE_BUDGET_MS = 5_000;

if (require.main === module) {
  const config = loadConfig();
  startApi(config)
    .then((api) => {
      // close() is idempotent: a second signal (Ctrl-C under `npm start` arrives twice) joins the first stop.
      const stop = () =>
        void api.close().then(
          () => process.exit(process.exitCode ?? 0),
          (err: unknown) => {
            process.stderr.write(`api stop failed: ${err instanceof Error ? err.stack : String(err)}\n`);
            process.exit(1);
          },
        );
      process.on('SIGINT', stop);
      process.on('SIGTERM', stop);
    })
    .catch((err: unknown) => {
      const reason = err instanceof ListenError ? err.message : err instanceof Error ? err.stack : String(err);
      process.stderr.write(`api failed: ${reason}\n`);
      process.exit(1);
    });
}
