import type { DeliveryDoc, AuthorizationsRepository } from '../storage/authorizations';
import type { Logger } from '../observability/logger';

/**
 * Buffers the per-delivery log (`callback_deliveries`) and writes it in batches, off the
 * acknowledgement path: one insertMany per interval instead of one write per callback keeps the
 * database (and the disk Temporal shares with it locally) out of the ack latency. The log is
 * bookkeeping (how many deliveries each authorization got), not durability: the workflow start or
 * the inbox row is what makes a delivery durable, so a crash loses at most one interval of counts.
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
  options: { intervalMs: number; maxBatch: number } = { intervalMs: 250, maxBatch: 1_000 },
): DeliveryLog {
  let buffer: Omit<DeliveryDoc, '_id'>[] = [];
  let writing: Promise<void> = Promise.resolve();
  let timer: NodeJS.Timeout | undefined;

  function flush(): Promise<void> {
    if (timer) clearTimeout(timer);
    timer = undefined;
    const batch = buffer;
    buffer = [];
    writing = writing.then(() =>
      authorizations.logDeliveries(batch).catch((err: unknown) => {
        log.warn(
          { err: err instanceof Error ? err.message : String(err), lost: batch.length },
          'deliveries not logged',
        );
      }),
    );
    return writing;
  }

  return {
    record(entry) {
      buffer.push(entry);
      if (buffer.length >= options.maxBatch) void flush();
      else timer ??= setTimeout(() => void flush(), options.intervalMs);
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
