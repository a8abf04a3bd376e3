import './quiet-runtime';
import type { WorkflowHandle } from '@temporalio/client';
import {
  DELIVERY_SIGNAL,
  REDRIVE_SIGNAL,
  type AuthorizationInput,
  type AuthorizationResult,
  type DeliverySignal,
} from '../../src/domain/authorization';
import type { authorizationWorkflow } from '../../src/workflows/authorization';
import {
  attempt,
  authorizationInput,
  outcomeOf,
  permanent,
  startTestStubWorker,
  uniqueWorkflowId,
  LATE_DELIVERY_GRACE_MS,
  WINDOW_MS,
  type Behaviour,
  type FailureShape,
  type Script,
  type StubWorker,
} from './harness';

interface Observed {
  input: AuthorizationInput;
  script: Script;
  outcome: { result: AuthorizationResult } | { failure: FailureShape; elapsedMs: number };
  finishedAt: number;
  /** what the driver saw while the run was open */
  seen: Record<string, unknown>;
}

type Driver = (run: { script: Script; handle: WorkflowHandle; seen: Record<string, unknown> }) => Promise<void>;

const noWindow: Behaviour = { resolveAuthorizationRoute: () => null };
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const auditedResult = (script: Script, nth = 0) =>
  script.callsOf('auditAuthorization')[nth]!.args[1] as { accessUntil: string };
const accessUntilOf = (script: Script, nth = 0) => auditedResult(script, nth).accessUntil;
const runIds = (script: Script) => [...new Set(script.calls.map((c) => c.runId))];

/**
 * authorizationWorkflow: verify -> route -> (notify) -> settle -> audit, then the access window,
 * its expiry audit, the late-delivery grace and continue-as-new; unrouted / no-data runs wait for
 * an operator's re-drive. Every windowed run holds the workflow's 10 s late-delivery grace in real
 * time (no time-skipping server here), so those runs all start together in beforeAll and their
 * tests assert on them as they finish; the rest run one by one meanwhile.
 */
