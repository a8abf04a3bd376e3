import { z } from 'zod';
import type { CakCurve } from '../domain/issuance';

/**
 * The AIR platform client. `issueCredential` mirrors the SDK contract
 * (`{authToken, issuerDid, credentialId, credentialSubject, curve}` -> `{cakPublicKey}`) over HTTP:
 * `POST {AIR_PLATFORM_URL}/v1/credentials/issue` with the Partner JWT in `x-partner-auth`.
 */

export interface IssueCredentialParams {
  authToken: string;
  issuerDid: string;
  credentialId: string;
  credentialSubject: Record<string, unknown>;
  curve: CakCurve;
}

export interface PlatformClient {
  issueCredential(params: IssueCredentialParams): Promise<{ cakPublicKey: string }>;
}

/**
 * A platform answer we must not retry (4xx other than 408/429), or one we may (5xx, timeouts, network).
 * The message is built only from parts known to carry no personal data (HTTP status, a code matching
 * SAFE_CODE, our own wording): it ends up in workflow failures and issuance records, and the
 * platform's own text may echo the credential subject.
 */
export class PlatformError extends Error {
  constructor(
    readonly code: 'PLATFORM_REJECTED' | 'PLATFORM_UNAVAILABLE' | 'PLATFORM_RESPONSE_INVALID',
    message: string,
    readonly status?: number,
  ) {
    super(message);
    this.name = 'PlatformError';
    Object.setPrototypeOf(this, PlatformError.prototype);
  }

  get retryable(): boolean {
    return this.code === 'PLATFORM_UNAVAILABLE';
  }

  /**
   * 401/403: the platform refused our Partner JWT. Not necessarily the request's fault: the platform
   * may have failed to fetch our JWKS (our API restarting) or our keys may be mid-rotation.
   */
  get authRefused(): boolean {
    return this.status === 401 || this.status === 403;
  }
}

const issueResponse = z.object({ cakPublicKey: z.string().min(1).max(512) });
const SAFE_CODE = /^[A-Z_]{1,64}$/;
const errorBody = z.object({ code: z.string().regex(SAFE_CODE) });

/**
 * One partner call to the platform: the Partner JWT in `x-partner-auth`, a timeout, and the one
 * rule for what may be retried (network errors, timeouts, 5xx, 408, 429). Returns the parsed JSON.
 */
export async function platformRequest(request: {
  baseUrl: string;
  method: 'GET' | 'POST';
  path: string;
  authToken: string;
  timeoutMs: number;
  body?: unknown;
}): Promise<{ status: number; json: unknown }> {
  let res: Response;
  try {
    res = await fetch(`${request.baseUrl.replace(/\/+$/, '')}${request.path}`, {
      method: request.method,
      headers: {
        'x-partner-auth': request.authToken,
        'user-agent': 'cak-issuer',
        ...(request.body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(request.body !== undefined ? { body: JSON.stringify(request.body) } : {}),
      signal: AbortSignal.timeout(request.timeoutMs),
    });
  } catch (err) {
    if (err instanceof Error && err.name === 'TimeoutError')
      throw new PlatformError('PLATFORM_UNAVAILABLE', `platform did not answer within ${request.timeoutMs} ms`);
    // fetch's own error says only "fetch failed"; the reason is a system code such as ECONNREFUSED
    const reason = (err as { cause?: { code?: unknown } } | null)?.cause?.code;
    throw new PlatformError(
      'PLATFORM_UNAVAILABLE',
      `platform unreachable${typeof reason === 'string' && SAFE_CODE.test(reason) ? ` (${reason})` : ''}`,
    );
  }
  const json: unknown = await res.json().catch(() => undefined);
  if (!res.ok) {
    const code = errorBody.safeParse(json).data?.code;
    const transient = res.status >= 500 || res.status === 408 || res.status === 429;
    throw new PlatformError(
      transient ? 'PLATFORM_UNAVAILABLE' : 'PLATFORM_REJECTED',
      `platform answered ${res.status}${code ? ` (${code})` : ''}`,
      res.status,
    );
  }
  return { status: res.status, json };
}

export function createPlatformClient(options: { baseUrl: string; timeoutMs: number }): PlatformClient {
  return {
    async issueCredential({ authToken, ...body }) {
      const { status, json } = await platformRequest({
        baseUrl: options.baseUrl,
        method: 'POST',
        path: '/v1/credentials/issue',
        authToken,
        timeoutMs: options.timeoutMs,
        body,
      });
      const parsed = issueResponse.safeParse(json);
      if (!parsed.success) {
        throw new PlatformError(
          'PLATFORM_RESPONSE_INVALID',
          'platform response has no usable cakPublicKey (is CAK enabled on the program?)',
          status,
        );
      }
      return { cakPublicKey: parsed.data.cakPublicKey };
    },
  };
}
