import {
  ActivityFailure,
  ApplicationFailure,
  CancellationScope,
  isCancellation,
  patched,
  proxyActivities,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import type { IssuanceInput, IssuanceStep, StoredVersion } from '../domain/issuance';
import { IssuanceFailureType } from '../domain/issuance';

/**
 * The platform call: its other 4xx and bad keys end the run at once; 5xx, timeouts and 401/403 retry
 * with backoff until PLATFORM_RETRY_HORIZON_SECONDS after the first attempt. The activity ends the
 * retries at the horizon (a setting workflow code cannot read), so attempts are not limited here.
 */
const platformStep = {
  startToCloseTimeout: '30 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '1 minute',
    nonRetryableErrorTypes: Object.values(IssuanceFailureType),
  },
} as const;

/** Database work: retried with backoff for as long as it takes (an outage delays, never fails, the run). */
const dataRetry = { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '30 seconds' } as const;
const encryptStep = { startToCloseTimeout: '5 minutes', heartbeatTimeout: '30 seconds', retry: dataRetry } as const;
const storeStep = { startToCloseTimeout: '2 minutes', heartbeatTimeout: '10 seconds', retry: dataRetry } as const;
const cleanupStep = { startToCloseTimeout: '1 minute', retry: dataRetry } as const;

const { obtainCakPublicKey } = proxyActivities<Activities>(platformStep);
const { encryptItems } = proxyActivities<Activities>(encryptStep);
const { storeRecord } = proxyActivities<Activities>(storeStep);
const { shredStaging, abandonIssuance } = proxyActivities<Activities>(cleanupStep);

/**
 * issue -> encrypt -> store -> shred staging. Raw items never enter history: they sit encrypted in
 * staging, `encrypt` writes packages to the database and returns only their ids and hashes, and
 * `store` makes a record version point at them.
 */
export async function issuanceWorkflow(input: IssuanceInput): Promise<StoredVersion> {
  const { issuanceId, recordId, curve } = input;
  let step: IssuanceStep = 'issue';
  try {
    const { cakPublicKey } = await obtainCakPublicKey({
      issuanceId,
      userId: input.userId,
      issuerDid: input.issuerDid,
      credentialId: input.credentialId,
      curve,
      ...(input.cakPublicKey !== undefined ? { cakPublicKey: input.cakPublicKey } : {}),
    });
    step = 'encrypt';
    const packages = await encryptItems({ issuanceId, recordId, curve, cakPublicKey, items: input.items });
    step = 'store';
    const stored = await storeRecord({
      issuanceId,
      identity: { recordId, issuerDid: input.issuerDid, userId: input.userId, schemaId: input.schemaId },
      packages,
    });
    step = 'shred';
    await shredStaging(issuanceId);
    return stored;
  } catch (err) {
    if (isCancellation(err) && patched('abandon-when-cancelled')) {
      // A cancelled run still records why it ended and drops its pending packages (the cancelled
      // scope would refuse the activity), then ends cancelled. Runs from before the patch did not.
      const failure = { type: 'Cancelled', message: `the run was cancelled during ${step}` };
      await CancellationScope.nonCancellable(() => abandonIssuance({ issuanceId, step, failure }));
      throw err;
    }
    const failure = describeFailure(err);
    await abandonIssuance({ issuanceId, step, failure });
    throw ApplicationFailure.create({ type: failure.type, message: failure.message, nonRetryable: true });
  }
}

function describeFailure(err: unknown): { type: string; message: string } {
  const cause = err instanceof ActivityFailure ? err.cause : err;
  if (cause instanceof ApplicationFailure) return { type: cause.type ?? 'Error', message: cause.message };
  return { type: 'IssuanceFailed', message: cause instanceof Error ? cause.message : String(cause) };
}

/** Run by the staging-sweep schedule: deletes staged items and pending packages left behind by dead runs. */
export async function stagingSweepWorkflow(): Promise<{ staging: number; packages: number }> {
  const { sweepStaging } = proxyActivities<Activities>(cleanupStep);
  return sweepStaging();
}
