import type { Db } from 'mongodb';
import type { Config } from '../config';
import { parseKeyring } from '../crypto/keyring';
import { platformFromConfig } from '../platform';
import { loadSchemaRegistry } from '../routing/schema-registry';
import { probesRepository } from '../storage/probes';
import { createAuthorizationActivities, type AuthorizationActivityDeps } from './authorization';
import { createIssuanceActivities, type IssuanceActivityDeps } from './issuance';

export interface ActivityDeps {
  db: Db;
  /** the issuance pipeline's dependencies (keyring, platform client, Partner JWTs, settings) */
  issuance: Omit<IssuanceActivityDeps, 'db'>;
  /** the authorization pipeline's dependencies (schema registry, notify target) */
  authorization: Omit<AuthorizationActivityDeps, 'db'>;
}

/** The activities' dependencies as the worker builds them from configuration (the database aside). */
export function activityDepsFrom(config: Config): Omit<ActivityDeps, 'db'> {
  const { platform, partnerTokens } = platformFromConfig(config);
  return {
    issuance: {
      managedKeyring: parseKeyring(config.CAK_MANAGED_KEYS),
      idSecret: config.ID_HMAC_SECRET,
      platform,
      partnerTokens,
      settings: {
        gridfsThresholdBytes: config.GRIDFS_THRESHOLD_BYTES,
        recordVersionsKept: config.RECORD_VERSIONS_KEPT,
        stagingTtlMs: config.STAGING_TTL_SECONDS * 1000,
        platformRetryHorizonMs: config.PLATFORM_RETRY_HORIZON_SECONDS * 1000,
      },
    },
    authorization: {
      registry: loadSchemaRegistry(config.SCHEMA_REGISTRY_PATH, config.ISSUER_DIDS),
      idSecret: config.ID_HMAC_SECRET,
      auditKeys: parseKeyring(config.CAK_AUDIT_KEYS),
      notify: { defaultUrl: config.NOTIFY_URL, secret: config.NOTIFY_SECRET, timeoutMs: config.PLATFORM_TIMEOUT_MS },
    },
  };
}

/** Activities are built from their dependencies: the worker passes real ones, tests may pass others. */
export function createActivities(deps: ActivityDeps) {
  const probes = probesRepository(deps.db);
  return {
    ...createIssuanceActivities({ db: deps.db, ...deps.issuance }),
    ...createAuthorizationActivities({ db: deps.db, ...deps.authorization }),
    async writeAndReadProbe(probeId: string): Promise<string | undefined> {
      await probes.write(probeId);
      return probes.read(probeId);
    },
  };
}

export type Activities = ReturnType<typeof createActivities>;
