import { createHmac, timingSafeEqual } from 'node:crypto';
import type { IncomingHttpHeaders } from 'node:http';
import { CompactSign, compactVerify, createRemoteJWKSet, errors as joseErrors, type KeyLike } from 'jose';
import { AppError } from '../domain/errors';

/**
 * Callback signature verification over the exact bytes received (a BOM, or bytes that are not
 * UTF-8, included), behind one interface. The platform has not documented how it signs callbacks
 * (air-cak-platform.md §9.1), so the scheme is a setting
 * (CALLBACK_SIGNATURE_SCHEME) and each scheme is one small class. Every failure is a 401 AppError
 * with a code, except "cannot fetch the platform's keys", which is a 503 (the platform retries).
 */

export type CallbackSignatureScheme = 'standard-webhooks' | 'jws-es256';

export interface CallbackSignatureVerifier {
  readonly scheme: CallbackSignatureScheme;
  /** Resolves when `rawBody` carries a valid, fresh signature; throws an AppError otherwise. */
  verify(rawBody: Buffer, headers: IncomingHttpHeaders): Promise<void>;
}

const SignatureErrorCode = {
  Missing: 'SIGNATURE_MISSING',
  Malformed: 'SIGNATURE_MALFORMED',
  Invalid: 'SIGNATURE_INVALID',
  Stale: 'SIGNATURE_TIMESTAMP_STALE',
  Future: 'SIGNATURE_TIMESTAMP_FUTURE',
  UnknownKey: 'SIGNATURE_KEY_UNKNOWN',
  KeysUnavailable: 'SIGNATURE_KEYS_UNAVAILABLE',
} as const;

function fail(code: string, message: string, status = 401, details?: Record<string, unknown>): never {
  throw new AppError(code, message, status, details);
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? undefined : value; // a repeated signature header is refused, not merged
}

/** `where`: the header the signed time came from (and, for a JWS, the protected header's `iat`). */
function checkTimestamp(
  seconds: number,
  toleranceSeconds: number,
  where: { header: string; field?: string },
  now = Date.now(),
): void {
  const nowSeconds = Math.floor(now / 1000);
  const name = where.field ? `${where.header} ${where.field}` : where.header;
  const details = { ...where, got: seconds, now: nowSeconds, toleranceSeconds };
  if (nowSeconds - seconds > toleranceSeconds) {
    fail(
      SignatureErrorCode.Stale,
      `signature timestamp is too old: ${name} ${seconds} is ${nowSeconds - seconds} s before now (${nowSeconds}); ` +
        `at most ${toleranceSeconds} s of skew is accepted (a retry must be signed afresh)`,
      401,
      details,
    );
  }
  if (seconds - nowSeconds > toleranceSeconds) {
    fail(
      SignatureErrorCode.Future,
      `signature timestamp is in the future: ${name} ${seconds} is ${seconds - nowSeconds} s after now (${nowSeconds}); ` +
        `at most ${toleranceSeconds} s of skew is accepted (check the sender's clock)`,
      401,
      details,
    );
  }
}

/**
 * What is wrong with a `webhook-timestamp` that is not Unix seconds (at most 12 digits), or undefined.
 * A 13-digit value is almost surely `Date.now()`: milliseconds.
 */
function webhookTimestampProblem(value: string, now = Date.now()): string | undefined {
  if (WEBHOOK_TIMESTAMP.test(value)) return undefined;
  const example = Math.floor(now / 1000);
  if (/^\d{13}$/.test(value)) {
    return (
      `webhook-timestamp must be Unix seconds; ${value} has 13 digits and looks like milliseconds ` +
      `(send ${value.slice(0, -3)}, i.e. Math.floor(Date.now() / 1000); now is ${example})`
    );
  }
  if (/^\d+$/.test(value)) return `webhook-timestamp must be Unix seconds (at most 12 digits; now is ${example})`;
  return `webhook-timestamp must be Unix seconds in decimal digits only, e.g. ${example}`;
}

