import type { Db } from 'mongodb';
import type { Config } from '../config';
import { platformFromConfig } from '../platform';
import { parsedOf, type Parsed } from '../resources';
import { probesRepository } from '../storage/probes';
import { createAuthorizationActivities, type AuthorizationActivityDeps } from './authorization';
import { createIssuanceActivities, type IssuanceActivityDeps } from './issuance';

interface ActivityDeps {
  db: Db;
  /** the issuance pipeline's dependencies (keyring, platform client, Partner JWTs, settings) */
  issuance: Omit<IssuanceActivityDeps, 'db'>;
  /** the authorization pipeline's dependencies (schema registry, notify target) */
  authorization: Omit<AuthorizationActivityDeps, 'db'>;
}

/**
 * The activities' dependencies as the worker builds them from configuration and its parsed resources
 * (src/resources.ts; the database aside).
 */
export function activityDepsFrom(
  config: Config,
  { keyrings, registry }: Pick<Parsed, 'keyrings' | 'registry'> = parsedOf(config),
): Omit<ActivityDeps, 'db'> {
  const { platform, partnerTokens } = platformFromConfig(config);
  return {
    issuance: {
      managedKeyring: keyrings.managed,
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
      registry,
      idSecret: config.ID_HMAC_SECRET,
      auditKeys: keyrings.audit,
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
