/**
 * Workflow tests with stubbed activities: a real worker on the local Temporal dev server runs the
 * real workflow code, and every activity is a plain function scripted per workflow id. No database,
 * no platform, no time-skipping (that server would be downloaded): access windows and re-drive
 * windows are made short through the stubs and the workflow input instead.
 *
 * Used by the tests in this folder and by scripts/record-histories.ts.
 */
import { randomUUID } from 'node:crypto';
import { Context } from '@temporalio/activity';
import type { Client, WorkflowHandle } from '@temporalio/client';
import { ApplicationFailure, type DataConverter } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type { Activities } from '../../src/activities';
import type { AuthorizationInput } from '../../src/domain/authorization';
import type { IssuanceInput, PackageRef } from '../../src/domain/issuance';
import { testConfig, workflowBundle } from '../support/temporal';

export type ActivityName = keyof Activities;
type Impl<K extends ActivityName> = (
  ...args: Parameters<Activities[K]>
) => Promise<Awaited<ReturnType<Activities[K]>>> | Awaited<ReturnType<Activities[K]>>;
/** What some activities do for one workflow id; the others fall back to `defaultBehaviour`. */
export type Behaviour = { [K in ActivityName]?: Impl<K> };

/** Every activity the worker registers: a new one in src/activities fails the type check until listed. */
const ACTIVITY_NAMES = {
  obtainCakPublicKey: true,
  encryptItems: true,
  storeRecord: true,
  shredStaging: true,
  abandonIssuance: true,
  sweepStaging: true,
  verifyAuthorization: true,
  resolveAuthorizationRoute: true,
  settleAuthorization: true,
  notifyAuthorization: true,
  auditAuthorization: true,
  expireAuthorization: true,
  sealAuditTrail: true,
  countAuthorizationRedrive: true,
  writeAndReadProbe: true,
} satisfies Record<ActivityName, true>;

/** How long the access window of a routed authorization lasts in these tests. */
export const WINDOW_MS = 1_500;
/** The workflow's LATE_DELIVERY_GRACE (a constant of the workflow code, not an input). */
export const LATE_DELIVERY_GRACE_MS = 10_000;

/** The stubs' defaults: every step succeeds; a routed authorization opens a WINDOW_MS window. */
export const defaultBehaviour: Required<Behaviour> = {
  obtainCakPublicKey: (input) => ({ cakPublicKey: input.cakPublicKey ?? 'platform-issued-key' }),
  encryptItems: (input) =>
    input.items.map((item): PackageRef => ({
      itemId: item.itemId,
      kind: item.kind,
      contentType: item.contentType,
      packageId: `${input.issuanceId}:${item.itemId}`,
      size: item.size + 97,
      sha256: 'ab'.repeat(32),
      curve: input.curve,
      keyId: 'managed-1',
      storage: 'inline',
    })),
  storeRecord: (input) => ({ recordId: input.identity.recordId, version: 1, issuanceId: input.issuanceId }),
  shredStaging: () => undefined,
  abandonIssuance: () => undefined,
  sweepStaging: () => ({ staging: 2, packages: 1 }),
  verifyAuthorization: () => ({ revoked: false, hasData: true }),
  resolveAuthorizationRoute: () => ({ handlers: ['grant-access'], accessWindowMs: WINDOW_MS }),
  settleAuthorization: (_input, state) =>
    state === 'active' || state === 'routed'
      ? { accessUntil: new Date(Date.now() + WINDOW_MS).toISOString(), opened: true }
      : { opened: false },
  notifyAuthorization: () => undefined,
  auditAuthorization: (input, _result, redrive) => ({ eventId: `audit:${input.authorizationId}:${redrive}` }),
  expireAuthorization: (input, accessUntil) => ({ eventId: `expired:${input.authorizationId}:${accessUntil}` }),
  sealAuditTrail: () => ({ sealed: 3 }),
  countAuthorizationRedrive: () => undefined,
  writeAndReadProbe: (probeId) => probeId,
};

