import { proxyActivities } from '@temporalio/workflow';
import type { Activities } from '../activities';

const { writeAndReadProbe } = proxyActivities<Activities>({
  startToCloseTimeout: '10 seconds',
  retry: { initialInterval: '500 milliseconds', maximumAttempts: 5 },
});

/**
 * End-to-end check an operator (or `cak doctor`) can run: a worker picks up the task and its
 * activity writes to and reads back from the database. Returns what it read.
 */
export async function connectivityCheckWorkflow(probeId: string): Promise<{ probeId: string; roundTrip: boolean }> {
  const read = await writeAndReadProbe(probeId);
  return { probeId, roundTrip: read === probeId };
}
