import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { startDatabase, stopService, type Paths } from '../../scripts/lib/local-services';
import { recordsRepository } from '../../src/storage/records';
import { stagingRepository } from '../../src/storage/staging';
import { ensureStagingSweepSchedule } from '../../src/workers/schedules';
import { eventually } from '../support/eventually';
import { uniqueId } from '../support/temporal';
import { API_KEY_HEADER, markedPng, waitForIssuance } from './issuance-harness';
import { startSystem, type System } from '../support/system';

jest.setTimeout(240_000);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function issuanceBody(userId: string) {
  return {
    userId,
    issuerDid: 'did:air:id:cak-dev-issuer',
    credentialId: 'prog-kyc-basic',
    schemaId: 'kyc-basic',
    credentialSubject: { kycLevel: 1 },
    fields: { fullName: 'fault test' },
    files: [
      { kind: 'id-front', contentType: 'image/png', data: markedPng('FAULT-FRONT', 100 * 1024).toString('base64') },
      { kind: 'face-photo', contentType: 'image/png', data: markedPng('FAULT-FACE', 4 * 1024).toString('base64') },
    ],
  };
}

async function postIssuance(system: System, userId: string): Promise<string> {
  const res = await fetch(`${system.apiUrl}/v1/issuances`, {
    method: 'POST',
    headers: { ...API_KEY_HEADER, 'content-type': 'application/json', 'idempotency-key': uniqueId('idem') },
    body: JSON.stringify(issuanceBody(userId)),
  });
  expect(res.status).toBe(202);
  return ((await res.json()) as { issuanceId: string }).issuanceId;
}

async function recordIdOf(system: System, issuanceId: string): Promise<string> {
  const doc = await system.db.collection<{ _id: string; recordId: string }>('issuances').findOne({ _id: issuanceId });
  return doc!.recordId;
}

async function freePort(): Promise<number> {
  return new Promise((resolvePort) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolvePort(port));
    });
  });
}

