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
  /** writes what is buffered now */
  flush(): Promise<void>;
  close(): Promise<void>;
}

export function deliveryLog(
  authorizations: Pick<AuthorizationsRepository, 'logDeliveries'>,
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
    flush,
    close: flush,
  };
}
