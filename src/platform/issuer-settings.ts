import { z } from 'zod';
import type { PartnerTokenMinter } from './partner-jwt';
import { PlatformError } from './client';

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
export type IssuerStatus = z.infer<typeof statusResponse>;

export interface IssuerSettingsClient {
  setCallbackUrl(callbackUrl: string): Promise<void>;
  status(): Promise<IssuerStatus>;
}

export function issuerSettingsClient(options: {
  baseUrl: string;
  timeoutMs: number;
  partnerTokens: PartnerTokenMinter;
}): IssuerSettingsClient {
  const base = options.baseUrl.replace(/\/+$/, '');
  async function call(method: 'GET' | 'POST', path: string, body?: unknown): Promise<unknown> {
    const { token } = await options.partnerTokens.mint({ scope: 'issue' });
    let res: Response;
    try {
      res = await fetch(`${base}${path}`, {
        method,
        headers: {
          'x-partner-auth': token,
          'user-agent': 'cak-issuer',
          ...(body ? { 'content-type': 'application/json' } : {}),
        },
        ...(body ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(options.timeoutMs),
      });
    } catch (err) {
      throw new PlatformError(
        'PLATFORM_UNAVAILABLE',
        `platform unreachable: ${err instanceof Error ? err.message : String(err)}`,
      );
    }
    const json: unknown = await res.json().catch(() => undefined);
    if (!res.ok) {
      const message = (json as { message?: unknown } | undefined)?.message;
      throw new PlatformError(
        res.status >= 500 ? 'PLATFORM_UNAVAILABLE' : 'PLATFORM_REJECTED',
        `platform answered ${res.status}${typeof message === 'string' ? `: ${message.slice(0, 300)}` : ''}`,
        res.status,
      );
    }
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
