import type { Db } from 'mongodb';
import type { AuthorizationState, CallbackHandlerName, CallbackPayload } from '../domain/authorization';
import { isDuplicateKey } from './duplicate-key';

/**
 * The `authorizations` collection: one document per dedup key (userId, verifierDid, schemaId),
 * keyed by its keyed hash, so the unique `_id` catches duplicates for as long as the data is kept
 * (beyond Temporal's retention). Holds pseudonymous identifiers only.
 */
export interface AuthorizationDoc extends CallbackPayload {
  _id: string;
  state: AuthorizationState;
  /** handlers the route ran (set by `route`) */
  handlers: CallbackHandlerName[];
  /** deliveries acknowledged for this key, duplicates included */
  deliveries: number;
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
  let indexes: Promise<unknown> | undefined;
  const ensureIndexes = () =>
    (indexes ??= collection.createIndex({ state: 1, updatedAt: 1 }, { name: 'state_updatedAt' }).catch((err) => {
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
    ensureIndexes,

    /** Counts one acknowledged delivery (creating the record as `received` on the first). */
    async countDelivery(id: string, payload: CallbackPayload, workflowId: string, now = new Date()): Promise<void> {
      await retryOnDuplicate(() =>
        collection.updateOne(
          { _id: id },
          {
            $inc: { deliveries: 1 },
            $set: { lastDeliveryAt: now },
            $setOnInsert: { ...insertFields(id, payload, workflowId, now), state: 'received', updatedAt: now },
          },
          { upsert: true },
        ),
      );
    },

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
              deliveries: 0,
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
      await collection.updateOne(
        { _id: id, state: { $in: GRANTABLE } },
        { $set: { state, handlers, updatedAt: new Date() } },
      );
      return (await collection.findOne({ _id: id }, { projection: { state: 1 } }))?.state;
    },

    async countRedrive(id: string): Promise<void> {
      await collection.updateOne({ _id: id }, { $inc: { redriven: 1 }, $set: { updatedAt: new Date() } });
    },

    /** Operator revocation; true when this call revoked it (false: unknown or already revoked). */
    async revoke(id: string, by: string, now = new Date()): Promise<boolean> {
      const res = await collection.updateOne(
        { _id: id, state: { $ne: 'revoked' } },
        { $set: { state: 'revoked', revokedAt: now, revokedBy: by, updatedAt: now } },
      );
      return res.modifiedCount === 1;
    },

    get: (id: string) => collection.findOne({ _id: id }),

    async isActive(id: string): Promise<boolean> {
      return (await collection.findOne({ _id: id, state: 'active' }, { projection: { _id: 1 } })) !== null;
    },

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
