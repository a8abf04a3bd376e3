import type { Db } from 'mongodb';
import type { CallbackPayload } from '../domain/authorization';
import { isDuplicateKey } from './duplicate-key';

/**
 * The callback inbox (`callback_inbox`): deliveries acknowledged while Temporal could not take the
 * workflow start. `_id` is the authorization id (the keyed dedup key), so a key is queued at most
 * once however many deliveries arrive; the relay turns each row into the start and deletes it.
 */
interface InboxDoc extends CallbackPayload {
  _id: string;
  receivedAt: Date;
  attempts: number;
  nextAttemptAt: Date;
  lastError?: string;
}

export function inboxRepository(db: Db) {
  const collection = db.collection<InboxDoc>('callback_inbox');
  return {
    collection,

    /** Deliveries waiting for the relay to start their run. */
    pending: () => collection.countDocuments({}),

    /** Queues the delivery; `duplicate` when the key was already queued. */
    async put(id: string, payload: CallbackPayload, now = new Date()): Promise<{ duplicate: boolean }> {
      try {
        await collection.insertOne({
          _id: id,
          userId: payload.userId,
          verifierDid: payload.verifierDid,
          schemaId: payload.schemaId,
          receivedAt: now,
          attempts: 0,
          nextAttemptAt: now,
        });
        return { duplicate: false };
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        return { duplicate: true }; // deliveries are logged by the caller (callback_deliveries)
      }
    },

    due(limit: number, now = new Date()): Promise<InboxDoc[]> {
      return collection
        .find({ nextAttemptAt: { $lte: now } })
        .sort({ receivedAt: 1 })
        .limit(limit)
        .toArray();
    },

    async defer(id: string, nextAttemptAt: Date, error: string): Promise<void> {
      await collection.updateOne(
        { _id: id },
        { $inc: { attempts: 1 }, $set: { nextAttemptAt, lastError: error.slice(0, 500) } },
      );
    },

    async remove(id: string): Promise<void> {
      await collection.deleteOne({ _id: id });
    },
  };
}

export type InboxRepository = ReturnType<typeof inboxRepository>;
