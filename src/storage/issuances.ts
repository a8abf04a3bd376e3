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
  version?: number;
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

/** The order an issuance's status moves in, and where each step's completion leaves it. */
const ISSUANCE_STATUS_ORDER: readonly IssuanceStatus[] = ['accepted', 'running', 'stored', 'completed'];
const STATUS_AFTER: Record<IssuanceStep, IssuanceStatus> = {
  issue: 'running',
  encrypt: 'running',
  store: 'stored',
  shred: 'completed',
};

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

    async setStep(
      issuanceId: string,
      step: IssuanceStep,
      state: StepState,
      extra: { version?: number } = {},
    ): Promise<void> {
      const now = new Date();
      // The worker writes each step once, when it completes (src/activities/issuance.ts): the issue
      // step's completion is when the run is `running`; the status route shows the next step as running.
      const status: IssuanceStatus | undefined =
        (state === 'running' || state === 'completed') && step === 'issue'
          ? 'running'
          : state === 'completed' && step === 'store'
            ? 'stored'
            : state === 'completed' && step === 'shred'
              ? 'completed'
              : undefined;
      // Statuses only move forward: a late attempt of a step (a retry whose timed-out first attempt
      // finished anyway) must not take a completed issuance back to `stored`.
      const notBeyond = ISSUANCE_STATUS_ORDER.slice(0, ISSUANCE_STATUS_ORDER.indexOf(STATUS_AFTER[step]) + 1);
      await issuances.updateOne(
        {
          _id: issuanceId,
          status: state === 'completed' ? { $in: notBeyond.filter((s) => s !== status) } : { $ne: 'failed' },
        },
        {
          $set: {
            [`steps.${step}`]: { state, at: now },
            updatedAt: now,
            ...(status ? { status } : {}),
            ...(extra.version !== undefined ? { version: extra.version } : {}),
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
            ...(step ? { [`steps.${step}`]: { state: 'failed', at: now } } : {}),
          },
        },
      );
    },
  };
}

export type IssuancesRepository = ReturnType<typeof issuancesRepository>;