export interface ActivityCall {
  activity: ActivityName;
  args: unknown[];
  attempt: number;
  runId: string;
  /** wall-clock ms when the attempt started */
  at: number;
}

/** The calls one workflow id made (across its continued-as-new runs) and what its stubs do. */
export class Script {
  readonly calls: ActivityCall[] = [];
  private readonly waiters: { activity: ActivityName; nth: number; resolve: (call: ActivityCall) => void }[] = [];

  constructor(
    readonly workflowId: string,
    readonly behaviour: Behaviour,
  ) {}

  record(call: ActivityCall): void {
    this.calls.push(call);
    for (const waiter of [...this.waiters]) {
      if (this.callsOf(waiter.activity).length >= waiter.nth) {
        this.waiters.splice(this.waiters.indexOf(waiter), 1);
        waiter.resolve(call);
      }
    }
  }

  /** Activity names in call order, one per attempt. */
  names(): ActivityName[] {
    return this.calls.map((c) => c.activity);
  }

  callsOf(activity: ActivityName): ActivityCall[] {
    return this.calls.filter((c) => c.activity === activity);
  }

  /** Resolves when `activity` has been called `nth` times (attempts included). */
  waitFor(activity: ActivityName, nth = 1): Promise<ActivityCall> {
    const done = this.callsOf(activity)[nth - 1];
    if (done) return Promise.resolve(done);
    return new Promise((resolve) => this.waiters.push({ activity, nth, resolve }));
  }
}

/** One set of stub activities for a worker; each workflow id gets its own Script. */
export class ActivityStubs {
  private readonly scripts = new Map<string, Script>();

  script(workflowId: string, behaviour: Behaviour = {}): Script {
    const script = new Script(workflowId, behaviour);
    this.scripts.set(workflowId, script);
    return script;
  }

  /** The worker's `activities`: each dispatches to the script of the calling workflow id. */
  activities(): Record<ActivityName, (...args: unknown[]) => Promise<unknown>> {
    const entries = Object.keys(ACTIVITY_NAMES).map((name) => {
      const activity = name as ActivityName;
      const run = async (...args: unknown[]): Promise<unknown> => {
        const { workflowExecution, attempt } = Context.current().info;
        const script = this.scripts.get(workflowExecution?.workflowId ?? '');
        if (!workflowExecution || !script)
          throw permanent('NoScript', `no script for ${workflowExecution?.workflowId}`);
        script.record({ activity, args, attempt, runId: workflowExecution.runId, at: Date.now() });
        const impl = (script.behaviour[activity] ?? defaultBehaviour[activity]) as (...a: unknown[]) => unknown;
        return await impl(...args);
      };
      return [activity, run] as const;
    });
    return Object.fromEntries(entries) as Record<ActivityName, (...args: unknown[]) => Promise<unknown>>;
  }
}

/** A failure the activity marks non-retryable, as src/activities does for permanent ones. */
export function permanent(type: string, message = `${type} (stub)`): ApplicationFailure {
  return ApplicationFailure.create({ type, message, nonRetryable: true });
}

/** The current attempt of the running activity (1 for the first). */
export function attempt(): number {
  return Context.current().info.attempt;
}

export const FAILURE_CONVERTER_PATH = require.resolve('../../src/crypto/failure-converter');

/** As the worker's, less the payload codec: plain JSON payloads, failure messages encoded (as in production). */
export const testDataConverter: DataConverter = { failureConverterPath: FAILURE_CONVERTER_PATH };

export interface StubWorker {
  env: TestWorkflowEnvironment;
  client: Client;
  taskQueue: string;
  stubs: ActivityStubs;
  close(): Promise<void>;
}

/**
 * Connects to the running dev server (`npm run services:up`) and runs a worker on a fresh task
 * queue with the stubbed activities. Tests pass the bundle global-setup built; the recording script
 * lets the worker bundle src/workflows itself.
 */
