import { randomUUID } from 'node:crypto';
import type { KeyLike } from 'jose';
import type { CallbackPayload } from '../domain/authorization';
import { signJwsEs256, signStandardWebhook, type CallbackSignatureScheme } from '../platform/callback-signature';

/**
 * The emulator's callback dispatcher: signs a callback with the configured scheme, POSTs it, and
 * retries with exponential backoff on a non-2XX answer, a timeout or a network error, as the
 * platform does ("reliable ... with retry logic"; its schedule is undocumented). Each attempt is
 * signed afresh (new timestamp) under the same `webhook-id`, like Standard Webhooks senders. It can
 * be told to send duplicates after the first 2XX, as a platform retrying a lost ack would.
 */

export interface DispatcherOptions {
  scheme: CallbackSignatureScheme;
  /** standard-webhooks: the `whsec_` secret to sign with */
  secret?: string;
  /** jws-es256: the signing key and its kid (published in the emulator's callback JWKS) */
  jwsKey?: { privateKey: KeyLike; kid: string };
  timeoutMs: number;
  initialBackoffMs: number;
  maxBackoffMs: number;
  /** give up after this many attempts (0 = never) */
  maxAttempts: number;
  /** observer of every attempt (the emulator's callback records, tests) */
  onAttempt?: (messageId: string, attempt: DispatchAttempt) => void;
}

export interface DispatchAttempt {
  at: Date;
  status?: number;
  error?: string;
}

export interface DispatchOutcome {
  messageId: string;
  delivered: boolean;
  attempts: DispatchAttempt[];
  /** statuses of the extra copies sent after delivery */
  duplicateStatuses: number[];
}

interface Dispatcher {
  dispatch(
    url: string,
    payload: CallbackPayload,
    options?: { messageId?: string; duplicates?: number; signal?: AbortSignal },
  ): Promise<DispatchOutcome>;
}

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener('abort', () => {
      clearTimeout(timer);
      resolve();
    });
  });

export function createDispatcher(options: DispatcherOptions): Dispatcher {
  async function sign(messageId: string, body: string): Promise<Record<string, string>> {
    if (options.scheme === 'standard-webhooks') {
      if (!options.secret) throw new Error('standard-webhooks dispatcher needs a secret');
      return signStandardWebhook(options.secret, body, { id: messageId });
    }
    if (!options.jwsKey) throw new Error('jws-es256 dispatcher needs a signing key');
    return signJwsEs256(options.jwsKey.privateKey, options.jwsKey.kid, body);
  }

  async function send(url: string, messageId: string, body: string): Promise<DispatchAttempt> {
    const at = new Date();
    try {
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...(await sign(messageId, body)) },
        body,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      await res.body?.cancel();
      return { at, status: res.status };
    } catch (err) {
      return { at, error: err instanceof Error ? err.message : String(err) };
    }
  }

  return {
    async dispatch(url, payload, { messageId = `msg_${randomUUID()}`, duplicates = 0, signal } = {}) {
      const body = JSON.stringify({
        userId: payload.userId,
        verifierDid: payload.verifierDid,
        schemaId: payload.schemaId,
      });
      const attempts: DispatchAttempt[] = [];
      let backoff = options.initialBackoffMs;
      let delivered = false;
      while (!signal?.aborted && (options.maxAttempts === 0 || attempts.length < options.maxAttempts)) {
        const attempt = await send(url, messageId, body);
        attempts.push(attempt);
        options.onAttempt?.(messageId, attempt);
        if (attempt.status !== undefined && attempt.status >= 200 && attempt.status < 300) {
          delivered = true;
          break;
        }
        await sleep(backoff * (0.5 + Math.random() / 2), signal);
        backoff = Math.min(backoff * 2, options.maxBackoffMs);
      }
      const duplicateStatuses: number[] = [];
      for (let i = 0; delivered && i < duplicates; i += 1) {
        const copy = await send(url, messageId, body);
        duplicateStatuses.push(copy.status ?? 0);
      }
      return { messageId, delivered, attempts, duplicateStatuses };
    },
  };
}
