import './quiet-runtime';
import { Context } from '@temporalio/activity';
import type { issuanceWorkflow } from '../../src/workflows/issuance';
import type { IssuanceInput, IssuanceStep } from '../../src/domain/issuance';
import {
  attempt,
  issuanceInput,
  outcomeOf,
  permanent,
  startTestStubWorker,
  uniqueWorkflowId,
  type Behaviour,
  type Script,
  type StubWorker,
} from './harness';

/** issuanceWorkflow: issue -> encrypt -> store -> shred, and the abandon step after any failure. */
describe('issuanceWorkflow (stubbed activities)', () => {
  let w: StubWorker;

  beforeAll(async () => {
    w = await startTestStubWorker();
  });
  afterAll(() => w?.close());

  async function run(input: IssuanceInput, behaviour: Behaviour = {}) {
    const workflowId = uniqueWorkflowId('issuance');
    const script = w.stubs.script(workflowId, behaviour);
    const handle = await w.client.workflow.start<typeof issuanceWorkflow>('issuanceWorkflow', {
      taskQueue: w.taskQueue,
      workflowId,
      args: [input],
    });
    return { script, handle, outcome: await outcomeOf(handle) };
  }

  const abandonOf = (script: Script) => script.callsOf('abandonIssuance').map((c) => c.args[0]);

  it('runs issue -> encrypt -> store -> shred, passing each step what the one before returned', async () => {
    const input = issuanceInput();
    const { script, outcome } = await run(input);

    expect(outcome).toEqual({ result: { recordId: input.recordId, version: 1, issuanceId: input.issuanceId } });
    expect(script.names()).toEqual(['obtainCakPublicKey', 'encryptItems', 'storeRecord', 'shredStaging']);
    const [issue, encrypt, store, shred] = script.calls.map((c) => c.args);
    // no cakPublicKey in the input: the platform is asked (the key is absent, not undefined)
    expect(issue).toEqual([
      {
        issuanceId: input.issuanceId,
        userId: input.userId,
        issuerDid: input.issuerDid,
        credentialId: input.credentialId,
        curve: input.curve,
      },
    ]);
    expect(encrypt).toEqual([
      {
        issuanceId: input.issuanceId,
        recordId: input.recordId,
        curve: input.curve,
        cakPublicKey: 'platform-issued-key',
        items: input.items,
      },
    ]);
    expect(store![0]).toMatchObject({
      issuanceId: input.issuanceId,
      identity: {
        recordId: input.recordId,
        issuerDid: input.issuerDid,
        userId: input.userId,
        schemaId: input.schemaId,
      },
      packages: input.items.map((item): unknown => expect.objectContaining({ itemId: item.itemId, kind: item.kind })),
    });
    expect(shred).toEqual([input.issuanceId]);
    expect(script.callsOf('abandonIssuance')).toEqual([]);
  });

  it("passes the client's cakPublicKey to the issue step and encrypts to the key it returns", async () => {
    const input = issuanceInput({ cakPublicKey: 'client-key' });
    const { script, outcome } = await run(input);

    expect(outcome).toMatchObject({ result: { issuanceId: input.issuanceId } });
    expect(script.callsOf('obtainCakPublicKey')[0]!.args[0]).toMatchObject({ cakPublicKey: 'client-key' });
    expect(script.callsOf('encryptItems')[0]!.args[0]).toMatchObject({ cakPublicKey: 'client-key' });
  });

  it('retries a transient platform error and goes on with the key of the retry', async () => {
    const { script, outcome } = await run(issuanceInput(), {
      obtainCakPublicKey: () => {
        if (attempt() === 1) throw new Error('platform answered 503');
        return { cakPublicKey: 'second-attempt-key' };
      },
    });

    expect(outcome).toMatchObject({ result: { version: 1 } });
    expect(script.callsOf('obtainCakPublicKey').map((c) => c.attempt)).toEqual([1, 2]);
    expect(script.callsOf('encryptItems')[0]!.args[0]).toMatchObject({ cakPublicKey: 'second-attempt-key' });
  });

  it('retries a database outage in encrypt, store and shred: the run is delayed, not failed', async () => {
    const flaky = () => {
      if (attempt() === 1) throw new Error('database unreachable');
    };
    const { script, outcome } = await run(issuanceInput(), {
      encryptItems: () => {
        flaky();
        return [];
      },
      storeRecord: (input) => {
        flaky();
        return { recordId: input.identity.recordId, version: 7, issuanceId: input.issuanceId };
      },
      shredStaging: () => flaky(),
    });

    expect(outcome).toMatchObject({ result: { version: 7 } });
    expect(script.calls.map((c) => `${c.activity}#${c.attempt}`)).toEqual([
      'obtainCakPublicKey#1',
      'encryptItems#1',
      'encryptItems#2',
      'storeRecord#1',
      'storeRecord#2',
      'shredStaging#1',
      'shredStaging#2',
    ]);
  });

  // Each issuance failure leads to the abandon step, with the step it failed in and its type, and
  // ends the run with that type, not retryable. The platform's failure types end the run even when
  // the activity did not mark them non-retryable (the workflow's retry policy lists them).
  const failures: {
    step: IssuanceStep;
    type: string;
    behaviour: (failure: Error) => Behaviour;
    called: string[];
  }[] = [
    {
      step: 'issue',
      type: 'PlatformRejected',
      behaviour: (f) => ({ obtainCakPublicKey: () => Promise.reject(f) }),
      called: ['obtainCakPublicKey'],
    },
    {
      step: 'issue',
      type: 'PlatformUnavailable',
      behaviour: (f) => ({ obtainCakPublicKey: () => Promise.reject(f) }),
      called: ['obtainCakPublicKey'],
    },
    {
      step: 'issue',
      type: 'InvalidCakPublicKey',
      behaviour: (f) => ({ obtainCakPublicKey: () => Promise.reject(f) }),
      called: ['obtainCakPublicKey'],
    },
    {
      step: 'encrypt',
      type: 'StagingMissing',
      behaviour: (f) => ({ encryptItems: () => Promise.reject(f) }),
      called: ['obtainCakPublicKey', 'encryptItems'],
    },
    {
      step: 'store',
      type: 'RecordOwnedElsewhere',
      behaviour: (f) => ({ storeRecord: () => Promise.reject(f) }),
      called: ['obtainCakPublicKey', 'encryptItems', 'storeRecord'],
    },
    {
      step: 'shred',
      type: 'ShredRefused',
      behaviour: (f) => ({ shredStaging: () => Promise.reject(f) }),
      called: ['obtainCakPublicKey', 'encryptItems', 'storeRecord', 'shredStaging'],
    },
  ];

  it.each(failures)('$step: a $type failure goes to the abandon step and ends the run', async (c) => {
    const input = issuanceInput();
    // the platform types are thrown retryable: the workflow's nonRetryableErrorTypes must stop them
    const failure =
      c.step === 'issue'
        ? Object.assign(permanent(c.type, `${c.type} by the stub`), { nonRetryable: false })
        : permanent(c.type, `${c.type} by the stub`);
    const { script, outcome } = await run(input, c.behaviour(failure));

    expect(script.names()).toEqual([...c.called, 'abandonIssuance']);
    expect(script.calls.every((call) => call.attempt === 1)).toBe(true);
    expect(abandonOf(script)).toEqual([
      { issuanceId: input.issuanceId, step: c.step, failure: { type: c.type, message: `${c.type} by the stub` } },
    ]);
    expect(outcome).toMatchObject({
      failure: {
        name: 'WorkflowFailedError',
        cause: { name: 'ApplicationFailure', type: c.type, message: `${c.type} by the stub`, nonRetryable: true },
      },
    });
  });

  it('a forged input goes to the abandon step too (which touches nothing) and fails with ForgedInput', async () => {
    const input = issuanceInput();
    const { script, outcome } = await run(input, {
      obtainCakPublicKey: () =>
        Promise.reject(permanent('ForgedInput', 'the run is not the one this issuance id names')),
    });

    expect(script.names()).toEqual(['obtainCakPublicKey', 'abandonIssuance']);
    expect(abandonOf(script)).toEqual([
      {
        issuanceId: input.issuanceId,
        step: 'issue',
        failure: { type: 'ForgedInput', message: 'the run is not the one this issuance id names' },
      },
    ]);
    expect(outcome).toMatchObject({ failure: { cause: { type: 'ForgedInput', nonRetryable: true } } });
  });

  it('an abandon step that meets a database outage is retried, and the run still ends with the original failure', async () => {
    const { script, outcome } = await run(issuanceInput(), {
      encryptItems: () => Promise.reject(permanent('StagingMissing')),
      abandonIssuance: () => {
        if (attempt() < 3) throw new Error('database unreachable');
      },
    });

    expect(script.callsOf('abandonIssuance').map((c) => c.attempt)).toEqual([1, 2, 3]);
    expect(outcome).toMatchObject({ failure: { cause: { type: 'StagingMissing', nonRetryable: true } } });
  });

  // The abandon step runs outside the cancelled scope (behind patched('abandon-when-cancelled'); the
  // committed history issuance-cancelled.json, from before the patch, replays without it).
  it('a cancelled run records why in the abandon step, then ends cancelled', async () => {
    const input = issuanceInput();
    const workflowId = uniqueWorkflowId('issuance');
    const script = w.stubs.script(workflowId, {
      // runs until its cancellation reaches it (through a heartbeat)
      encryptItems: async () => {
        const activity = Context.current();
        for (;;) {
          activity.heartbeat();
          await activity.sleep(100);
        }
      },
    });
    const handle = await w.client.workflow.start<typeof issuanceWorkflow>('issuanceWorkflow', {
      taskQueue: w.taskQueue,
      workflowId,
      args: [input],
    });
    await script.waitFor('encryptItems');
    await handle.cancel();
    const outcome = await outcomeOf(handle);

    expect(outcome).toMatchObject({ failure: { name: 'WorkflowFailedError', cause: { name: 'CancelledFailure' } } });
    expect(script.names()).toEqual(['obtainCakPublicKey', 'encryptItems', 'abandonIssuance']);
    expect(script.callsOf('abandonIssuance')[0]?.args[0]).toMatchObject({
      issuanceId: input.issuanceId,
      step: 'encrypt',
      failure: { type: 'Cancelled' },
    });
  });
});
