import { randomUUID } from 'node:crypto';
import type { DeliveryDoc, AuthorizationsRepository } from '../storage/authorizations';
import type { Logger } from '../observability/logger';

/**
 * Buffers the per-delivery log (`callback_deliveries`) and writes it in batches, off the
 * acknowledgement path: one insertMany per interval instead of one write per callback keeps the
 * database (and the disk Temporal shares with it locally) out of the ack latency. The log is
 * bookkeeping (how many deliveries each authorization got), not durability: the workflow start or
 * the inbox row is what makes a delivery durable. Each entry gets its id when the delivery arrives,
 * so a batch the database refused (an outage) is kept and written again later without double
 * counting; a crash of the API process loses what is still buffered.
 */
export interface DeliveryLog {
  record(entry: Omit<DeliveryDoc, '_id'>): void;
  /** the first delivery of a key, queued: logged under the id its run would use, so it counts once
   * even when a timed-out start did reach Temporal and the run logs it too */
  first(authorizationId: string, messageId: string | undefined, at: Date): void;
  /** writes what is buffered now */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function deliveryLog(
  authorizations: Pick<AuthorizationsRepository, 'logDeliveries' | 'logFirstDelivery'>,
  log: Logger,
  options: { intervalMs: number; maxBatch: number; maxBuffered: number; retryMs: number } = {
    intervalMs: 250,
    maxBatch: 1_000,
    maxBuffered: 100_000,
    retryMs: 2_000,
  },
): DeliveryLog {
  let buffer: DeliveryDoc[] = [];
  let writing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  function schedule(delayMs: number) {
    timer ??= setTimeout(() => void flush(), delayMs);
  }

  function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = buffer.splice(0, options.maxBatch);
    if (buffer.length > 0) schedule(options.intervalMs);
    writing = writing.then(() =>
      authorizations.logDeliveries(batch).catch((err: unknown) => {
        // Keep the batch for the next attempt (bounded: past maxBuffered the oldest entries go).
        buffer = [...batch, ...buffer];
        const dropped = buffer.length - options.maxBuffered;
        if (dropped > 0) buffer.splice(0, dropped);
        log.warn(
          {
            err: err instanceof Error ? err.message : String(err),
            pending: buffer.length,
            dropped: Math.max(0, dropped),
          },
          'deliveries not logged yet; will retry',
        );
        schedule(options.retryMs);
      }),
    );
    return writing;
  }

  return {
    record(entry) {
      buffer.push({ _id: randomUUID(), ...entry });
      if (buffer.length >= options.maxBatch) void flush();
      else schedule(options.intervalMs);
    },
    first(authorizationId, messageId, at) {
      writing = writing.then(() =>
        authorizations.logFirstDelivery(authorizationId, messageId, at).catch((err: unknown) => {
          log.warn({ err: err instanceof Error ? err.message : String(err) }, 'first delivery not logged');
        }),
      );
    },
    flush,
    close: flush,
  };
}
