import type { Config } from '../config';
import { createPlatformClient, type PlatformClient } from './client';
import { partnerTokenMinter, type PartnerTokenMinter } from './partner-jwt';
import { loadPartnerKeys, type PartnerKeys } from './partner-keys';

interface PlatformDeps {
  partnerKeys: PartnerKeys;
  partnerTokens: PartnerTokenMinter;
  platform: PlatformClient;
}

/** The platform side of the issuance pipeline, built from config (API and worker share this). */
export function platformFromConfig(config: Config): PlatformDeps {
  const partnerKeys = loadPartnerKeys({
    partnerId: config.PARTNER_ID,
    ...(config.PARTNER_SIGNING_KEYS !== undefined ? { signingKeys: config.PARTNER_SIGNING_KEYS } : {}),
    ...(config.PARTNER_ACTIVE_KID !== undefined ? { activeKid: config.PARTNER_ACTIVE_KID } : {}),
  });
  return {
    partnerKeys,
    partnerTokens: partnerTokenMinter(partnerKeys, config.PARTNER_ID, config.PARTNER_TOKEN_TTL_SECONDS),
    platform: createPlatformClient({ baseUrl: config.AIR_PLATFORM_URL, timeoutMs: config.PLATFORM_TIMEOUT_MS }),
  };
}
