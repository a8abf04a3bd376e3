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

/** A platform answer we must not retry (4xx other than 408/429), or one we may (5xx, timeouts, network). */
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
}

const issueResponse = z.object({ cakPublicKey: z.string().min(1).max(512) });
const errorBody = z.object({ message: z.string().max(500) }).partial();

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
    throw new PlatformError(
      'PLATFORM_UNAVAILABLE',
      `platform unreachable: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  const json: unknown = await res.json().catch(() => undefined);
  if (!res.ok) {
    const message = errorBody.safeParse(json).data?.message ?? res.statusText;
    const transient = res.status >= 500 || res.status === 408 || res.status === 429;
    throw new PlatformError(
      transient ? 'PLATFORM_UNAVAILABLE' : 'PLATFORM_REJECTED',
      `platform answered ${res.status}: ${message}`,
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
