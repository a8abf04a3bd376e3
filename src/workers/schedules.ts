import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { auditSealWorkflow } from '../workflows/audit';
import { stagingSweepWorkflow } from '../workflows/issuance';

export const STAGING_SWEEP_SCHEDULE_ID = 'cak-staging-sweep';
export const AUDIT_SEAL_SCHEDULE_ID = 'cak-audit-seal';
/** Each sequencer run seals for this long; the schedule starts one every minute, never two at once. */
const AUDIT_SEAL_RUN_MS = 55_000;

type Created = { created: boolean; scheduleId: string };

/**
 * Creates a schedule that starts one workflow run at a time (overlap SKIP), idempotently at worker
 * start: an existing schedule is left as it is. `triggerNow` starts the first run at once.
 */
async function ensureSchedule(
  client: Client,
  scheduleId: string,
  every: Duration,
  action: Omit<Extract<ScheduleOptions['action'], { type: 'startWorkflow' }>, 'type' | 'workflowId'>,
  triggerNow = false,
): Promise<Created> {
  try {
    await client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every }] },
      action: { type: 'startWorkflow', workflowId: `${scheduleId}-run`, ...action },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    });
    if (triggerNow) await client.schedule.getHandle(scheduleId).trigger();
    return { created: true, scheduleId };
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return { created: false, scheduleId };
    throw err;
  }
}

/**
 * The staging sweep (FerretDB has no TTL indexes): every interval it deletes staged items past their
 * expiry and pending packages of runs that died.
 */
export function ensureStagingSweepSchedule(
  client: Client,
  options: { taskQueue: string; intervalSeconds: number; scheduleId?: string },
): Promise<Created> {
  return ensureSchedule(client, options.scheduleId ?? STAGING_SWEEP_SCHEDULE_ID, options.intervalSeconds * 1000, {
    workflowType: stagingSweepWorkflow,
    taskQueue: options.taskQueue,
    workflowExecutionTimeout: '10 minutes',
  });
}

/**
 * The audit sequencer: one run at a time across every worker, each sealing pending audit events
 * for about a minute; the first starts at once.
 */
export function ensureAuditSealSchedule(
  client: Client,
  options: { taskQueue: string; pollMs: number; scheduleId?: string },
): Promise<Created> {
  return ensureSchedule(
    client,
    options.scheduleId ?? AUDIT_SEAL_SCHEDULE_ID,
    '1 minute',
    {
      workflowType: auditSealWorkflow,
      args: [{ forMs: AUDIT_SEAL_RUN_MS, pollMs: options.pollMs }],
      taskQueue: options.taskQueue,
      workflowExecutionTimeout: '5 minutes',
    },
    true,
  );
}
