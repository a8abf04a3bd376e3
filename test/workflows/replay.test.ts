import './quiet-runtime';
import { readdirSync, readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { Worker } from '@temporalio/worker';
import { testDataConverter } from './harness';
import { historyFromJSON, type History } from './history-json';

const HISTORIES_DIR = resolve(__dirname, '../histories');

interface Recorded {
  file: string;
  workflowType: string;
  json: { events: Record<string, unknown>[] };
}

const recorded: Recorded[] = readdirSync(HISTORIES_DIR)
  .filter((f) => f.endsWith('.json'))
  .sort()
  .map((file) => {
    const json = JSON.parse(readFileSync(join(HISTORIES_DIR, file), 'utf8')) as Recorded['json'];
    const started = json.events[0]?.workflowExecutionStartedEventAttributes as
      { workflowType?: { name?: string } } | undefined;
    return { file, workflowType: started?.workflowType?.name ?? '(none)', json };
  });

/** The issuance history with its first activity renamed: what a reordered workflow would meet. */
function tampered(): History {
  const json = structuredClone(recorded.find((r) => r.file === 'issuance-completed.json')!.json);
  const scheduled = json.events.find((e) => e.activityTaskScheduledEventAttributes !== undefined)!;
  const attributes = scheduled.activityTaskScheduledEventAttributes as { activityType: { name: string } };
  expect(attributes.activityType.name).toBe('obtainCakPublicKey');
  attributes.activityType.name = 'encryptItems';
  return historyFromJSON(json);
}

/**
 * Replays the committed histories (test/histories, written by `npm run histories:record` from runs
 * of older workflow code) against the current workflow code: a change that would break a run still
 * open in production, i.e. one that is not versioned with patched(), fails here. See
 * docs/operations.md, "Changing a workflow safely".
 */
describe('replay of the committed workflow histories', () => {
  it('covers the issuance, authorization and audit-seal workflows, each with several paths', () => {
    const count = (type: string) => recorded.filter((r) => r.workflowType === type).length;
    expect(count('issuanceWorkflow')).toBeGreaterThanOrEqual(3);
    expect(count('authorizationWorkflow')).toBeGreaterThanOrEqual(5);
    expect(count('auditSealWorkflow')).toBeGreaterThanOrEqual(1);
    // a continue-as-new path is among them
    expect(
      recorded.some((r) => r.json.events.at(-1)?.eventType === 'EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW'),
    ).toBe(true);
  });

  it('every history replays without nondeterminism, and a tampered one is caught', async () => {
    const histories = [
      ...recorded.map((r) => ({ workflowId: r.file, history: historyFromJSON(r.json) })),
      { workflowId: 'tampered:issuance-completed.json', history: tampered() },
    ];
    const results: { workflowId: string; error?: string }[] = [];
    for await (const result of Worker.runReplayHistories(
      { workflowsPath: require.resolve('../../src/workflows'), dataConverter: testDataConverter },
      histories,
    )) {
      results.push({
        workflowId: result.workflowId,
        ...(result.error ? { error: `${result.error.name}: ${result.error.message}` } : {}),
      });
    }

    expect(results.filter((r) => r.workflowId.startsWith('tampered:'))).toEqual([
      { workflowId: 'tampered:issuance-completed.json', error: expect.stringMatching(/^DeterminismViolationError/) },
    ]);
    expect(results.filter((r) => !r.workflowId.startsWith('tampered:'))).toEqual(
      recorded.map((r) => ({ workflowId: r.file })),
    );
  });
});
