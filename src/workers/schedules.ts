import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client } from '@temporalio/client';
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
