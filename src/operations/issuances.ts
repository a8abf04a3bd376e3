import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { defaultPayloadConverter, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Db } from 'mongodb';
import type { Keyring } from '../crypto/keyring';
import { payloadCodecFor } from '../crypto/payload-codec';
import {
  ISSUANCE_STEPS,
  isTransientIssuanceFailure,
  type IssuanceInput,
  type IssuanceStatus,
  type IssuanceStep,
} from '../domain/issuance';
import {
  issuancesRepository,
  withStoredVersion,
  type IssuanceDoc,
  type IssuanceListFilter,
} from '../storage/issuances';
import { recordsRepository } from '../storage/records';
import { stagingRepository } from '../storage/staging';
import { startIssuanceRun } from '../temporal/issuance-start';

/**
 * Operator actions on issuances (`cak issuances ...`): list them by status, and retry a failed one.
 *
 * What a retry is: a new run of the same workflow id (WorkflowIdReusePolicy
 * ALLOW_DUPLICATE_FAILED_ONLY) with the failed run's own input, after the issuance document is
 * reopened. It is allowed only when (1) the issuance is `failed`, (2) the failure was or could
 * have been transient (`isTransientIssuanceFailure`: the platform unavailable, or refusing our
 * Partner JWT, for the whole retry horizon; not a refusal of the request, a bad key or lost items),
 * and (3) every staged item is still there: such a failure keeps the sealed staging until
 * STAGING_TTL_SECONDS, a permanent one shreds it at once. Otherwise it refuses and the client
 * must resubmit. Safe to repeat: a second retry while the new run is going answers `already-running`
 * (Temporal refuses a second run of a running id), and once that run ends it is no longer `failed`.
 */

export const ISSUANCE_STATUSES = [
  'accepted',
  'running',
  'stored',
  'completed',
  'failed',
] as const satisfies readonly IssuanceStatus[];

interface IssuanceView {
  issuanceId: string;
  workflowId: string;
  status: IssuanceStatus;
  userId: string;
  issuerDid: string;
  schemaId: string;
  items: number;
  failedStep?: IssuanceStep;
  error?: { type: string; message: string };
  /** failed issuances: whether `retry` would be allowed by the failure type (staging is checked on retry) */
  retryable?: boolean;
  createdAt: Date;
  updatedAt: Date;
}

function failedStepOf(doc: IssuanceDoc): IssuanceStep | undefined {
  return ISSUANCE_STEPS.find((step) => doc.steps[step]?.state === 'failed');
}

function viewOf(doc: IssuanceDoc): IssuanceView {
  const failedStep = failedStepOf(doc);
  return {
    issuanceId: doc._id,
    workflowId: doc.workflowId,
    status: doc.status,
    userId: doc.userId,
    issuerDid: doc.issuerDid,
    schemaId: doc.schemaId,
    items: doc.items.length,
    ...(failedStep ? { failedStep } : {}),
    ...(doc.error ? { error: doc.error } : {}),
    ...(doc.status === 'failed' ? { retryable: isTransientIssuanceFailure(doc.error?.type ?? '') } : {}),
    createdAt: doc.createdAt,
    updatedAt: doc.updatedAt,
  };
}

/** Issuances (optionally of one status, user or schema: filtered in the database query), oldest update first. */
export async function listIssuances(db: Db, query: IssuanceListFilter & { limit: number }): Promise<IssuanceView[]> {
  const { limit, ...filter } = query;
  return (await issuancesRepository(db).list(filter, limit)).map(viewOf);
}

/** One issuance in detail (`cak issuances status`): its view, each step, its items and record version. */
interface IssuanceDetail extends IssuanceView {
  steps: Partial<Record<IssuanceStep, { state: string; at?: Date }>>;
  itemKinds: string[];
  version?: number;
}

export async function getIssuance(db: Db, issuanceId: string): Promise<IssuanceDetail | undefined> {
  const found = await issuancesRepository(db).get(issuanceId);
  if (!found) return undefined;
  const version = found.status === 'accepted' ? null : await recordsRepository(db).versionFor(issuanceId);
  const doc = withStoredVersion(found, version?.createdAt);
  return {
    ...viewOf(doc),
    steps: Object.fromEntries(
      ISSUANCE_STEPS.filter((step) => doc.steps[step]).map((step) => [
        step,
        { state: doc.steps[step].state, ...(doc.steps[step].at ? { at: doc.steps[step].at } : {}) },
      ]),
    ),
    itemKinds: doc.items.map((item) => item.kind),
    ...(version ? { version: version.version } : {}),
  };
}

