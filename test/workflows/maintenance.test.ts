import './quiet-runtime';
import type { auditSealWorkflow } from '../../src/workflows/audit';
import type { connectivityCheckWorkflow } from '../../src/workflows/connectivity';
import type { stagingSweepWorkflow } from '../../src/workflows/issuance';
import { attempt, outcomeOf, startTestStubWorker, uniqueWorkflowId, type StubWorker } from './harness';

/** The one-step workflows: the audit sequencer, the staging sweep and the connectivity check. */
describe('maintenance workflows (stubbed activities)', () => {
  let w: StubWorker;

  beforeAll(async () => {
    w = await startTestStubWorker();
  });
  afterAll(() => w?.close());

  it('auditSealWorkflow hands its options to the sequencer and returns what it sealed, retrying an outage', async () => {
    const workflowId = uniqueWorkflowId('audit-seal');
    const script = w.stubs.script(workflowId, {
      sealAuditTrail: ({ forMs }) => {
        if (attempt() === 1) throw new Error('database unreachable');
        return { sealed: forMs / 100 };
      },
    });
    const handle = await w.client.workflow.start<typeof auditSealWorkflow>('auditSealWorkflow', {
      taskQueue: w.taskQueue,
      workflowId,
      args: [{ forMs: 500, pollMs: 50 }],
    });

    expect(await outcomeOf(handle)).toEqual({ result: { sealed: 5 } });
    expect(script.calls.map((c) => [c.activity, c.args, c.attempt])).toEqual([
      ['sealAuditTrail', [{ forMs: 500, pollMs: 50 }], 1],
      ['sealAuditTrail', [{ forMs: 500, pollMs: 50 }], 2],
    ]);
  });

  it('stagingSweepWorkflow returns the counts of the sweep', async () => {
    const workflowId = uniqueWorkflowId('staging-sweep');
    const script = w.stubs.script(workflowId, { sweepStaging: () => ({ staging: 4, packages: 9 }) });
    const handle = await w.client.workflow.start<typeof stagingSweepWorkflow>('stagingSweepWorkflow', {
      taskQueue: w.taskQueue,
      workflowId,
    });

    expect(await outcomeOf(handle)).toEqual({ result: { staging: 4, packages: 9 } });
    expect(script.names()).toEqual(['sweepStaging']);
  });

  it.each([
    { read: (probeId: string) => probeId, roundTrip: true },
    { read: () => undefined, roundTrip: false },
    { read: (probeId: string) => `${probeId}-other`, roundTrip: false },
  ])('connectivityCheckWorkflow reports roundTrip=$roundTrip', async ({ read, roundTrip }) => {
    const workflowId = uniqueWorkflowId('connectivity');
    const script = w.stubs.script(workflowId, { writeAndReadProbe: read });
    const handle = await w.client.workflow.start<typeof connectivityCheckWorkflow>('connectivityCheckWorkflow', {
      taskQueue: w.taskQueue,
      workflowId,
      args: ['probe-1'],
    });

    expect(await outcomeOf(handle)).toEqual({ result: { probeId: 'probe-1', roundTrip } });
    expect(script.callsOf('writeAndReadProbe').map((c) => c.args)).toEqual([['probe-1']]);
  });
});
