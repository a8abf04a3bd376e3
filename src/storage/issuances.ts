import type { Db } from 'mongodb';
import { isDuplicateKey } from './duplicate-key';
import { countByField } from './mongo';
import type { CakCurve, IssuanceStatus, IssuanceStep, ItemDescriptor, StepState } from '../domain/issuance';

/**
 * The `issuances` collection: one document per accepted issuance, keyed by the issuance id (a keyed
 * hash of the client's Idempotency-Key when there is one, so the unique `_id` is the dedup index and
 * outlasts Temporal's retention). Holds the request fingerprint (to tell a replay from a conflicting
 * reuse of the key) and the state of each pipeline step for `GET /v1/issuances/:id`. No PII: only
 * pseudonymous ids and item metadata.
 */

export interface StepDoc {
  state: StepState;
  at?: Date;
  attempts?: number;
}

export interface IssuanceDoc {
  _id: string;
  clientId: string;
  fingerprint: string;
  workflowId: string;
  recordId: string;
  userId: string;
  issuerDid: string;
  schemaId: string;
  credentialId: string;
  curve: CakCurve;
  keySource: 'client' | 'platform';
  /** keyed fingerprint of the client's cakPublicKey (src/domain/ids.ts), so a run cannot swap it */
  cakKeyFingerprint?: string;
  items: ItemDescriptor[];
  status: IssuanceStatus;
  steps: Record<IssuanceStep, StepDoc>;
  error?: { type: string; message: string };
  createdAt: Date;
  updatedAt: Date;
}

/** What `list` filters on. */
export interface IssuanceListFilter {
  status?: IssuanceStatus;
  userId?: string;
  schemaId?: string;
}

/**
 * Where each step's completion takes an issuance, and the statuses it may come from. Statuses only
 * move forward: a late attempt of a step (a retry whose timed-out first attempt finished anyway)
 * must not take a completed issuance back. The worker writes twice per issuance: `issue`'s
 * completion (the platform has answered: `running`) and `shred`'s, which records `encrypt` and
 * `store` completed with it (`completed`). Until then the status route finds a stored run by its
 * record version (src/api/issuances.ts), and a run failing after `encrypt` or `store` records them
 * completed with the failure.
 */
type RecordedStep = 'issue' | 'shred';
const STEP_COMPLETION: Record<RecordedStep, { from: IssuanceStatus[]; to: IssuanceStatus }> = {
  issue: { from: ['accepted'], to: 'running' },
  shred: { from: ['accepted', 'running', 'stored'], to: 'completed' },
};

/** Written completed with a step's completion or failure: the steps before it that write nothing themselves. */
const COMPLETED_WITH: Partial<Record<IssuanceStep, IssuanceStep[]>> = {
  store: ['encrypt'],
  shred: ['encrypt', 'store'],
};
const completed = (steps: IssuanceStep[], at: Date) =>
  Object.fromEntries(steps.map((s) => [`steps.${s}`, { state: 'completed', at }]));

/**
 * The issuance as it stands: between the two writes a record version made by this issuance (its
 * creation time given) means `encrypt` and `store` are done, so a running issuance with one is
 * `stored`. For the status route and `cak issuances status`.
 */
export function withStoredVersion(doc: IssuanceDoc, versionCreatedAt: Date | undefined): IssuanceDoc {
  if (doc.status !== 'running' || versionCreatedAt === undefined) return doc;
  const done: StepDoc = { state: 'completed', at: versionCreatedAt };
  return { ...doc, status: 'stored', steps: { ...doc.steps, encrypt: done, store: done } };
}

export function issuancesRepository(db: Db) {
  const issuances = db.collection<IssuanceDoc>('issuances');
  return {
    collection: issuances,

    /** Inserts the issuance; returns the existing document instead when the id is taken. */
    async create(doc: IssuanceDoc): Promise<{ created: boolean; doc: IssuanceDoc }> {
      try {
        await issuances.insertOne(doc);
        return { created: true, doc };
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        const existing = await issuances.findOne({ _id: doc._id });
        if (!existing) throw err;
        return { created: false, doc: existing };
      }
    },

    get: (issuanceId: string) => issuances.findOne({ _id: issuanceId }),

    /** Oldest update first, filtered in the query (every field given must match). */
    list: (filter: IssuanceListFilter, limit = 100) =>
      issuances
        .find({
          ...(filter.status !== undefined ? { status: filter.status } : {}),
          ...(filter.userId !== undefined ? { userId: filter.userId } : {}),
          ...(filter.schemaId !== undefined ? { schemaId: filter.schemaId } : {}),
        })
        .sort({ updatedAt: 1 })
        .limit(limit)
        .toArray(),

    countByStatus: () => countByField(issuances, 'status'),

    async completeStep(issuanceId: string, step: RecordedStep): Promise<void> {
      const now = new Date();
      const completion = STEP_COMPLETION[step];
      await issuances.updateOne(
        { _id: issuanceId, status: { $in: completion.from } },
        {
          $set: {
            ...completed([...(COMPLETED_WITH[step] ?? []), step], now),
            updatedAt: now,
            status: completion.to,
          },
        },
      );
    },

    async markFailed(
      issuanceId: string,
      step: IssuanceStep | undefined,
      error: { type: string; message: string },
    ): Promise<void> {
      const now = new Date();
      await issuances.updateOne(
        { _id: issuanceId },
        {
          $set: {
            status: 'failed',
            error: { type: error.type.slice(0, 100), message: error.message.slice(0, 500) },
            updatedAt: now,
            ...completed(step ? (COMPLETED_WITH[step] ?? []) : [], now),
            ...(step ? { [`steps.${step}`]: { state: 'failed', at: now } } : {}),
          },
        },
      );
    },
  };
}

export type IssuancesRepository = ReturnType<typeof issuancesRepository>;
