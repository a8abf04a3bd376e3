import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { sealAuditTrail } = proxyActivities<Activities>({
  startToCloseTimeout: '2 minutes',
  heartbeatTimeout: '20 seconds',
  retry: { initialInterval: '1 second', backoffCoefficient: 2, maximumInterval: '10 seconds' },
});

/**
 * The audit sequencer, started by the audit-seal schedule (one run at a time): for about a minute
 * it seals pending audit events into the keyed chain as they arrive, then ends; the schedule starts
 * the next run. Appending never waits for it (src/storage/audit.ts).
 */
export async function auditSealWorkflow(options: { forMs: number; pollMs: number }): Promise<{ sealed: number }> {
  return sealAuditTrail(options);
}