/** A stub worker on the test services' Temporal, running the bundle global-setup built. */
export function startTestStubWorker(): Promise<StubWorker> {
  const config = testConfig();
  return startStubWorker({
    address: config.TEMPORAL_ADDRESS,
    namespace: config.TEMPORAL_NAMESPACE,
    code: { workflowBundle: workflowBundle() },
  });
}

export async function startStubWorker(options: {
  address: string;
  namespace: string;
  code: { workflowBundle: { code: string } } | { workflowsPath: string };
  /** client and worker identity (recorded in history; the default names the host and pid) */
  identity?: string;
  taskQueuePrefix?: string;
}): Promise<StubWorker> {
  const identity = options.identity !== undefined ? { identity: options.identity } : {};
  const env = await TestWorkflowEnvironment.createFromExistingServer({
    address: options.address,
    namespace: options.namespace,
    client: { dataConverter: testDataConverter, ...identity },
  });
  const stubs = new ActivityStubs();
  const taskQueue = `${options.taskQueuePrefix ?? 'workflow-tests'}-${randomUUID()}`;
  try {
    const worker = await Worker.create({
      connection: env.nativeConnection,
      namespace: options.namespace,
      taskQueue,
      ...options.code,
      activities: stubs.activities(),
      dataConverter: testDataConverter,
      shutdownForceTime: '3s',
      ...identity,
    });
    const running = worker.run();
    return {
      env,
      client: env.client,
      taskQueue,
      stubs,
      async close() {
        worker.shutdown();
        await running;
        await env.teardown();
      },
    };
  } catch (err) {
    await env.teardown();
    throw err;
  }
}

export function issuanceInput(overrides: Partial<IssuanceInput> = {}): IssuanceInput {
  const issuanceId = overrides.issuanceId ?? `iss-${randomUUID()}`;
  return {
    issuanceId,
    recordId: `rec-${issuanceId}`,
    userId: 'user-1',
    issuerDid: 'did:air:issuer-1',
    schemaId: 'kyc-basic',
    credentialId: 'cred-1',
    curve: 'secp256r1',
    items: [
      { itemId: 'fields', kind: 'fields', contentType: 'application/json', size: 120 },
      { itemId: 'item-2', kind: 'id-front', contentType: 'image/png', size: 2048 },
    ],
    ...overrides,
  };
}

export function authorizationInput(overrides: Partial<AuthorizationInput> = {}): AuthorizationInput {
  return {
    authorizationId: `auth-${randomUUID()}`,
    userId: 'user-1',
    verifierDid: 'did:air:verifier-1',
    schemaId: 'kyc-basic',
    receivedAt: new Date().toISOString(),
    deliveryProof: 'proof-first',
    redriveWindowMs: 400,
    firstDelivery: { messageId: 'msg-1' },
    ...overrides,
  };
}

/** A workflow's failure as plain data (WorkflowFailedError -> cause chain), or its result. */
export async function outcomeOf<T>(
  handle: WorkflowHandle,
): Promise<{ result: T } | { failure: FailureShape; elapsedMs: number }> {
  const started = Date.now();
  try {
    return { result: (await handle.result()) as T };
  } catch (err) {
    return { failure: shape(err), elapsedMs: Date.now() - started };
  }
}

export interface FailureShape {
  name: string;
  message: string;
  type?: string;
  nonRetryable?: boolean;
  activityType?: string;
  cause?: FailureShape;
}

function shape(err: unknown): FailureShape {
  if (!(err instanceof Error)) return { name: typeof err, message: String(err) };
  const e = err as Error & { type?: unknown; nonRetryable?: unknown; activityType?: unknown };
  return {
    name: e.name,
    message: e.message,
    ...(typeof e.type === 'string' ? { type: e.type } : {}),
    ...(typeof e.nonRetryable === 'boolean' ? { nonRetryable: e.nonRetryable } : {}),
    ...(typeof e.activityType === 'string' ? { activityType: e.activityType } : {}),
    ...(e.cause !== undefined ? { cause: shape(e.cause) } : {}),
  };
}

export function uniqueWorkflowId(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}
