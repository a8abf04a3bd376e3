import type { Client } from '@temporalio/client';
import type { Db } from 'mongodb';
import { parseClientScopes, type Config } from '../config';
import { platformFromConfig } from '../platform';
import { parsedOf, type Parsed } from '../resources';
import { recordsRepository } from '../storage/records';
import type { IssuanceApiDeps } from './app';
import { parseApiKeys } from './auth';
import { issuanceIntake } from './issuance-intake';

/**
 * The issuance routes' dependencies from config and the parsed resources (src/resources.ts);
 * `startApi` and the end-to-end tests share it.
 */
export function issuanceApiDeps(
  config: Config,
  db: Db,
  temporal: Client,
  { keyrings, registry }: Pick<Parsed, 'keyrings' | 'registry'> = parsedOf(config),
): IssuanceApiDeps {
  const { partnerKeys, partnerTokens } = platformFromConfig(config);
  return {
    clients: parseApiKeys(config.API_KEYS),
    partnerKeys,
    partnerTokens,
    records: recordsRepository(db),
    limits: {
      maxFileBytes: config.ITEM_MAX_FILE_BYTES,
      maxTotalBytes: config.ITEM_MAX_TOTAL_BYTES,
      maxFiles: config.ITEM_MAX_FILES,
    },
    rateLimits: {
      apiPerMinute: config.API_RATE_LIMIT_PER_MINUTE,
      publicPerMinute: config.PUBLIC_RATE_LIMIT_PER_MINUTE,
    },
    webUi: { url: config.TEMPORAL_UI_URL, namespace: config.TEMPORAL_NAMESPACE },
    intake: issuanceIntake({
      db,
      temporal,
      taskQueue: config.TEMPORAL_TASK_QUEUE,
      registry,
      issuerDids: config.ISSUER_DIDS,
      scopes: parseClientScopes(config.API_CLIENT_SCOPES),
      managedKeyring: keyrings.managed,
      idSecret: config.ID_HMAC_SECRET,
      stagingTtlMs: config.STAGING_TTL_SECONDS * 1000,
      gridfsThresholdBytes: config.GRIDFS_THRESHOLD_BYTES,
    }),
  };
}
