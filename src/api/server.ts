import type { Server } from 'node:http';
import { Client, Connection } from '@temporalio/client';
import { MongoClient } from 'mongodb';
import { loadConfig, type Config } from '../config';
import { parseKeyring } from '../crypto/keyring';
import { dataConverterFor } from '../crypto/payload-codec';
import { createLogger } from '../observability/logger';
import { ensureIssuanceIndexes } from '../storage/indexes';
import { pingDatabase } from '../storage/mongo';
import { pingTemporal } from '../temporal/connection';
import { createApp } from './app';
import { apiMetrics } from './metrics';
import { authorizationApiDeps, ensureAuthorizationIndexes } from './authorization-wiring';
import type { RelayOptions } from './callback-relay';
import { issuanceApiDeps } from './issuance-wiring';

export interface ApiHandle {
  server: Server;
  url: string;
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
}

export async function startApi(config: Config, options: ApiOptions = {}): Promise<ApiHandle> {
  const log = createLogger({ level: config.LOG_LEVEL, name: 'api' });
  const mongo = new MongoClient(config.MONGODB_URI, { serverSelectionTimeoutMS: 2_000, appName: 'cak-issuer-api' });
  const connection = Connection.lazy({ address: config.TEMPORAL_ADDRESS, connectTimeout: 2_000 });
  // Payloads (workflow inputs) are encrypted with the codec keyring, like the worker's and the CLI's.
  const codecKeyring = parseKeyring(config.CAK_CODEC_KEYS);
  const temporal = new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFor(codecKeyring),
  });
  const authorization = authorizationApiDeps(config, mongo.db(config.MONGODB_DB), temporal, log, {
    ...(options.callbackStartTimeoutMs ? { startTimeoutMs: options.callbackStartTimeoutMs } : {}),
  });
  const app = createApp({
    log,
    trustProxy: config.API_TRUST_PROXY,
    probes: { temporal: () => pingTemporal(temporal), database: () => pingDatabase(mongo.db(config.MONGODB_DB)) },
    issuance: issuanceApiDeps(config, mongo.db(config.MONGODB_DB), temporal),
    authorization,
    metrics: apiMetrics(mongo.db(config.MONGODB_DB), parseKeyring(config.CAK_AUDIT_KEYS)),
    codec: {
      keyring: codecKeyring,
      bearerTokens: config.CODEC_AUTH_TOKENS,
      allowedOrigins: config.CODEC_ALLOWED_ORIGINS,
    },
  });
  ensureAuthorizationIndexes(mongo.db(config.MONGODB_DB)).catch((err: unknown) =>
    log.warn({ err }, 'authorization indexes not ensured yet (database down?); retried by the first append'),
  );
  authorization.startRelay(options.relay);
  ensureIssuanceIndexes(mongo.db(config.MONGODB_DB)).catch((err: unknown) =>
    log.warn({ err }, 'issuance indexes not ensured yet (database down?); the worker ensures them at start'),
  );
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.API_PORT, config.API_HOST, () => resolve(s)).once('error', reject);
  });
  const address = server.address();
  const port = typeof address === 'object' && address ? address.port : config.API_PORT;
  const url = `http://${config.API_HOST}:${port}`;
  log.info({ url }, 'api listening');
  return {
    server,
    url,
    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeIdleConnections();
      });
      server.closeAllConnections();
      await authorization.close();
      await connection.close().catch(() => undefined);
      await mongo.close();
    },
  };
}

if (require.main === module) {
  const config = loadConfig();
  startApi(config)
    .then((api) => {
      const stop = () => void api.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    })
    .catch((err: unknown) => {
      process.stderr.write(`api failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
