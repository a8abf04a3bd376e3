import { ScheduleAlreadyRunning, ScheduleOverlapPolicy, type Client, type ScheduleOptions } from '@temporalio/client';
import type { Duration } from '@temporalio/common';
import { auditSealWorkflow } from '../workflows/audit';
import { stagingSweepWorkflow } from '../workflows/issuance';

const STAGING_SWEEP_SCHEDULE_ID = 'cak-staging-sweep';
export const AUDIT_SEAL_SCHEDULE_ID = 'cak-audit-seal';
/** Each sequencer run seals for this long; the schedule starts one every minute, never two at once. */
const AUDIT_SEAL_RUN_MS = 55_000;

type Created = { created: boolean; scheduleId: string };

/**
 * Creates a schedule that starts one workflow run at a time (overlap SKIP), idempotently at worker
 * start; `triggerNow` starts the first run at once. A schedule belongs to the namespace, not to a
 * worker: one that exists already is updated to this worker's action (task queue, arguments), so a
 * schedule left pointing at a task queue nobody polls (another deployment's, a test's) is taken back,
 * and a run it started there is ended.
 */
async function ensureSchedule(
  client: Client,
  scheduleId: string,
  every: Duration,
  action: Omit<Extract<ScheduleOptions['action'], { type: 'startWorkflow' }>, 'type' | 'workflowId'>,
  triggerNow = false,
): Promise<Created> {
  const desired = {
    spec: { intervals: [{ every }] },
    action: { type: 'startWorkflow' as const, workflowId: `${scheduleId}-run`, ...action },
    policies: { overlap: ScheduleOverlapPolicy.SKIP, catchupWindow: '1 minute' as Duration },
  };
  try {
    await client.schedule.create({ scheduleId, ...desired });
    if (triggerNow) await client.schedule.getHandle(scheduleId).trigger();
    return { created: true, scheduleId };
  } catch (err) {
    if (!(err instanceof ScheduleAlreadyRunning)) throw err;
    const handle = client.schedule.getHandle(scheduleId);
    const before = await handle.describe();
    await handle.update((previous) => ({ ...desired, state: previous.state }));
    if (before.action.type === 'startWorkflow' && before.action.taskQueue !== action.taskQueue) {
      // A run started for the old task queue waits there for a worker that may never come, and
      // blocks the next run (overlap SKIP) until its timeout: end it, and start one here.
      for (const { workflow } of before.info.runningActions) {
        await client.workflow
          .getHandle(workflow.workflowId, workflow.firstExecutionRunId)
          .terminate(`schedule ${scheduleId} moved to task queue ${action.taskQueue}`)
          .catch(() => undefined); // ended meanwhile
      }
      // ALLOW_ALL: the schedule may not have seen the termination yet (the run it ended is gone)
      if (triggerNow) await handle.trigger(ScheduleOverlapPolicy.ALLOW_ALL);
    }
    return { created: false, scheduleId };
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
