/**
 * `npm run histories:record [-- --tag <name>] [-- --overwrite]`: runs each workflow's
 * representative paths on the local Temporal dev server, with the real workflow code (bundled from
 * src/workflows) and stubbed activities (test/workflows/harness.ts: no database), and writes the
 * history of each run to test/histories/<workflow>-<path>.json, the JSON that `temporal workflow
 * show --output json` writes and `Worker.runReplayHistories` reads. test/workflows/replay.test.ts
 * replays every file there against the current workflow code.
 *
 * Committed histories are the record of what runs of older code look like: never overwrite them
 * after changing a workflow. Without --overwrite an existing file is kept; with `--tag v2` the new
 * code's runs are written next to the old ones as <workflow>-<path>.v2.json (docs/operations.md,
 * "Changing a workflow safely").
 */
import { writeFileSync, existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import type { WorkflowHandle } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { format, resolveConfig } from 'prettier';
import { loadConfig } from '../src/config';
import '../test/workflows/quiet-runtime';
import { DELIVERY_SIGNAL, REDRIVE_SIGNAL } from '../src/domain/authorization';
import {
  attempt,
  authorizationInput,
  issuanceInput,
  permanent,
  startStubWorker,
  WINDOW_MS,
  type ActivityName,
  type Behaviour,
  type Script,
} from '../test/workflows/harness';
import { historyToJSON } from '../test/workflows/history-json';

export const HISTORIES_DIR = resolve(__dirname, '../test/histories');

type Ending = 'COMPLETED' | 'FAILED' | 'CANCELED' | 'CONTINUED_AS_NEW';

interface Recording {
  /** file name: <workflow>-<path> */
  name: string;
  workflowType: string;
  args: unknown[];
  behaviour?: Behaviour;
  /** signals or cancels the run while it is open */
  drive?: (run: { script: Script; handle: WorkflowHandle }) => Promise<void>;
  /** how the recorded (first) run must end, and the activities it must schedule, in order */
  ends: Ending;
  activities: ActivityName[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const notifyRoute: Behaviour['resolveAuthorizationRoute'] = () => ({
  handlers: ['grant-access', 'notify'],
  accessWindowMs: WINDOW_MS,
});
const ISSUED = ['obtainCakPublicKey', 'encryptItems', 'storeRecord', 'shredStaging'] satisfies ActivityName[];
/** One pass of an authorization: verify -> route -> settle -> audit (notify before settle when it runs). */
const PASS = [
  'verifyAuthorization',
  'resolveAuthorizationRoute',
  'settleAuthorization',
  'auditAuthorization',
] satisfies ActivityName[];
const NOTIFIED_PASS = [
  'verifyAuthorization',
  'resolveAuthorizationRoute',
  'notifyAuthorization',
  'settleAuthorization',
  'auditAuthorization',
] satisfies ActivityName[];

function recordings(): Recording[] {
  let redrives = 0;
  return [
    {
      name: 'issuance-completed',
      workflowType: 'issuanceWorkflow',
      args: [issuanceInput()],
      ends: 'COMPLETED',
      activities: ISSUED,
    },
    {
      name: 'issuance-issue-failed',
      workflowType: 'issuanceWorkflow',
      args: [issuanceInput()],
      behaviour: { obtainCakPublicKey: () => Promise.reject(permanent('PlatformRejected', 'platform answered 422')) },
      ends: 'FAILED',
      activities: ['obtainCakPublicKey', 'abandonIssuance'],
    },
    {
      name: 'issuance-store-failed',
      workflowType: 'issuanceWorkflow',
      args: [issuanceInput({ cakPublicKey: 'client-key' })],
      behaviour: { storeRecord: () => Promise.reject(permanent('RecordOwnedElsewhere', 'another API client')) },
      ends: 'FAILED',
      activities: ['obtainCakPublicKey', 'encryptItems', 'storeRecord', 'abandonIssuance'],
    },
    {
      name: 'issuance-cancelled',
      workflowType: 'issuanceWorkflow',
      args: [issuanceInput()],
      behaviour: { encryptItems: () => sleep(2_000).then(() => []) },
      drive: async ({ script, handle }) => {
        await script.waitFor('encryptItems');
        await handle.cancel();
      },
      ends: 'CANCELED',
      // since patched('abandon-when-cancelled'); issuance-cancelled.json is from before it
      activities: ['obtainCakPublicKey', 'encryptItems', 'abandonIssuance'],
    },
    {
      name: 'authorization-active',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput()],
      behaviour: { resolveAuthorizationRoute: notifyRoute },
      ends: 'COMPLETED',
      activities: [...NOTIFIED_PASS, 'expireAuthorization'],
    },
    {
      name: 'authorization-notify-failed',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput()],
      behaviour: {
        resolveAuthorizationRoute: notifyRoute,
        notifyAuthorization: () => Promise.reject(permanent('NotifyRejected', 'notify target answered 400')),
      },
      ends: 'COMPLETED',
      activities: [...NOTIFIED_PASS, 'expireAuthorization'],
    },
    {
      name: 'authorization-revoked',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput()],
      behaviour: {
        resolveAuthorizationRoute: notifyRoute,
        verifyAuthorization: () => ({ revoked: true, hasData: true }),
      },
      ends: 'COMPLETED',
      activities: [...PASS, 'expireAuthorization'],
    },
    {
      name: 'authorization-duplicate-delivery',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput()],
      drive: async ({ script, handle }) => {
        await script.waitFor('auditAuthorization');
        await handle.signal(DELIVERY_SIGNAL, { receivedAt: new Date().toISOString(), deliveryProof: 'proof-dup' });
      },
      ends: 'COMPLETED',
      activities: [...PASS, 'expireAuthorization'],
    },
    {
      name: 'authorization-late-in-window',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput()],
      drive: async ({ script, handle }) => {
        const audit = await script.waitFor('auditAuthorization');
        const { accessUntil } = audit.args[1] as { accessUntil: string };
        await handle.signal(DELIVERY_SIGNAL, { receivedAt: accessUntil, deliveryProof: 'proof-late' });
      },
      ends: 'CONTINUED_AS_NEW',
      activities: [...PASS, 'expireAuthorization'],
    },
    {
      name: 'authorization-late-delivery',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput()],
      drive: async ({ script, handle }) => {
        await script.waitFor('expireAuthorization');
        await sleep(1_500); // inside the late-delivery grace
        await handle.signal(DELIVERY_SIGNAL, { receivedAt: new Date().toISOString(), deliveryProof: 'proof-late' });
      },
      ends: 'CONTINUED_AS_NEW',
      activities: [...PASS, 'expireAuthorization'],
    },
    {
      name: 'authorization-redriven',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput({ redriveWindowMs: 60_000 })],
      behaviour: {
        resolveAuthorizationRoute: () =>
          redrives === 0 ? null : { handlers: ['grant-access'], accessWindowMs: WINDOW_MS },
        verifyAuthorization: () => ({ revoked: false, hasData: redrives >= 2 }),
        countAuthorizationRedrive: () => void (redrives += 1),
      },
      drive: async ({ script, handle }) => {
        for (const pass of [1, 2]) {
          await script.waitFor('auditAuthorization', pass);
          await handle.signal(REDRIVE_SIGNAL);
        }
      },
      ends: 'COMPLETED',
      activities: [
        ...PASS,
        'countAuthorizationRedrive',
        ...PASS,
        'countAuthorizationRedrive',
        ...PASS,
        'expireAuthorization',
      ],
    },
    {
      name: 'authorization-unrouted',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput({ redriveWindowMs: 500 })],
      behaviour: {
        resolveAuthorizationRoute: () => null,
        // a database outage in verify: retried (only the last attempt is in the history)
        verifyAuthorization: () => {
          if (attempt() === 1) throw new Error('database unreachable');
          return { revoked: false, hasData: true };
        },
      },
      ends: 'COMPLETED',
      activities: PASS,
    },
    {
      name: 'authorization-forged',
      workflowType: 'authorizationWorkflow',
      args: [authorizationInput()],
      behaviour: {
        verifyAuthorization: () => Promise.reject(permanent('ForgedInput', 'deliveryProof does not match')),
      },
      ends: 'FAILED',
      activities: ['verifyAuthorization'],
    },
    {
      name: 'audit-seal-completed',
      workflowType: 'auditSealWorkflow',
      args: [{ forMs: 60_000, pollMs: 500 }],
      ends: 'COMPLETED',
      activities: ['sealAuditTrail'],
    },
    {
      name: 'staging-sweep-completed',
      workflowType: 'stagingSweepWorkflow',
      args: [],
      ends: 'COMPLETED',
      activities: ['sweepStaging'],
    },
    {
      name: 'connectivity-check-completed',
      workflowType: 'connectivityCheckWorkflow',
      args: ['probe-1'],
      ends: 'COMPLETED',
      activities: ['writeAndReadProbe'],
    },
  ];
}