describe('authorizationWorkflow (stubbed activities)', () => {
  let w: StubWorker;
  const windowed: Record<string, Promise<Observed>> = {};

  function observe(input: AuthorizationInput, behaviour: Behaviour = {}, drive?: Driver): Promise<Observed> {
    const workflowId = uniqueWorkflowId('authorization');
    const script = w.stubs.script(workflowId, behaviour);
    const seen: Record<string, unknown> = {};
    const observed = (async () => {
      const handle = await w.client.workflow.start<typeof authorizationWorkflow>('authorizationWorkflow', {
        taskQueue: w.taskQueue,
        workflowId,
        args: [input],
      });
      const [outcome] = await Promise.all([outcomeOf<AuthorizationResult>(handle), drive?.({ script, handle, seen })]);
      return { input, script, outcome, finishedAt: Date.now(), seen };
    })();
    observed.catch(() => undefined); // awaited (and reported) by its test
    return observed;
  }

  const delivery = (handle: WorkflowHandle, signal: DeliverySignal) => handle.signal(DELIVERY_SIGNAL, signal);

  beforeAll(async () => {
    w = await startTestStubWorker();

    windowed.active = observe(authorizationInput());
    windowed.notify = observe(authorizationInput(), {
      resolveAuthorizationRoute: () => ({ handlers: ['grant-access', 'notify'], accessWindowMs: WINDOW_MS }),
    });
    windowed.routed = observe(authorizationInput(), {
      resolveAuthorizationRoute: () => ({ handlers: ['log-only'], accessWindowMs: WINDOW_MS }),
    });
    windowed.notifyRejected = observe(authorizationInput(), {
      resolveAuthorizationRoute: () => ({ handlers: ['grant-access', 'notify'], accessWindowMs: WINDOW_MS }),
      notifyAuthorization: () => Promise.reject(permanent('NotifyRejected', 'notify target answered 400')),
    });
    windowed.notifyTransient = observe(authorizationInput(), {
      resolveAuthorizationRoute: () => ({ handlers: ['notify', 'grant-access'], accessWindowMs: WINDOW_MS }),
      notifyAuthorization: () => {
        if (attempt() === 1) throw new Error('notify target answered 503');
      },
    });
    windowed.revoked = observe(authorizationInput(), {
      verifyAuthorization: () => ({ revoked: true, hasData: true }),
      resolveAuthorizationRoute: () => ({ handlers: ['grant-access', 'notify'], accessWindowMs: WINDOW_MS }),
    });
    windowed.duplicate = observe(authorizationInput(), {}, async ({ script, handle }) => {
      await script.waitFor('auditAuthorization');
      const accessUntil = Date.parse(accessUntilOf(script));
      await delivery(handle, { receivedAt: new Date(accessUntil - 500).toISOString(), deliveryProof: 'proof-dup' });
    });
    windowed.lateInWindow = observe(authorizationInput(), {}, async ({ script, handle, seen }) => {
      await script.waitFor('auditAuthorization');
      const accessUntil = accessUntilOf(script);
      seen.lateReceivedAt = accessUntil;
      // a consent stamped at the close (the API's clock is not the run's), then an older duplicate
      await delivery(handle, { receivedAt: accessUntil, deliveryProof: 'proof-late' });
      await delivery(handle, { receivedAt: new Date(Date.parse(accessUntil) - 300).toISOString(), deliveryProof: 'x' });
    });
    windowed.lateInGrace = observe(authorizationInput(), {}, async ({ script, handle, seen }) => {
      await script.waitFor('expireAuthorization');
      await sleep(1_500);
      seen.statusInGrace = (await handle.describe()).status.name;
      seen.signalledAt = Date.now();
      const receivedAt = new Date().toISOString();
      seen.lateReceivedAt = receivedAt;
      await delivery(handle, { receivedAt, deliveryProof: 'proof-late' });
    });
    let redrives = 0; // pass 0: no route; pass 1: routed but no data held yet; pass 2: data held
    windowed.redriven = observe(
      authorizationInput({ redriveWindowMs: 30_000 }),
      {
        resolveAuthorizationRoute: () =>
          redrives === 0 ? null : { handlers: ['grant-access'], accessWindowMs: WINDOW_MS },
        verifyAuthorization: () => ({ revoked: false, hasData: redrives >= 2 }),
        countAuthorizationRedrive: () => void (redrives += 1),
      },
      async ({ script, handle }) => {
        for (const pass of [1, 2]) {
          await script.waitFor('auditAuthorization', pass);
          await handle.signal(REDRIVE_SIGNAL);
        }
      },
    );
    windowed.expireForged = observe(authorizationInput(), {
      expireAuthorization: () => Promise.reject(permanent('ForgedInput', 'deliveryProof does not match')),
    });
  });

  afterAll(async () => {
    await Promise.allSettled(Object.values(windowed));
    await w?.close();
  });

  describe('runs without a window', () => {
    it('unrouted: settled and audited as unrouted, waits the re-drive window, then ends', async () => {
      const input = authorizationInput({ redriveWindowMs: 1_000 });
      const { script, outcome, finishedAt } = await observe(input, noWindow);

      expect(script.names()).toEqual([
        'verifyAuthorization',
        'resolveAuthorizationRoute',
        'settleAuthorization',
        'auditAuthorization',
      ]);
      expect(script.callsOf('settleAuthorization')[0]!.args).toEqual([input, 'unrouted', []]);
      expect(script.callsOf('auditAuthorization')[0]!.args).toEqual([
        input,
        { outcome: 'unrouted', handlers: [], failedHandlers: [] },
        0,
      ]);
      expect(finishedAt - script.callsOf('auditAuthorization')[0]!.at).toBeGreaterThanOrEqual(900);
      expect(outcome).toEqual({
        result: { authorizationId: input.authorizationId, outcome: 'unrouted', handlers: [], redriven: 0 },
      });
    });

    it('no data held: no handler runs (not even notify); settled as no-data; a database outage in verify only delays it', async () => {
      const input = authorizationInput();
      const { script, outcome } = await observe(input, {
        verifyAuthorization: () => {
          if (attempt() === 1) throw new Error('database unreachable');
          return { revoked: false, hasData: false };
        },
        resolveAuthorizationRoute: () => ({ handlers: ['grant-access', 'notify'], accessWindowMs: WINDOW_MS }),
      });

      expect(script.callsOf('verifyAuthorization').map((c) => c.attempt)).toEqual([1, 2]);
      expect(script.callsOf('notifyAuthorization')).toEqual([]);
      expect(script.callsOf('settleAuthorization')[0]!.args).toEqual([input, 'no-data', []]);
      expect(script.callsOf('expireAuthorization')).toEqual([]);
      expect(outcome).toEqual({
        result: { authorizationId: input.authorizationId, outcome: 'no-data', handlers: [], redriven: 0 },
      });
    });

    // Characterizes current behaviour (see the report): a revoked consent that is also unrouted or
    // without data is audited as `revoked` and does not wait for a re-drive.
    it('revoked and unrouted: outcome revoked, ends at once without waiting for a re-drive', async () => {
      const input = authorizationInput({ redriveWindowMs: 60_000 });
      const started = Date.now();
      const { script, outcome, finishedAt } = await observe(input, {
        ...noWindow,
        verifyAuthorization: () => ({ revoked: true, hasData: true }),
      });

      expect(script.callsOf('settleAuthorization')[0]!.args).toEqual([input, 'unrouted', []]);
      expect(auditedResult(script)).toMatchObject({ outcome: 'revoked' });
      expect(finishedAt - started).toBeLessThan(30_000);
      expect(outcome).toMatchObject({ result: { outcome: 'revoked', redriven: 0 } });
    });

    it('a forged input at verify fails the run before anything is recorded (ForgedInput, not retried)', async () => {
      const { script, outcome } = await observe(authorizationInput(), {
        verifyAuthorization: () =>
          Promise.reject(
            permanent('ForgedInput', 'authorizationId does not derive from (userId, verifierDid, schemaId)'),
          ),
      });

      expect(script.names()).toEqual(['verifyAuthorization']);
      expect(outcome).toMatchObject({
        failure: {
          name: 'WorkflowFailedError',
          cause: {
            name: 'ActivityFailure',
            activityType: 'verifyAuthorization',
            cause: {
              type: 'ForgedInput',
              nonRetryable: true,
              message: 'authorizationId does not derive from (userId, verifierDid, schemaId)',
            },
          },
        },
      });
    });

    it('a forged input at settle fails the run before the audit', async () => {
      const { script, outcome } = await observe(authorizationInput(), {
        settleAuthorization: () => Promise.reject(permanent('ForgedInput', 'the run is not the one this id names')),
      });

      expect(script.names()).toEqual(['verifyAuthorization', 'resolveAuthorizationRoute', 'settleAuthorization']);
      expect(outcome).toMatchObject({
        failure: { cause: { activityType: 'settleAuthorization', cause: { type: 'ForgedInput' } } },
      });
    });
  });

  describe('runs that open an access window', () => {
    it('grant-access: verify -> route -> settle active -> audit, expiry audited at the close, done after the grace', async () => {
      const { input, script, outcome, finishedAt } = await windowed.active!;
      const accessUntil = accessUntilOf(script);

      expect(script.names()).toEqual([
        'verifyAuthorization',
        'resolveAuthorizationRoute',
        'settleAuthorization',
        'auditAuthorization',
        'expireAuthorization',
      ]);
      expect(script.callsOf('verifyAuthorization')[0]!.args).toEqual([input]);
      expect(script.callsOf('resolveAuthorizationRoute')[0]!.args).toEqual([input.schemaId]);
      expect(script.callsOf('settleAuthorization')[0]!.args).toEqual([input, 'active', ['grant-access']]);
      expect(script.callsOf('auditAuthorization')[0]!.args).toEqual([
        input,
        { outcome: 'active', handlers: ['grant-access'], failedHandlers: [], accessUntil },
        0,
      ]);
      const expire = script.callsOf('expireAuthorization')[0]!;
      expect(expire.args).toEqual([input, accessUntil]);
      expect(expire.at).toBeGreaterThanOrEqual(Date.parse(accessUntil) - 50); // not before the window closed
      // no late consent: the run stays open for the grace, then ends
      expect(finishedAt - expire.at).toBeGreaterThanOrEqual(LATE_DELIVERY_GRACE_MS - 100);
      expect(outcome).toEqual({
        result: {
          authorizationId: input.authorizationId,
          outcome: 'active',
          handlers: ['grant-access'],
          redriven: 0,
          accessUntil,
        },
      });
    });

    it('notify runs between route and settle, and the result lists both handlers', async () => {
      const { input, script, outcome } = await windowed.notify!;

      expect(script.names().slice(0, 4)).toEqual([
        'verifyAuthorization',
        'resolveAuthorizationRoute',
        'notifyAuthorization',
        'settleAuthorization',
      ]);
      expect(script.callsOf('notifyAuthorization').map((c) => c.args)).toEqual([[input]]);
      expect(script.callsOf('settleAuthorization')[0]!.args).toEqual([input, 'active', ['grant-access', 'notify']]);
      expect(auditedResult(script)).toMatchObject({ outcome: 'active', failedHandlers: [] });
      expect(outcome).toMatchObject({ result: { outcome: 'active', handlers: ['grant-access', 'notify'] } });
    });

    it('a route without grant-access settles as routed (still a window, still an expiry)', async () => {
      const { input, script, outcome } = await windowed.routed!;

      expect(script.callsOf('settleAuthorization')[0]!.args).toEqual([input, 'routed', ['log-only']]);
      expect(script.callsOf('notifyAuthorization')).toEqual([]);
      expect(script.callsOf('expireAuthorization')).toHaveLength(1);
      expect(outcome).toMatchObject({ result: { outcome: 'routed', handlers: ['log-only'] } });
    });

    it('notify fails for good: recorded as a failed handler in the audit, access is not held back', async () => {
      const { script, outcome } = await windowed.notifyRejected!;

      expect(script.callsOf('notifyAuthorization').map((c) => c.attempt)).toEqual([1]); // not retried
      expect(script.callsOf('settleAuthorization')[0]!.args[1]).toBe('active');
      expect(auditedResult(script)).toMatchObject({
        outcome: 'active',
        handlers: ['grant-access', 'notify'],
        failedHandlers: ['notify'],
      });
      expect(script.callsOf('expireAuthorization')).toHaveLength(1);
      expect(outcome).toMatchObject({ result: { outcome: 'active', handlers: ['grant-access', 'notify'] } });
    });

    it('notify fails transiently: retried, then no failed handler', async () => {
      const { script, outcome } = await windowed.notifyTransient!;

      expect(script.callsOf('notifyAuthorization').map((c) => c.attempt)).toEqual([1, 2]);
      expect(auditedResult(script)).toMatchObject({ outcome: 'active', failedHandlers: [] });
      expect(outcome).toMatchObject({ result: { outcome: 'active' } });
    });

    it('revoked: the consent is recorded and its window opened, but nobody is notified; outcome revoked', async () => {
      const { input, script, outcome } = await windowed.revoked!;

      expect(script.callsOf('notifyAuthorization')).toEqual([]);
      expect(script.callsOf('settleAuthorization')[0]!.args).toEqual([input, 'active', ['grant-access', 'notify']]);
      expect(auditedResult(script)).toMatchObject({ outcome: 'revoked', failedHandlers: [] });
      expect(script.callsOf('expireAuthorization')).toHaveLength(1);
      expect(outcome).toMatchObject({ result: { outcome: 'revoked', accessUntil: accessUntilOf(script) } });
    });

    it('a duplicate delivery inside the window collapses onto the run: no second pass, no continue-as-new', async () => {
      const { script, outcome } = await windowed.duplicate!;

      expect(runIds(script)).toHaveLength(1);
      expect(script.names()).toEqual([
        'verifyAuthorization',
        'resolveAuthorizationRoute',
        'settleAuthorization',
        'auditAuthorization',
        'expireAuthorization',
      ]);
      expect(outcome).toMatchObject({ result: { outcome: 'active', accessUntil: accessUntilOf(script) } });
    });

    it('a delivery stamped at or after the close continues as new from it at the expiry, without the grace wait', async () => {
      const { input, script, outcome, seen } = await windowed.lateInWindow!;
      const [first, second] = runIds(script);
      const firstExpire = script.callsOf('expireAuthorization')[0]!;
      const next = script.callsOf('verifyAuthorization')[1]!;

      expect(second).toBeDefined();
      expect(first).not.toEqual(second);
      expect(firstExpire.runId).toBe(first);
      expect(next.runId).toBe(second);
      expect(next.at - firstExpire.at).toBeLessThan(LATE_DELIVERY_GRACE_MS / 2);
      // the latest consent opens the next run (not the older duplicate signalled after it), and
      // the first delivery's message is not logged again
      const { firstDelivery: _logged, ...rest } = input;
      expect(next.args).toEqual([{ ...rest, receivedAt: seen.lateReceivedAt, deliveryProof: 'proof-late' }]);
      expect(Object.keys(next.args[0] as object)).not.toContain('firstDelivery');
      expect(script.callsOf('auditAuthorization').map((c) => (c.args[0] as AuthorizationInput).receivedAt)).toEqual([
        input.receivedAt,
        seen.lateReceivedAt,
      ]);
      // the result is the new run's: its own window
      expect(outcome).toMatchObject({
        result: { outcome: 'active', redriven: 0, accessUntil: accessUntilOf(script, 1) },
      });
      expect(accessUntilOf(script, 1)).not.toEqual(accessUntilOf(script, 0));
    });

    it('late-delivery grace: after the expiry the run waits for a delivery on its way, then continues as new', async () => {
      const { input, script, outcome, seen } = await windowed.lateInGrace!;
      const firstExpire = script.callsOf('expireAuthorization')[0]!;
      const next = script.callsOf('verifyAuthorization')[1]!;

      expect(seen.statusInGrace).toBe('RUNNING');
      expect(runIds(script)).toHaveLength(2);
      expect(next.args[0]).toMatchObject({
        authorizationId: input.authorizationId,
        receivedAt: seen.lateReceivedAt,
        deliveryProof: 'proof-late',
      });
      expect(next.at - firstExpire.at).toBeLessThan(LATE_DELIVERY_GRACE_MS);
      expect(next.at).toBeGreaterThanOrEqual(seen.signalledAt as number);
      expect(outcome).toMatchObject({ result: { outcome: 'active', accessUntil: accessUntilOf(script, 1) } });
    });

    it('re-drive: unrouted, then no-data, then active; each pass audited with its number, each re-drive counted', async () => {
      const { input, script, outcome } = await windowed.redriven!;

      expect(runIds(script)).toHaveLength(1);
      expect(script.names()).toEqual([
        ...['verifyAuthorization', 'resolveAuthorizationRoute', 'settleAuthorization', 'auditAuthorization'],
        'countAuthorizationRedrive',
        ...['verifyAuthorization', 'resolveAuthorizationRoute', 'settleAuthorization', 'auditAuthorization'],
        'countAuthorizationRedrive',
        ...['verifyAuthorization', 'resolveAuthorizationRoute', 'settleAuthorization', 'auditAuthorization'],
        'expireAuthorization',
      ]);
      expect(script.callsOf('settleAuthorization').map((c) => c.args.slice(1))).toEqual([
        ['unrouted', []],
        ['no-data', []],
        ['active', ['grant-access']],
      ]);
      expect(
        script.callsOf('auditAuthorization').map((c) => [(c.args[1] as { outcome: string }).outcome, c.args[2]]),
      ).toEqual([
        ['unrouted', 0],
        ['no-data', 1],
        ['active', 2],
      ]);
      expect(script.callsOf('countAuthorizationRedrive').map((c) => c.args)).toEqual([
        [input.authorizationId],
        [input.authorizationId],
      ]);
      expect(outcome).toMatchObject({
        result: { outcome: 'active', redriven: 2, accessUntil: accessUntilOf(script, 2) },
      });
    });

    it('a forged input found at the expiry fails the run (ForgedInput, not retried)', async () => {
      const { script, outcome } = await windowed.expireForged!;

      expect(script.callsOf('expireAuthorization').map((c) => c.attempt)).toEqual([1]);
      expect(outcome).toMatchObject({
        failure: {
          name: 'WorkflowFailedError',
          cause: {
            name: 'ActivityFailure',
            activityType: 'expireAuthorization',
            cause: { name: 'ApplicationFailure', type: 'ForgedInput', nonRetryable: true },
          },
        },
      });
    });
  });
});
