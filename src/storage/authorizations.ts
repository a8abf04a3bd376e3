import type { Db } from 'mongodb';
import type { AuthorizationState, CallbackHandlerName, CallbackPayload } from '../domain/authorization';
import { DUPLICATE_KEY_CODE, isDuplicateKey } from './duplicate-key';
import { countByField } from './mongo';

/**
 * The `authorizations` collection: one document per dedup key (userId, verifierDid, schemaId),
 * keyed by its keyed hash, so the unique `_id` catches duplicates for as long as the data is kept
 * (beyond Temporal's retention). Holds pseudonymous identifiers only.
 *
 * FerretDB v1 applies an update as read-modify-write without isolation: two concurrent updates of
 * one document can lose one of them (measured: `$inc` under 50 concurrent deliveries lost counts).
 * So everything written concurrently is insert-only, where the unique `_id` index is atomic:
 * - deliveries: one `callback_deliveries` document per acknowledged delivery, counted on read;
 * - revocations: one `authorization_revocations` document, consulted by every access check, so a
 *   revocation racing a `settle` cannot be overwritten.
 * The authorization document itself has one writer at a time (its workflow run's activities run
 * one after another; the operator's `revoke` also writes its state, for listing only).
 */
export interface DeliveryDoc {
  _id: string;
  authorizationId: string;
  /** the platform's message id (`webhook-id`), when the scheme has one */
  messageId?: string;
  path: 'first' | 'duplicate' | 'queued';
  at: Date;
}

export interface RevocationDoc {
  _id: string;
  by: string;
  at: Date;
}

export interface AuthorizationDoc extends CallbackPayload {
  _id: string;
  state: AuthorizationState;
  /** handlers the route ran (set by `route`) */
  handlers: CallbackHandlerName[];
  redriven: number;
  workflowId: string;
  firstSeenAt: Date;
  lastDeliveryAt?: Date;
  updatedAt: Date;
  revokedAt?: Date;
  revokedBy?: string;
}

/** States `grant-access` may move from: never from `revoked` (a revocation sticks). */
const GRANTABLE: AuthorizationState[] = ['received', 'no-data', 'unrouted', 'active', 'routed'];

async function retryOnDuplicate<T>(op: () => Promise<T>): Promise<T> {
  // Two concurrent upserts of a new _id: one inserts, the other gets E11000 and now simply matches.
  try {
    return await op();
  } catch (err) {
    if (!isDuplicateKey(err)) throw err;
    return op();
  }
}

export function authorizationsRepository(db: Db) {
  const collection = db.collection<AuthorizationDoc>('authorizations');
  const deliveries = db.collection<DeliveryDoc>('callback_deliveries');
  const revocations = db.collection<RevocationDoc>('authorization_revocations');
  let indexes: Promise<unknown> | undefined;
  const ensureIndexes = () =>
    (indexes ??= Promise.all([
      collection.createIndex({ state: 1, updatedAt: 1 }, { name: 'state_updatedAt' }),
      deliveries.createIndex({ authorizationId: 1 }, { name: 'by_authorization' }),
    ]).catch((err) => {
      indexes = undefined;
      throw err;
    }));

  function insertFields(id: string, payload: CallbackPayload, workflowId: string, now: Date) {
    return {
      userId: payload.userId,
      verifierDid: payload.verifierDid,
      schemaId: payload.schemaId,
      workflowId,
      handlers: [],
      redriven: 0,
      firstSeenAt: now,
    };
  }

  return {
    collection,
    deliveries,
    ensureIndexes,

    /** Logs acknowledged deliveries (insert-only: safe under any concurrency). */
    /** Idempotent on each entry's `_id`: a batch retried after a partial write counts each delivery once. */
    async logDeliveries(batch: DeliveryDoc[]): Promise<void> {
      if (batch.length === 0) return;
      try {
        await deliveries.insertMany(batch, { ordered: false });
      } catch (err) {
        // Unordered: every entry is attempted; entries already written come back as duplicate keys.
        const writeErrors = (err as { writeErrors?: { code?: unknown }[] }).writeErrors;
        const onlyDuplicates = !!writeErrors?.length && writeErrors.every((e) => e.code === DUPLICATE_KEY_CODE);
        if (!isDuplicateKey(err) && !onlyDuplicates) throw err;
      }
    },

    /** The first delivery of a key, logged by the run it started (or, if queued, by the API under the
     * same id): idempotent on (authorization, receipt time). */
    async logFirstDelivery(id: string, messageId: string | undefined, at: Date): Promise<void> {
      try {
        await deliveries.insertOne({
          _id: `first:${id}:${at.toISOString()}`,
          authorizationId: id,
          ...(messageId ? { messageId } : {}),
          path: 'first',
          at,
        });
      } catch (err) {
        if (!isDuplicateKey(err)) throw err; // a retried activity
      }
    },

    countDeliveries: (id: string) => deliveries.countDocuments({ authorizationId: id }),

    /** `verify`: makes sure the record exists (idempotent) and returns it. */
    async record(
      id: string,
      payload: CallbackPayload,
      workflowId: string,
      now = new Date(),
    ): Promise<AuthorizationDoc> {
      await retryOnDuplicate(() =>
        collection.updateOne(
          { _id: id },
          {
            $setOnInsert: {
              ...insertFields(id, payload, workflowId, now),
              state: 'received',
              updatedAt: now,
            },
          },
          { upsert: true },
        ),
      );
      const doc = await collection.findOne({ _id: id });
      if (!doc) throw new Error(`authorization ${id} vanished after upsert`);
      return doc;
    },

    /** Moves to `state` unless revoked; returns the state the record ends in. */
    async settle(
      id: string,
      state: Exclude<AuthorizationState, 'revoked' | 'received'>,
      handlers: CallbackHandlerName[],
    ): Promise<AuthorizationState | undefined> {
      if (await revocations.findOne({ _id: id })) return 'revoked';
      await collection.updateOne(
        { _id: id, state: { $in: GRANTABLE } },
        { $set: { state, handlers, updatedAt: new Date() } },
      );
      return (await collection.findOne({ _id: id }, { projection: { state: 1 } }))?.state;
    },

    async countRedrive(id: string): Promise<void> {
      await collection.updateOne({ _id: id }, { $inc: { redriven: 1 }, $set: { updatedAt: new Date() } });
    },

    /** Operator revocation; true when this call revoked it (false: already revoked). */
    async revoke(id: string, by: string, now = new Date()): Promise<boolean> {
      let first = true;
      try {
        await revocations.insertOne({ _id: id, by, at: now });
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        first = false;
      }
      await collection.updateOne(
        { _id: id },
        { $set: { state: 'revoked', revokedAt: now, revokedBy: by, updatedAt: now } },
      );
      return first;
    },

    get: (id: string) => collection.findOne({ _id: id }),

    /** Access check: granted by `grant-access` and not revoked. */
    async isActive(id: string): Promise<boolean> {
      const active = await collection.findOne({ _id: id, state: 'active' }, { projection: { _id: 1 } });
      return active !== null && (await revocations.findOne({ _id: id })) === null;
    },

    countByState: () => countByField(collection, 'state'),

    list(filter: { state?: AuthorizationState }, limit = 100) {
      return collection
        .find(filter.state ? { state: filter.state } : {})
        .sort({ updatedAt: 1 })
        .limit(limit)
        .toArray();
    },
  };
}

export type AuthorizationsRepository = ReturnType<typeof authorizationsRepository>;