// ---------------------------------------------------------------------------------------------
// Standard Webhooks: `webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<b64> [v1,<b64>...]`,
// HMAC-SHA256 over `id.timestamp.` followed by the body. The HMAC covers the exact bytes received:
// nothing decodes the body before it (a decoder would drop a leading BOM, or replace bytes that are
// not UTF-8, so two different bodies would carry one signature). The `standardwebhooks` library's
// `verify` takes one secret, a fixed 5-minute window, a lenient `parseInt` of the timestamp and a
// decoded string, so the checks and the HMAC are ours; its `sign` is the reference the tests hold
// ours to.

export const WEBHOOK_ID = /^[\x21-\x7e]{1,256}$/;
export const WEBHOOK_TIMESTAMP = /^\d{1,12}$/;
const MAX_SIGNATURE_HEADER = 4096;
const WHSEC_PREFIX = 'whsec_';

/** A `whsec_<base64>` secret's key bytes. */
function standardWebhookKey(secret: string): Buffer {
  const key = Buffer.from(secret.startsWith(WHSEC_PREFIX) ? secret.slice(WHSEC_PREFIX.length) : secret, 'base64');
  if (key.length === 0) throw new Error('a Standard Webhooks secret needs key bytes');
  return key;
}

/** The base64 v1 signature: HMAC-SHA256 under `key` of `<id>.<seconds>.` and then the body's bytes, as they are. */
function standardWebhookSignature(key: Uint8Array, id: string, seconds: number, body: Uint8Array): string {
  return createHmac('sha256', key).update(`${id}.${seconds}.`, 'utf8').update(body).digest('base64');
}

export class StandardWebhooksVerifier implements CallbackSignatureVerifier {
  readonly scheme = 'standard-webhooks' as const;
  private readonly keys: Buffer[];

  constructor(
    secrets: readonly string[],
    private readonly toleranceSeconds: number,
  ) {
    if (secrets.length === 0) throw new Error('standard-webhooks needs at least one secret');
    this.keys = secrets.map(standardWebhookKey);
  }

  verify(rawBody: Buffer, headers: IncomingHttpHeaders): Promise<void> {
    try {
      this.check(rawBody, headers);
      return Promise.resolve();
    } catch (err) {
      return Promise.reject(err instanceof Error ? err : new Error(String(err)));
    }
  }

  private check(rawBody: Buffer, headers: IncomingHttpHeaders): void {
    const id = header(headers, 'webhook-id');
    const timestamp = header(headers, 'webhook-timestamp');
    const signatures = header(headers, 'webhook-signature');
    if (!id || !timestamp || !signatures) {
      const missing = [
        ...(id ? [] : ['webhook-id']),
        ...(timestamp ? [] : ['webhook-timestamp']),
        ...(signatures ? [] : ['webhook-signature']),
      ];
      fail(
        SignatureErrorCode.Missing,
        `missing ${missing.join(', ')}: Standard Webhooks callbacks carry webhook-id, webhook-timestamp and webhook-signature`,
        401,
        { missing },
      );
    }
    if (!WEBHOOK_ID.test(id)) {
      fail(SignatureErrorCode.Malformed, 'webhook-id must be 1-256 printable ASCII characters without spaces', 401, {
        header: 'webhook-id',
        expected: '1-256 printable ASCII characters, no spaces',
      });
    }
    const timestampProblem = webhookTimestampProblem(timestamp);
    if (timestampProblem !== undefined) {
      fail(SignatureErrorCode.Malformed, timestampProblem, 401, {
        header: 'webhook-timestamp',
        expected: 'Unix seconds (decimal, at most 12 digits)',
        ...(/^\d{1,20}$/.test(timestamp) ? { got: timestamp } : {}),
      });
    }
    if (signatures.length > MAX_SIGNATURE_HEADER) {
      fail(SignatureErrorCode.Malformed, `webhook-signature is over ${MAX_SIGNATURE_HEADER} characters`, 401, {
        header: 'webhook-signature',
        expected: `space-separated v1,<base64> entries, at most ${MAX_SIGNATURE_HEADER} characters`,
      });
    }
    const seconds = Number(timestamp);
    const passed = signatures
      .split(' ')
      .map((entry) => entry.split(','))
      .filter(([version, sig]) => version === 'v1' && sig !== undefined)
      .map(([, sig]) => Buffer.from(sig!, 'utf8'));
    let matched = false;
    for (const key of this.keys) {
      const expected = Buffer.from(standardWebhookSignature(key, id, seconds, rawBody), 'utf8');
      // Constant-time per comparison; we keep looping after a match so timing does not tell which secret matched.
      for (const sig of passed) if (sig.length === expected.length && timingSafeEqual(sig, expected)) matched = true;
    }
    if (!matched) {
      fail(
        SignatureErrorCode.Invalid,
        passed.length === 0
          ? 'webhook-signature has no v1 entry: expected space-separated `v1,<base64 HMAC-SHA256>` entries'
          : 'no v1 signature matches: each must be base64 HMAC-SHA256, under a configured secret, of ' +
              '`<webhook-id>.<webhook-timestamp>.` followed by the exact body bytes',
        401,
        { header: 'webhook-signature' },
      );
    }
    checkTimestamp(seconds, this.toleranceSeconds, { header: 'webhook-timestamp' });
  }
}