describe('issuance under faults', () => {
  it('a worker SIGKILLed between encrypt and store, then replaced, ends with exactly one stored version', async () => {
    const system = await startSystem({ worker: false });
    const pauseFile = join(mkdtempSync(join(tmpdir(), 'cak-kill-')), 'paused');
    let child: ChildProcess | undefined;
    try {
      child = spawn(process.execPath, ['-r', '@swc-node/register', 'test/support/worker-process.ts'], {
        env: {
          ...process.env,
          LOG_LEVEL: 'silent',
          TEMPORAL_TASK_QUEUE: system.config.TEMPORAL_TASK_QUEUE,
          MONGODB_DB: system.config.MONGODB_DB,
          AIR_PLATFORM_URL: system.config.AIR_PLATFORM_URL,
          GRIDFS_THRESHOLD_BYTES: String(system.config.GRIDFS_THRESHOLD_BYTES),
          WORKER_HEALTH_PORT: '0',
          CAK_TEST_PAUSE_BEFORE_STORE: pauseFile,
        },
        stdio: ['ignore', 'ignore', 'inherit'],
      });
      let exited = false;
      child.once('exit', () => (exited = true));
      const issuanceId = await postIssuance(system, uniqueId('kill'));
      await eventually(
        () => {
          if (exited) throw new Error('the worker child process exited before pausing (see its stderr above)');
          return existsSync(pauseFile);
        },
        (paused) => paused,
        { what: `the worker child to pause before store (${pauseFile})`, timeoutMs: 120_000, intervalMs: 100 },
      );
      const gone = new Promise((r) => child!.once('exit', r));
      child.kill('SIGKILL');
      await gone;

      // Encrypt finished: its packages are written and pending; no version exists yet.
      const recordId = await recordIdOf(system, issuanceId);
      expect(await system.db.collection('packages').countDocuments({ issuanceId, state: 'pending' })).toBe(3);
      expect(await recordsRepository(system.db).countVersions(recordId)).toBe(0);

      await system.startWorker();
      const status = await waitForIssuance(system, issuanceId);
      expect(status).toMatchObject({ status: 'completed', record: { version: 1 } });
      expect(await recordsRepository(system.db).countVersions(recordId)).toBe(1);
      expect(await system.db.collection('packages').countDocuments({ issuanceId, state: 'committed' })).toBe(3);
      expect(await system.db.collection('staging').countDocuments({})).toBe(0);
    } finally {
      if (child && child.exitCode === null) child.kill('SIGKILL');
      rmSync(resolve(pauseFile, '..'), { recursive: true, force: true });
      await system.close();
    }
  });

  it('a database stopped for 10 s mid-run delays the run but does not fail it', async () => {
    const dataDir = mkdtempSync(join(tmpdir(), 'cak-dbfault-'));
    const paths: Paths = { dataDir, toolsDir: resolve('.tools') };
    const port = await freePort();
    const say = () => undefined;
    const { uri } = await startDatabase(paths, { port, name: 'fault-db' }, say);
    const system = await startSystem({ env: { MONGODB_URI: uri }, worker: false });
    let outage: Promise<void> | undefined;
    try {
      await system.startWorker({
        // First time `store` starts (encrypt is done): stop the database, bring it back 10 s later.
        beforeStore: async () => {
          if (outage) return;
          await stopService(paths, 'fault-db');
          // The 10 s outage is the fault under test (longer than the driver's 5 s server selection), not a wait.
          outage = sleep(10_000).then(async () => {
            await startDatabase(paths, { port, name: 'fault-db' }, say);
          });
        },
      });
      const issuanceId = await postIssuance(system, uniqueId('dbdown'));
      const status = await waitForIssuance(system, issuanceId);
      await outage;
      expect(status).toMatchObject({ status: 'completed', record: { version: 1 } });
      expect(outage).toBeDefined();
      expect(await recordsRepository(system.db).countVersions(await recordIdOf(system, issuanceId))).toBe(1);
    } finally {
      await outage?.catch(() => undefined);
      await system.close();
      await stopService(paths, 'fault-db');
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it('the staging sweep schedule deletes what a dead run left behind', async () => {
    const system = await startSystem({ env: { STAGING_TTL_SECONDS: '1' } });
    const scheduleId = uniqueId('sweep');
    try {
      const staging = stagingRepository(system.db, system.config.GRIDFS_THRESHOLD_BYTES);
      await staging.stage(
        'iss_dead-run',
        [
          { itemId: 'id-front', role: 'item', sealed: Buffer.alloc(100 * 1024, 7) },
          { itemId: 'fields', role: 'item', sealed: Buffer.alloc(100, 7) },
        ],
        1,
      );
      expect(await staging.count('iss_dead-run')).toBe(2);
      await ensureStagingSweepSchedule(system.client, {
        taskQueue: system.config.TEMPORAL_TASK_QUEUE,
        intervalSeconds: 1,
        scheduleId,
      });
      // a schedule belongs to the namespace: the last worker to start points it at its task queue
      expect(
        (await ensureStagingSweepSchedule(system.client, { taskQueue: 'x', intervalSeconds: 1, scheduleId })).created,
      ).toBe(false);
      expect((await system.client.schedule.getHandle(scheduleId).describe()).action).toMatchObject({ taskQueue: 'x' });
      const taskQueue = system.config.TEMPORAL_TASK_QUEUE;
      expect(
        (await ensureStagingSweepSchedule(system.client, { taskQueue, intervalSeconds: 1, scheduleId })).created,
      ).toBe(false);
      expect((await system.client.schedule.getHandle(scheduleId).describe()).action).toMatchObject({ taskQueue });
      await eventually(
        () => staging.count('iss_dead-run'),
        (left) => left === 0,
        { what: "the sweep to delete the dead run's staging", timeoutMs: 60_000, intervalMs: 250 },
      );
      expect(await system.db.collection('stagingBlobs.files').countDocuments({})).toBe(0);
    } finally {
      await system.client.schedule
        .getHandle(scheduleId)
        .delete()
        .catch(() => undefined);
      await system.close();
    }
  });
});
