import { parseKeyring } from '../../src/crypto/keyring';
import { retryIssuance, type RetryResult } from '../../src/operations/issuances';
import { recordsRepository } from '../../src/storage/records';
import { stagingRepository } from '../../src/storage/staging';
import { eventually } from '../support/eventually';
import { uniqueId } from '../support/temporal';
import { API_KEY_HEADER, markedPng, waitForIssuance } from './issuance-harness';
import { startSystem, type System } from '../support/system';

jest.setTimeout(180_000);

/** Runs `test` on a system of its own (a fresh emulator: it has not cached our JWKS), then closes it. */
async function withSystem(
  env: NodeJS.ProcessEnv,
  options: { worker?: boolean },
  test: (system: System) => Promise<void>,
): Promise<void> {
  const system = await startSystem({ env, ...options });
  try {
    await test(system);
  } finally {
    await system.close();
  }
}

async function postIssuance(system: System): Promise<string> {
  const res = await fetch(`${system.apiUrl}/v1/issuances`, {
    method: 'POST',
    headers: { ...API_KEY_HEADER, 'content-type': 'application/json', 'idempotency-key': uniqueId('idem') },
    body: JSON.stringify({
      userId: uniqueId('deploy'),
      issuerDid: 'did:air:id:cak-dev-issuer',
      credentialId: 'prog-kyc-basic',
      schemaId: 'kyc-basic',
      credentialSubject: { kycLevel: 1 },
      fields: { fullName: 'deploy test' },
      files: [{ kind: 'id-front', contentType: 'image/png', data: markedPng('DEPLOY', 4 * 1024).toString('base64') }],
    }),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { issuanceId: string }).issuanceId;
}

/** Every staged entry of one issuance: credentialSubject, fields and one file. */
const STAGED_ENTRIES = 3;

type IssuanceRow = {
  _id: string;
  workflowId: string;
  recordId: string;
  status: string;
  error?: { type: string; message: string };
};
const issuanceDoc = async (system: System, issuanceId: string) =>
  (await system.db.collection<IssuanceRow>('issuances').findOne({ _id: issuanceId }))!;
const staged = (system: System, issuanceId: string) =>
  stagingRepository(system.db, system.config.GRIDFS_THRESHOLD_BYTES).count(issuanceId);

/** `cak issuances retry`, as the CLI runs it, once the failed run has closed (it records the failure just before). */
async function operatorRetry(system: System, issuanceId: string): Promise<RetryResult> {
  const run = system.client.workflow.getHandle((await issuanceDoc(system, issuanceId)).workflowId);
  await eventually(
    async () => (await run.describe()).status.name,
    (status) => status !== 'RUNNING',
    { what: 'the failed run to close', timeoutMs: 10_000, intervalMs: 100 },
  );
  return retryIssuance(
    {
      db: system.db,
      temporal: system.client,
      taskQueue: system.config.TEMPORAL_TASK_QUEUE,
      codecKeyring: parseKeyring(system.config.CAK_CODEC_KEYS),
      gridfsThresholdBytes: system.config.GRIDFS_THRESHOLD_BYTES,
    },
    issuanceId,
  );
}

async function expectCompleted(system: System, issuanceId: string): Promise<void> {
  const status = await waitForIssuance(system, issuanceId, ['completed', 'failed'], 120_000);
  expect(status.error).toBeUndefined();
  expect(status).toMatchObject({ status: 'completed', record: { version: 1 } });
  const { recordId } = await issuanceDoc(system, issuanceId);
  expect(await recordsRepository(system.db).countVersions(recordId)).toBe(1);
  expect(await staged(system, issuanceId)).toBe(0);
}

describe('issuance across a deploy', () => {
  it('an issuance whose platform call meets our API (and JWKS) restarting ends completed', () =>
    withSystem({}, { worker: false }, async (system) => {
      const issuanceId = await postIssuance(system);
      const { workflowId } = await issuanceDoc(system, issuanceId);
      await system.stopApi();
      await system.startWorker();

      // The platform has been asked while our JWKS was unreachable: the run ended, or its `issue` is retrying.
      const seen = await eventually(
        async () => {
          const doc = await issuanceDoc(system, issuanceId);
          if (doc.status === 'failed') return 'failed';
          const { raw } = await system.client.workflow.getHandle(workflowId).describe();
          return raw.pendingActivities?.some((a) => a.lastFailure) ? 'retrying' : undefined;
        },
        (answer) => answer !== undefined,
        { what: 'the first platform answer', timeoutMs: 30_000, intervalMs: 100 },
      );
      expect(seen).toBe('retrying');
      expect(system.emulator.controls.issueCalls()).toBe(0); // refused before authentication: the JWKS fetch
      await system.startApi();

      await expectCompleted(system, issuanceId);
    }));

  it('a 401 or 403 from the platform within the horizon is retried, and the issuance completes', () =>
    withSystem({}, {}, async (system) => {
      system.emulator.controls.failNextIssues(1, 401);
      system.emulator.controls.failNextIssues(1, 403);
      const issuanceId = await postIssuance(system);
      await expectCompleted(system, issuanceId);
      expect(system.emulator.controls.issueCalls()).toBe(3);
    }));

  it('a 401 past the horizon fails PlatformAuthRejected, keeps the staging, and an operator retry completes it', () =>
    withSystem({ PLATFORM_RETRY_HORIZON_SECONDS: '2' }, {}, async (system) => {
      system.emulator.controls.failNextIssues(1000, 401);
      const issuanceId = await postIssuance(system);
      const failed = await waitForIssuance(system, issuanceId, ['completed', 'failed'], 60_000);
      expect(failed).toMatchObject({
        status: 'failed',
        error: { type: 'PlatformAuthRejected', message: expect.stringMatching(/^platform answered 401.*retried for/) },
      });
      expect(system.emulator.controls.issueCalls()).toBeGreaterThan(1);
      expect(await staged(system, issuanceId)).toBe(STAGED_ENTRIES);

      system.emulator.controls.clearFaults(); // our keys are fixed
      expect(await operatorRetry(system, issuanceId)).toMatchObject({ outcome: 'started' });
      await expectCompleted(system, issuanceId);
    }));

  it('our API down past the horizon fails PlatformUnavailable (503), keeps the staging, and a retry completes it', () =>
    withSystem({ PLATFORM_RETRY_HORIZON_SECONDS: '2' }, { worker: false }, async (system) => {
      const issuanceId = await postIssuance(system);
      await system.stopApi();
      await system.startWorker();
      const { error } = await eventually(
        () => issuanceDoc(system, issuanceId),
        (doc) => doc.status === 'failed',
        { what: 'the run to fail', timeoutMs: 60_000, intervalMs: 100 },
      );
      expect(error).toEqual({
        type: 'PlatformUnavailable',
        message: expect.stringMatching(/^platform answered 503 \(PARTNER_JWKS_UNAVAILABLE\); retried for/),
      });
      expect(await staged(system, issuanceId)).toBe(STAGED_ENTRIES);

      await system.startApi();
      expect(await operatorRetry(system, issuanceId)).toMatchObject({ outcome: 'started' });
      await expectCompleted(system, issuanceId);
    }));

  it.each([400, 404, 409])('a %d from the platform is permanent at once: staging shredded, retry refused', (code) =>
    withSystem({}, {}, async (system) => {
      system.emulator.controls.failNextIssues(1, code);
      const issuanceId = await postIssuance(system);
      const failed = await waitForIssuance(system, issuanceId, ['completed', 'failed'], 60_000);
      expect(failed).toMatchObject({
        status: 'failed',
        error: { type: 'PlatformRejected', message: `platform answered ${code}` },
      });
      expect(system.emulator.controls.issueCalls()).toBe(1);
      expect(await staged(system, issuanceId)).toBe(0);
      expect(await operatorRetry(system, issuanceId)).toMatchObject({ outcome: 'refused', code: 'PERMANENT_FAILURE' });
    }),
  );
});
