import type { Client } from '@temporalio/client';
import type { Db } from 'mongodb';
import type { Config } from '../config';
import type { Keyring } from '../crypto/keyring';
import { openOuter } from '../crypto/outer-layer';
import type { Logger } from '../observability/logger';
import { temporalRedriver } from '../operations/authorizations';
import { callbackSignatureVerifier } from '../platform/callback-signature';
import { auditRepository } from '../storage/audit';
import { authorizationsRepository } from '../storage/authorizations';
import { inboxRepository } from '../storage/inbox';
import { recordIdFor } from '../domain/ids';
import { toResolvedRoute } from '../routing/callback-routes';
import type { SchemaRegistry } from '../routing/schema-registry';
import { parsedOf, type Parsed } from '../resources';
import { packagesRepository } from '../storage/packages';
import { recordsRepository } from '../storage/records';
import { verifiersRepository } from '../storage/verifiers';
import { parseApiKeys } from './auth';
import type { AdminRouteDeps } from './admin';
import { authorizationStarter, startInboxRelay, type InboxRelay, type RelayOptions } from './callback-relay';
import type { CallbackRouteDeps } from './callbacks';
import { deliveryLog } from './delivery-log';
import type { PackageSource, VerifierRouteDeps } from './verifier';

/** The callback, Verifier and admin routes' dependencies; `startApi` and the tests share it. */
export interface AuthorizationApiDeps {
  callbacks: CallbackRouteDeps;
  verifier: VerifierRouteDeps;
  admin: AdminRouteDeps;
  /** starts the inbox relay (the API process runs it; see docs/callbacks.md) */
  startRelay(options?: Partial<RelayOptions>): InboxRelay;
  /** stops the relay and writes the buffered delivery log */
  close(): Promise<void>;
}

export const DEFAULT_RELAY: RelayOptions = { intervalMs: 1_000, maxBackoffMs: 30_000, batchSize: 50 };
/** How long a callback waits for Temporal to take the start before it goes to the inbox. */
export const START_TIMEOUT_MS = 3_000;

export function packageSource(
  config: Config,
  db: Db,
  registry: SchemaRegistry,
  managedKeyring: Keyring,
): PackageSource {
  const records = recordsRepository(db);
  const packages = packagesRepository(db, config.GRIDFS_THRESHOLD_BYTES);
  return {
    recordIdFor(userId, schemaId) {
      // The callback names no issuer: the registry says which of our issuer DIDs issues the schema.
      const issuerDid = registry.get(schemaId)?.issuerDid;
      return issuerDid === undefined ? undefined : recordIdFor(config.ID_HMAC_SECRET, issuerDid, userId, schemaId);
    },
    async current(recordId) {
      const current = await records.current(recordId);
      return current
        ? { recordId: current.record._id, version: current.version.version, manifest: current.version.manifest }
        : undefined;
    },
    async openPackage(recordId, packageId) {
      const sealed = await packages.read(packageId);
      return sealed ? openOuter(managedKeyring, sealed, { recordId, itemId: packageId }) : undefined;
    },
  };
}

export function authorizationApiDeps(
  config: Config,
  db: Db,
  temporal: Client,
  log: Logger,
  overrides: { startTimeoutMs?: number } = {},
  { keyrings, registry }: Pick<Parsed, 'keyrings' | 'registry'> = parsedOf(config),
): AuthorizationApiDeps {
  const authorizations = authorizationsRepository(db);
  const audit = auditRepository(db, keyrings.audit);
  const inbox = inboxRepository(db);
  const verifiers = verifiersRepository(db);
  const starter = authorizationStarter(temporal, {
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    idSecret: config.ID_HMAC_SECRET,
    redriveWindowMs: config.AUTHORIZATION_REDRIVE_WINDOW_HOURS * 3_600_000,
    startTimeoutMs: overrides.startTimeoutMs ?? START_TIMEOUT_MS,
  });
  let relay: InboxRelay | undefined;
  const deliveries = deliveryLog(authorizations, log);
  return {
    callbacks: {
      verifier: callbackSignatureVerifier(config),
      starter,
      inbox,
      deliveries,
      idSecret: config.ID_HMAC_SECRET,
      accessWindowMs: (schemaId) => toResolvedRoute(registry.route(schemaId))?.accessWindowMs,
      log,
      onQueued: () => relay?.kick(),
    },
    verifier: {
      authorizations,
      audit,
      verifiers,
      packages: packageSource(config, db, registry, keyrings.managed),
      idSecret: config.ID_HMAC_SECRET,
      signedUrlSecret: config.SIGNED_URL_SECRET,
      signedUrlTtlSeconds: config.SIGNED_URL_TTL_SECONDS,
    },
    admin: {
      admins: parseApiKeys(config.ADMIN_TOKENS),
      authorizations,
      audit,
      verifiers,
      idSecret: config.ID_HMAC_SECRET,
      redrive: temporalRedriver(temporal),
    },
    startRelay(options = {}) {
      relay = startInboxRelay(inbox, starter, log, { ...DEFAULT_RELAY, ...options });
      return relay;
    },
    async close() {
      await relay?.stop();
      await deliveries.close();
    },
  };
}