/**
 * Signs like the platform would (emulator, tests, bench): the three Standard Webhooks headers. A
 * string body is signed as its UTF-8 bytes; bytes are signed as they are.
 */
export function signStandardWebhook(
  secret: string,
  body: string | Uint8Array,
  options: { id: string; timestamp?: Date },
): Record<string, string> {
  const seconds = Math.floor((options.timestamp ?? new Date()).getTime() / 1000);
  const bytes = typeof body === 'string' ? Buffer.from(body, 'utf8') : body;
  return {
    'webhook-id': options.id,
    'webhook-timestamp': String(seconds),
    'webhook-signature': `v1,${standardWebhookSignature(standardWebhookKey(secret), options.id, seconds, bytes)}`,
  };
}

// ---------------------------------------------------------------------------------------------
// jws-es256: a detached compact JWS (RFC 7515 appendix F) over the raw body's exact bytes (the
// payload is their base64url) in `x-jws-signature`,
// `<b64url(protected)>..<b64url(signature)>`, protected header `{alg: ES256, kid, iat}`. Keys come
// from the platform's JWKS URL, cached, refetched when a `kid` is unknown (jose's remote JWK set).

export const JWS_SIGNATURE_HEADER = 'x-jws-signature';
export const DETACHED_JWS = /^([A-Za-z0-9_-]{1,2048})\.\.([A-Za-z0-9_-]{1,512})$/;

export class JwsEs256Verifier implements CallbackSignatureVerifier {
  readonly scheme = 'jws-es256' as const;
  private readonly jwks: ReturnType<typeof createRemoteJWKSet>;

  constructor(
    jwksUrl: string,
    private readonly toleranceSeconds: number,
    cooldownSeconds = 10,
  ) {
    this.jwks = createRemoteJWKSet(new URL(jwksUrl), {
      timeoutDuration: 5_000,
      cooldownDuration: cooldownSeconds * 1000, // refetch on an unknown kid at most this often
      cacheMaxAge: 10 * 60_000,
    });
  }