function parseArgs(argv: string[]): { tag?: string; overwrite: boolean } {
  const tagAt = argv.indexOf('--tag');
  const tag = tagAt >= 0 ? argv[tagAt + 1] : undefined;
  if (tagAt >= 0 && (tag === undefined || !/^[a-z0-9][a-z0-9-]*$/.test(tag))) {
    throw new Error('--tag needs a name of lowercase letters, digits and dashes (e.g. --tag v2)');
  }
  return { ...(tag !== undefined ? { tag } : {}), overwrite: argv.includes('--overwrite') };
}

/** What a history shows: how the run ended, and the activities it scheduled in order. */
export function summarize(history: temporal.api.history.v1.IHistory): { ends: string; activities: string[] } {
  const events = history.events ?? [];
  const last = events[events.length - 1]?.eventType ?? 0;
  return {
    ends: (temporal.api.enums.v1.EventType[last] ?? String(last)).replace(/^EVENT_TYPE_WORKFLOW_EXECUTION_/, ''),
    activities: events.flatMap((e) => e.activityTaskScheduledEventAttributes?.activityType?.name ?? []),
  };
}

async function main(): Promise<void> {
  const { tag, overwrite } = parseArgs(process.argv.slice(2));
  const fileOf = (name: string) => resolve(HISTORIES_DIR, `${name}${tag !== undefined ? `.${tag}` : ''}.json`);
  const todo = recordings().filter((r) => overwrite || !existsSync(fileOf(r.name)));
  for (const r of recordings()) {
    if (!todo.some((t) => t.name === r.name)) console.log(`kept      ${fileOf(r.name)} (exists; see --tag)`);
  }
  if (todo.length === 0) return;

  const config = loadConfig();
  const w = await startStubWorker({
    address: config.TEMPORAL_ADDRESS,
    namespace: config.TEMPORAL_NAMESPACE,
    code: { workflowsPath: require.resolve('../src/workflows') },
    identity: 'record-histories',
    taskQueuePrefix: 'record-histories',
  });
  const prettier = await resolveConfig(fileOf(todo[0]!.name));
  let failed = 0;
  try {
    // all at once: the authorization paths each hold the workflow's 10 s late-delivery grace
    await Promise.all(
      todo.map(async (r) => {
        const workflowId = `${r.name}-${Date.now()}`;
        const script = w.stubs.script(workflowId, r.behaviour ?? {});
        const handle = await w.client.workflow.start(r.workflowType, {
          taskQueue: w.taskQueue,
          workflowId,
          args: r.args,
        });
        await Promise.all([handle.result().catch(() => undefined), r.drive?.({ script, handle })]);
        const history = await w.client.workflow.getHandle(workflowId, handle.firstExecutionRunId).fetchHistory();
        const seen = summarize(history);
        const expected = { ends: r.ends, activities: r.activities };
        if (JSON.stringify(seen) !== JSON.stringify(expected)) {
          failed += 1;
          console.error(
            `NOT WRITTEN ${r.name}: expected ${JSON.stringify(expected)}, the run gave ${JSON.stringify(seen)}`,
          );
          return;
        }
        mkdirSync(HISTORIES_DIR, { recursive: true });
        const text = await format(historyToJSON(history), { ...prettier, parser: 'json' });
        writeFileSync(fileOf(r.name), text);
        console.log(`recorded  ${fileOf(r.name)} (${seen.ends}, ${history.events?.length ?? 0} events)`);
      }),
    );
  } finally {
    await w.close();
  }
  if (failed > 0) throw new Error(`${failed} path(s) did not run as expected; nothing written for them`);
}

if (require.main === module) {
  // exits explicitly: the installed Temporal runtime keeps the event loop alive
  main().then(
    () => process.exit(0),
    (err: unknown) => {
      console.error(err);
      process.exit(1);
    },
  );
}
