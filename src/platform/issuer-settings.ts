import { z } from 'zod';
import type { PartnerTokenMinter } from './partner-jwt';
import { PlatformError, platformRequest } from './client';

/**
 * Issuer settings on the AIR platform: the global callback URL (`POST /issuer/modify
 * {callbackUrl}`, air-cak-platform.md §2.1) and a read-back of what the platform holds (not
 * documented by the platform; the emulator serves `GET /issuer/status`). Authenticated with a
 * Partner JWT in `x-partner-auth`, like every other partner call.
 */

const LOOPBACK_HOSTS = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

/** HTTPS, or plain HTTP on a loopback host (local runs only). No credentials or fragments in the URL. */
export function isAllowedCallbackUrl(value: string): boolean {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return false;
  }
  if (url.username || url.password || url.hash) return false;
  if (url.protocol === 'https:') return true;
  return url.protocol === 'http:' && LOOPBACK_HOSTS.has(url.hostname);
}

const statusResponse = z.object({
  partnerId: z.string().optional(),
  callbackUrl: z.string().nullable(),
  callbackSignatureScheme: z.string().optional(),
  callbacks: z.record(z.string(), z.number()).optional(),
});
type IssuerStatus = z.infer<typeof statusResponse>;

interface IssuerSettingsClient {
  setCallbackUrl(callbackUrl: string): Promise<void>;
  status(): Promise<IssuerStatus>;
}

export function issuerSettingsClient(options: {
  baseUrl: string;
  timeoutMs: number;
  partnerTokens: PartnerTokenMinter;
}): IssuerSettingsClient {
  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const { token } = await options.partnerTokens.mint({ scope: 'issue' });
    const { json } = await platformRequest({
      baseUrl: options.baseUrl,
      method,
      path,
      authToken: token,
      timeoutMs: options.timeoutMs,
      ...(body !== undefined ? { body } : {}),
    });
    return json;
  }
  return {
    async setCallbackUrl(callbackUrl) {
      if (!isAllowedCallbackUrl(callbackUrl)) {
        throw new PlatformError('PLATFORM_REJECTED', 'callback URL must be https (plain http only on a loopback host)');
      }
      await call('POST', '/issuer/modify', { callbackUrl });
    },
    async status() {
      const parsed = statusResponse.safeParse(await call('GET', '/issuer/status'));
      if (!parsed.success) throw new PlatformError('PLATFORM_RESPONSE_INVALID', 'unexpected /issuer/status answer');
      return parsed.data;
    },
  };
}