  async verify(rawBody: Buffer, headers: IncomingHttpHeaders): Promise<void> {
    const value = header(headers, JWS_SIGNATURE_HEADER);
    if (!value) {
      fail(
        SignatureErrorCode.Missing,
        `${JWS_SIGNATURE_HEADER} is required (a detached ES256 JWS over the body)`,
        401,
        {
          missing: [JWS_SIGNATURE_HEADER],
        },
      );
    }
    const match = DETACHED_JWS.exec(value);
    if (!match) {
      fail(
        SignatureErrorCode.Malformed,
        `${JWS_SIGNATURE_HEADER} must be a detached compact JWS: <base64url protected header>..<base64url signature> ` +
          '(empty payload part)',
        401,
        { header: JWS_SIGNATURE_HEADER, expected: '<protected>..<signature>' },
      );
    }
    const jws = `${match[1]}.${rawBody.toString('base64url')}.${match[2]}`;
    let iat: unknown;
    try {
      const { protectedHeader } = await compactVerify(jws, this.jwks, { algorithms: ['ES256'] });
      iat = protectedHeader.iat;
    } catch (err) {
      if (err instanceof joseErrors.JWKSNoMatchingKey)
        fail(SignatureErrorCode.UnknownKey, "no key in the platform's JWKS has this kid", 401, {
          header: JWS_SIGNATURE_HEADER,
        });
      if (err instanceof joseErrors.JWKSTimeout || err instanceof joseErrors.JWKSInvalid || isFetchFailure(err)) {
        fail(SignatureErrorCode.KeysUnavailable, 'platform signing keys are unavailable; retry later', 503);
      }
      fail(
        SignatureErrorCode.Invalid,
        'the signature does not verify: an ES256 JWS over the exact body bytes, by a key of the platform JWKS',
        401,
        { header: JWS_SIGNATURE_HEADER },
      );
    }
    if (typeof iat !== 'number' || !Number.isInteger(iat)) {
      fail(SignatureErrorCode.Malformed, 'the JWS protected header needs an integer iat (Unix seconds)', 401, {
        header: JWS_SIGNATURE_HEADER,
        expected: 'protected header {alg: ES256, kid, iat}',
      });
    }
    checkTimestamp(iat, this.toleranceSeconds, { header: JWS_SIGNATURE_HEADER, field: 'iat' });
  }
}

function isFetchFailure(err: unknown): boolean {
  return err instanceof TypeError || (err instanceof Error && /fetch|ECONNREFUSED|Expected 200 OK/i.test(err.message));
}

/** Signs like the platform might (emulator, tests): the detached JWS header, over the body's bytes (a string as UTF-8). */
export async function signJwsEs256(
  privateKey: KeyLike | Uint8Array,
  kid: string,
  body: string | Uint8Array,
  iat = Math.floor(Date.now() / 1000),
): Promise<Record<string, string>> {
  const compact = await new CompactSign(typeof body === 'string' ? new TextEncoder().encode(body) : body)
    .setProtectedHeader({ alg: 'ES256', kid, iat })
    .sign(privateKey);
  const [protectedPart, , signature] = compact.split('.');
  return { [JWS_SIGNATURE_HEADER]: `${protectedPart}..${signature}` };
}

// ---------------------------------------------------------------------------------------------

interface CallbackSignatureSettings {
  CALLBACK_SIGNATURE_SCHEME: CallbackSignatureScheme;
  CALLBACK_SECRETS: string;
  CALLBACK_TOLERANCE_SECONDS: number;
  PLATFORM_JWKS_URL: string;
  PLATFORM_JWKS_COOLDOWN_SECONDS: number;
}

export function parseSecrets(value: string): string[] {
  return value.split(/[ ,]+/).filter((s) => s.length > 0);
}

/** The one place the setting picks the scheme. */
export function callbackSignatureVerifier(settings: CallbackSignatureSettings): CallbackSignatureVerifier {
  switch (settings.CALLBACK_SIGNATURE_SCHEME) {
    case 'standard-webhooks':
      return new StandardWebhooksVerifier(parseSecrets(settings.CALLBACK_SECRETS), settings.CALLBACK_TOLERANCE_SECONDS);
    case 'jws-es256':
      return new JwsEs256Verifier(
        settings.PLATFORM_JWKS_URL,
        settings.CALLBACK_TOLERANCE_SECONDS,
        settings.PLATFORM_JWKS_COOLDOWN_SECONDS,
      );
  }
}