export type RetryResult =
  | { outcome: 'started'; issuanceId: string; workflowId: string; runId: string }
  | { outcome: 'already-running'; issuanceId: string; workflowId: string }
  | {
      outcome: 'refused';
      issuanceId: string;
      code: 'NOT_FOUND' | 'NOT_FAILED' | 'PERMANENT_FAILURE' | 'STAGING_GONE' | 'INPUT_GONE';
      message: string;
    };

interface RetryDeps {
  db: Db;
  temporal: Client;
  taskQueue: string;
  codecKeyring: Keyring;
  gridfsThresholdBytes: number;
}

const RESUBMIT = 'the client must resubmit the issuance (with a new Idempotency-Key)';

/** The input the last run of this workflow id started with, decoded from its history. */
async function lastRunInput(deps: RetryDeps, doc: IssuanceDoc): Promise<IssuanceInput | undefined> {
  try {
    const history = await deps.temporal.workflow.getHandle(doc.workflowId).fetchHistory();
    const payloads = history.events?.[0]?.workflowExecutionStartedEventAttributes?.input?.payloads ?? [];
    const [payload] = await payloadCodecFor(deps.codecKeyring).decode(payloads);
    const input = payload ? defaultPayloadConverter.fromPayload<IssuanceInput>(payload) : undefined;
    return input?.issuanceId === doc._id ? input : undefined;
  } catch {
    return undefined; // the history is past Temporal's retention, or unreadable with this codec keyring
  }
}

export async function retryIssuance(deps: RetryDeps, issuanceId: string): Promise<RetryResult> {
  const issuances = issuancesRepository(deps.db);
  const refuse = (code: Extract<RetryResult, { outcome: 'refused' }>['code'], message: string): RetryResult => ({
    outcome: 'refused',
    issuanceId,
    code,
    message,
  });
  const doc = await issuances.get(issuanceId);
  if (!doc) return refuse('NOT_FOUND', 'no such issuance');
  if (doc.status !== 'failed')
    return refuse('NOT_FAILED', `the issuance is ${doc.status}; only failed ones are retried`);
  const failure = doc.error ?? { type: 'unknown', message: '' };
  if (!isTransientIssuanceFailure(failure.type)) {
    return refuse('PERMANENT_FAILURE', `it failed with ${failure.type}, which a retry would repeat; ${RESUBMIT}`);
  }
  const staged = await stagingRepository(deps.db, deps.gridfsThresholdBytes).count(issuanceId);
  if (staged < doc.items.length + 1) {
    return refuse(
      'STAGING_GONE',
      `its staged items are gone (shredded, or expired after STAGING_TTL_SECONDS); ${RESUBMIT}`,
    );
  }
  const input = await lastRunInput(deps, doc);
  if (!input) return refuse('INPUT_GONE', `the failed run's input is no longer in Temporal; ${RESUBMIT}`);
  // The failed run records its failure just before it ends, and another retry's run may have started:
  // reopening now would leave the issuance `accepted` with no run of its own to finish it.
  const { status } = await deps.temporal.workflow.getHandle(doc.workflowId).describe();
  if (status.name === 'RUNNING') return { outcome: 'already-running', issuanceId, workflowId: doc.workflowId };

  // Reopen first: the new run's step updates skip an issuance marked failed.
  const failedStep = failedStepOf(doc);
  await issuances.collection.updateOne(
    { _id: issuanceId, status: 'failed' },
    {
      $set: {
        status: 'accepted',
        updatedAt: new Date(),
        ...(failedStep ? { [`steps.${failedStep}`]: { state: 'pending' } } : {}),
      },
      $unset: { error: '' },
    },
  );
  try {
    const handle = await startIssuanceRun(
      deps.temporal,
      doc,
      deps.taskQueue,
      input,
      WorkflowIdReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
    );
    return { outcome: 'started', issuanceId, workflowId: doc.workflowId, runId: handle.firstExecutionRunId };
  } catch (err) {
    if (err instanceof WorkflowExecutionAlreadyStartedError) {
      return { outcome: 'already-running', issuanceId, workflowId: doc.workflowId };
    }
    // No new run: put the failure back as it was, so the issuance can be retried again.
    await issuances.collection.updateOne(
      { _id: issuanceId, status: 'accepted' },
      { $set: { status: 'failed', error: failure, steps: doc.steps, updatedAt: new Date() } },
    );
    throw err;
  }
}
