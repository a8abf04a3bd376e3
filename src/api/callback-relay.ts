import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { DELIVERY_SIGNAL, type AuthorizationInput, type CallbackPayload } from '../domain/authorization';
import { authorizationWorkflowId, deliveryProofFor } from '../domain/callback';
import type { Logger } from '../observability/logger';
import type { InboxRepository } from '../storage/inbox';
import { CakSchemaId, CakUserId, CakVerifierDid } from '../temporal/search-attributes';
import type { authorizationWorkflow } from '../workflows/authorization';

/**
 * Starting AuthorizationWorkflow, for the callback route and for the inbox relay.
 *
 * Duplicate policy: the workflow id is the keyed hash of the dedup key, and a run holds it for
 * the whole access window of the consent that started it (src/workflows/authorization.ts):
 * - WorkflowIdConflictPolicy FAIL: a delivery while the run holds the key is refused as
 *   WorkflowExecutionAlreadyStartedError, answered `duplicate: true`, and signalled to the run,
 *   which treats it as a new consent only if it came after the window closed;
 * - WorkflowIdReusePolicy ALLOW_DUPLICATE: once the run has closed (its window over, or a
 *   revoked/unrouted run ended), a later delivery is a new consent and starts the next run.
 * (USE_EXISTING would also collapse concurrent starts, but SDK 1.24 does not tell the caller
 * whether it started the run or joined one, and the API reports exactly that.) The authorization
 * record's window (`openWindow`) never extends for a delivery inside it, whatever run sees it.
 */

/** Temporal could not take the start (down, unreachable, too slow): the caller falls back to the inbox. */
export class TemporalUnavailableError extends Error {
  constructor(override readonly cause: unknown) {
    const inner = cause instanceof Error && cause.cause instanceof Error ? ` (${cause.cause.message})` : '';
    super(`temporal unavailable: ${cause instanceof Error ? cause.message : String(cause)}${inner}`);
    this.name = 'TemporalUnavailableError';
    Object.setPrototypeOf(this, TemporalUnavailableError.prototype);
  }
}

export interface StartResult {
  workflowId: string;
  duplicate: boolean;
}

export interface AuthorizationStarter {
  /** `firstDelivery`: the delivery itself (the run logs it); absent when the relay starts the run */
  start(
    authorizationId: string,
    payload: CallbackPayload,
    receivedAt: Date,
    firstDelivery?: { messageId?: string },
  ): Promise<StartResult>;
}

interface StarterOptions {
  taskQueue: string;
  /** ID_HMAC_SECRET: signs each delivery's receipt time (the run's activities check it) */
  idSecret: string;
  redriveWindowMs: number;
  /** give up on Temporal after this long and use the inbox instead */
  startTimeoutMs: number;
}

/** The start request of an authorization run: dedup policies and the searchable (pseudonymous) ids. */
export function authorizationStartOptions(workflowId: string, taskQueue: string, input: AuthorizationInput) {
  return {
    workflowId,
    taskQueue,
    args: [input] as [AuthorizationInput],
    workflowIdReusePolicy: 'ALLOW_DUPLICATE' as const,
    workflowIdConflictPolicy: 'FAIL' as const,
    typedSearchAttributes: [
      { key: CakUserId, value: input.userId },
      { key: CakSchemaId, value: input.schemaId },
      { key: CakVerifierDid, value: input.verifierDid },
    ],
  };
}

export function authorizationStarter(client: Client, options: StarterOptions): AuthorizationStarter {
  return {
    async start(authorizationId, payload, receivedAt, firstDelivery) {
      const workflowId = authorizationWorkflowId(authorizationId);
      const at = receivedAt.toISOString();
      const deliveryProof = deliveryProofFor(options.idSecret, authorizationId, at);
      const input: AuthorizationInput = {
        authorizationId,
        userId: payload.userId,
        verifierDid: payload.verifierDid,
        schemaId: payload.schemaId,
        receivedAt: at,
        deliveryProof,
        redriveWindowMs: options.redriveWindowMs,
        ...(firstDelivery ? { firstDelivery } : {}),
      };
      // Start the run, or tell the one that holds the key. A run that closes between the two (its
      // window just ended) answers the signal with "not found": the next start then opens a new one.
      const startOrSignal = async (): Promise<StartResult> => {
        for (let attempt = 0; ; attempt += 1) {
          try {
            await client.workflow.start<typeof authorizationWorkflow>(
              'authorizationWorkflow',
              authorizationStartOptions(workflowId, options.taskQueue, input),
            );
            return { workflowId, duplicate: false };
          } catch (err) {
            if (!(err instanceof WorkflowExecutionAlreadyStartedError)) throw err;
          }
          try {
            // inside the run's access window this is a duplicate; after it, a new consent
            await client.workflow.getHandle(workflowId).signal(DELIVERY_SIGNAL, { receivedAt: at, deliveryProof });
            return { workflowId, duplicate: true };
          } catch (err) {
            if (!(err instanceof WorkflowNotFoundError) || attempt >= 2) throw err;
          }
        }
      };
      try {
        return await client.withDeadline(Date.now() + options.startTimeoutMs, startOrSignal);
      } catch (err) {
        throw new TemporalUnavailableError(err);
      }
    },
  };
}

export interface RelayOptions {
  /** pause between polls of an empty inbox */
  intervalMs: number;
  /** longest pause after Temporal refused a start (doubling from intervalMs) */
  maxBackoffMs: number;
  batchSize: number;
}

export interface InboxRelay {
  stop(): Promise<void>;
  /** wake the loop now (a delivery was just queued) */
  kick(): void;
}

/**
 * The inbox relay, run in the API process (the process that fills the inbox): polls the inbox and
 * turns each queued delivery into its workflow start, deleting the row once Temporal has it (or
 * already had it). While Temporal refuses, it backs off exponentially up to maxBackoffMs. Several
 * API instances may relay at once: a start is idempotent on the workflow id, so they cannot
 * double-start.
 */
export function startInboxRelay(
  inbox: InboxRepository,
  starter: AuthorizationStarter,
  log: Logger,
  options: RelayOptions,
): InboxRelay {
  let stopped = false;
  let wake: (() => void) | undefined;
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms);
      wake = () => {
        clearTimeout(timer);
        resolve();
      };
    });

  async function drainOnce(): Promise<number> {
    const due = await inbox.due(options.batchSize);
    for (const row of due) {
      if (stopped) break;
      try {
        const result = await starter.start(row._id, row, row.receivedAt);
        await inbox.remove(row._id);
        log.info({ workflowId: result.workflowId, duplicate: result.duplicate }, 'inbox delivery relayed');
      } catch (err) {
        await inbox.defer(row._id, new Date(), err instanceof Error ? err.message : String(err)).catch(() => undefined);
        throw err;
      }
    }
    return due.length;
  }

  const loop = (async () => {
    let backoff = options.intervalMs;
    while (!stopped) {
      try {
        const relayed = await drainOnce();
        backoff = options.intervalMs;
        if (relayed < options.batchSize) await sleep(options.intervalMs);
      } catch (err) {
        log.warn({ err: err instanceof Error ? err.message : String(err), retryInMs: backoff }, 'inbox relay paused');
        await sleep(backoff);
        backoff = Math.min(backoff * 2, options.maxBackoffMs);
      }
    }
  })();

  return {
    kick: () => wake?.(),
    async stop() {
      stopped = true;
      wake?.();
      await loop;
    },
  };
}
