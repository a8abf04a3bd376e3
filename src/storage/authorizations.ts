import type { Db, Filter } from 'mongodb';
import type { AccessFacts } from '../domain/access';
import type {
  AuthorizationState,
  AuthorizationViewState,
  CallbackHandlerName,
  CallbackPayload,
} from '../domain/authorization';
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

interface RevocationDoc {
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
  updatedAt: Date;
  /** the current access window: opened by the delivery received at `accessFrom` */
  accessFrom?: Date;
  accessUntil?: Date;
  /** listing hint only: `authorization_revocations` is what access checks read */
  revokedAt?: Date;
  revokedBy?: string;
}

/** What `list` filters on; every field given must match. */
export interface AuthorizationListFilter {
  state?: AuthorizationViewState;
  userId?: string;
  verifierDid?: string;
  schemaId?: string;
}

interface AccessWindow {
  accessFrom: Date;
  accessUntil: Date;
  /** false when the delivery fell inside a window already open (a retry: nothing moved) */
  opened: boolean;
}

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

    /** `verify`: makes sure the record exists (idempotent). */
    async record(id: string, payload: CallbackPayload, workflowId: string, now = new Date()): Promise<void> {
      await retryOnDuplicate(() =>
        collection.updateOne(
          { _id: id },
          { $setOnInsert: { ...insertFields(id, payload, workflowId, now), state: 'received', updatedAt: now } },
          { upsert: true },
        ),
      );
    },

    /**
     * Records the route's outcome (the run is the only writer of `state` and the window) and, for a
     * route that opens one, the access window of the delivery received at `receivedAt`, unless that
     * delivery falls inside the window already open (a retry, a duplicate): windows never extend.
     * One update in the common case: the filter says whether the window may open.
     */
    async settle(
      id: string,
      state: Exclude<AuthorizationState, 'received'>,
      handlers: CallbackHandlerName[],
      window?: { receivedAt: Date; windowMs: number },
    ): Promise<AccessWindow | undefined> {
      const now = new Date();
      if (window) {
        const { receivedAt } = window;
        const opened = { accessFrom: receivedAt, accessUntil: new Date(receivedAt.getTime() + window.windowMs) };
        const { matchedCount } = await collection.updateOne(
          {
            _id: id,
            $or: [
              { accessUntil: { $exists: false } },
              { accessUntil: { $lte: receivedAt } },
              { accessFrom: receivedAt },
            ],
          },
          { $set: { state, handlers, updatedAt: now, ...opened } },
        );
        if (matchedCount === 1) return { ...opened, opened: true };
      }
      await collection.updateOne({ _id: id }, { $set: { state, handlers, updatedAt: now } });
      if (!window) return undefined;
      const doc = await collection.findOne({ _id: id }, { projection: { accessFrom: 1, accessUntil: 1 } });
      if (!doc?.accessFrom || !doc.accessUntil) throw new Error(`authorization ${id} has no window to keep`);
      return { accessFrom: doc.accessFrom, accessUntil: doc.accessUntil, opened: false };
    },

    async countRedrive(id: string): Promise<void> {
      await collection.updateOne({ _id: id }, { $inc: { redriven: 1 }, $set: { updatedAt: new Date() } });
    },

    isRevoked: async (id: string) => (await revocations.findOne({ _id: id })) !== null,

    /** Operator revocation; true when this call revoked it (false: already revoked). */
    async revoke(id: string, by: string, now = new Date()): Promise<boolean> {
      try {
        await revocations.insertOne({ _id: id, by, at: now });
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        return false;
      }
      await collection.updateOne({ _id: id }, { $set: { revokedAt: now, revokedBy: by } });
      return true;
    },

    /** Operator reinstatement: lifts a revocation; true when one stood. */
    async reinstate(id: string): Promise<boolean> {
      const { deletedCount } = await revocations.deleteOne({ _id: id });
      await collection.updateOne({ _id: id }, { $unset: { revokedAt: '', revokedBy: '' } });
      return deletedCount > 0;
    },

    get: (id: string) => collection.findOne({ _id: id }),

    /** What the access rule (src/domain/access.ts) decides from: the record and any standing revocation. */
    async accessFacts(id: string): Promise<{ doc: AuthorizationDoc; facts: AccessFacts } | undefined> {
      const [doc, revocation] = await Promise.all([collection.findOne({ _id: id }), revocations.findOne({ _id: id })]);
      if (!doc) return undefined;
      return {
        doc,
        facts: {
          state: doc.state,
          revoked: revocation !== null,
          ...(doc.accessUntil ? { accessUntil: doc.accessUntil } : {}),
        },
      };
    },

    countByState: () => countByField(collection, 'state'),

    /**
     * Oldest update first, filtered in the query; `revoked` and `expired` are read from the
     * revocations and the windows.
     */
    async list(filter: AuthorizationListFilter, limit = 100, now = new Date()) {
      const by: Filter<AuthorizationDoc> = {
        ...(filter.userId !== undefined ? { userId: filter.userId } : {}),
        ...(filter.verifierDid !== undefined ? { verifierDid: filter.verifierDid } : {}),
        ...(filter.schemaId !== undefined ? { schemaId: filter.schemaId } : {}),
      };
      let query: Filter<AuthorizationDoc> = filter.state ? { ...by, state: filter.state as AuthorizationState } : by;
      if (filter.state === 'revoked') {
        const ids = await revocations.find({}, { projection: { _id: 1 } }).toArray();
        query = { ...by, _id: { $in: ids.map((r) => r._id) } };
      } else if (filter.state === 'expired') {
        query = { ...by, state: 'active', accessUntil: { $lte: now } };
      }
      return collection.find(query).sort({ updatedAt: 1 }).limit(limit).toArray();
    },
  };
}

export type AuthorizationsRepository = ReturnType<typeof authorizationsRepository>;
