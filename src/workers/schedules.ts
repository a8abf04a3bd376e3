import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
import { auditSealWorkflow } from '../workflows/audit';
import { stagingSweepWorkflow } from '../workflows/issuance';

export const STAGING_SWEEP_SCHEDULE_ID = 'cak-staging-sweep';

/**
 * The staging sweep runs as a Temporal Schedule (FerretDB has no TTL indexes): every interval it
 * deletes staged items past their expiry and pending packages of runs that died. Created
 * idempotently at worker start; an existing schedule is left as it is.
 */
export async function ensureStagingSweepSchedule(
  client: Client,
  options: { taskQueue: string; intervalSeconds: number; scheduleId?: string },
): Promise<{ created: boolean; scheduleId: string }> {
  const scheduleId = options.scheduleId ?? STAGING_SWEEP_SCHEDULE_ID;
  try {
    await client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every: options.intervalSeconds * 1000 }] },
      action: {
        type: 'startWorkflow',
        workflowType: stagingSweepWorkflow,
        taskQueue: options.taskQueue,
        workflowId: `${scheduleId}-run`,
        workflowExecutionTimeout: '10 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    });
    return { created: true, scheduleId };
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return { created: false, scheduleId };
    throw err;
  }
}

export const AUDIT_SEAL_SCHEDULE_ID = 'cak-audit-seal';
/** Each sequencer run seals for this long; the schedule starts one every minute, never two at once. */
const AUDIT_SEAL_RUN_MS = 55_000;

/**
 * The audit sequencer runs as a Temporal Schedule: one run at a time (overlap SKIP) across every
 * worker, each sealing pending audit events for about a minute. Created idempotently at worker
 * start; an existing schedule is left as it is.
 */
export async function ensureAuditSealSchedule(
  client: Client,
  options: { taskQueue: string; pollMs: number; scheduleId?: string },
): Promise<{ created: boolean; scheduleId: string }> {
  const scheduleId = options.scheduleId ?? AUDIT_SEAL_SCHEDULE_ID;
  try {
    await client.schedule.create({
      scheduleId,
      spec: { intervals: [{ every: '1 minute' }] },
      action: {
        type: 'startWorkflow',
        workflowType: auditSealWorkflow,
        args: [{ forMs: AUDIT_SEAL_RUN_MS, pollMs: options.pollMs }],
        taskQueue: options.taskQueue,
        workflowId: `${scheduleId}-run`,
        workflowExecutionTimeout: '5 minutes',
      },
      policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' },
    });
    // the first run now, not a minute from now
    await client.schedule.getHandle(scheduleId).trigger();
    return { created: true, scheduleId };
  } catch (err) {
    if (err instanceof ScheduleAlreadyRunning) return { created: false, scheduleId };
    throw err;
  }
}
