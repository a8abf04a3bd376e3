import { connectClient, testAuditKeys } from '../support/temporal';
import { auditSealWorkflow } from '../../src/workflows/audit';
import { ScheduleOverlapPolicy } from '@temporalio/client';
import { ensureAuditSealSchedule } from '../../src/workers/schedules';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { DEV_ADMIN_TOKEN, type Config } from '../../src/config';
import type { CallbackPayload } from '../../src/domain/authorization';
import { auditRepository, type AuditEvent } from '../../src/storage/audit';
import { eventually, inParallel, postCallback, seedRecord, ACKED } from './callbacks-harness';
import { callbackConfig, startSystem, type System } from '../support/system';

jest.setTimeout(120_000);

function cakAuditVerify(config: Config): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, ['-r', '@swc-node/register', 'src/cli/cak.ts', 'audit', 'verify'], {
    env: { ...process.env, MONGODB_URI: config.MONGODB_URI, MONGODB_DB: config.MONGODB_DB, LOG_LEVEL: 'silent' },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('the keyed, sealed audit trail', () => {
  let config: Config;
  let stack: System;

  beforeAll(async () => {
    config = await callbackConfig();
    stack = await startSystem({ config, emulator: false, sealLoop: true });
  });

  afterAll(async () => {
    await stack?.close();
  });

  it('concurrent appenders and sealers never fork the chain, and a key is sealed once', async () => {
    const audit = auditRepository(stack.db, testAuditKeys());
    const keys = Array.from({ length: 60 }, (_, i) => `test:${randomUUID()}:${i}`);
    // every key three times, 30 appenders at once, while three extra sealers race the sequencer
    let appending = true;
    const sealers = [0, 1, 2].map(async () => {
      // racing sealers, each yielding 5 ms when it found nothing: the contention under test, not a wait
      while (appending) if ((await audit.seal(7)) === 0) await new Promise((r) => setTimeout(r, 5));
    });
    await inParallel(
      30,
      [...keys, ...keys, ...keys].map((key) => () => audit.append(key, 'authorization.redriven', { key })),
    );
    appending = false;
    await Promise.all(sealers);
    await eventually(
      () => audit.pending.countDocuments({}),
      (n) => n === 0,
    );
    const sealed = await audit.events.find({ _id: { $in: keys } }).toArray();
    expect(sealed).toHaveLength(60);
    expect(new Set(sealed.map((e) => e.seq)).size).toBe(60);
    expect(await audit.verifyChain()).toMatchObject({ ok: true, unsealed: 0 });
  });

  it('counts an event once while the sequencer holds it in the chain and in pending at once', async () => {
    const audit = auditRepository(stack.db, testAuditKeys());
    const type = 'authorization.redriven';
    const before = await audit.count({ type });
    const key = `test:${randomUUID()}`;
    await audit.append(key, type, { key });
    await audit.sealAll();
    // the sequencer's state between inserting an event into the chain and deleting its pending copy
    const sealed = (await audit.events.findOne({ _id: key }))!;
    await audit.pending.insertOne({ _id: key, type, at: sealed.at, data: sealed.data });
    expect(await audit.count({ type })).toBe(before + 1);
  });

  it('the sequencer workflow (as the audit-seal schedule starts it) seals what was appended, then ends', async () => {
    const audit = auditRepository(stack.db, testAuditKeys());
    await stack.stopSealLoop(); // the workflow is the only sealer now (the next test restarts the loop)
    const key = `test:${randomUUID()}:sealed-by-workflow`;
    await audit.append(key, 'authorization.redriven', { key });
    expect(await audit.get(key)).not.toHaveProperty('seq');
    const client = await connectClient(config);
    try {
      const result = await client.workflow.execute(auditSealWorkflow, {
        workflowId: `audit-seal-${randomUUID()}`,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [{ forMs: 1_000, pollMs: 50 }],
      });
      expect(result.sealed).toBe(1);
    } finally {
      await client.connection.close();
    }
    expect(await audit.get(key)).toMatchObject({ _id: key, seq: expect.any(Number) });
    await stack.restartWorker(); // and with it the seal loop
  });

  it('the audit-seal schedule (as the worker creates it) starts its first run at once, one at a time, created once', async () => {
    const client = await connectClient(config);
    const scheduleId = `test-audit-seal-${randomUUID()}`;
    // a task queue no worker polls: the run's sealing itself is the workflow test above
    const options = { taskQueue: `${config.TEMPORAL_TASK_QUEUE}-idle`, pollMs: 50, scheduleId };
    const schedule = client.schedule.getHandle(scheduleId);
    try {
      expect(await ensureAuditSealSchedule(client, options)).toEqual({ created: true, scheduleId });
      expect(await ensureAuditSealSchedule(client, options)).toEqual({ created: false, scheduleId });
      const described = await eventually(
        () => schedule.describe(),
        (d) => d.info.runningActions.length === 1,
      );
      expect(described.action).toMatchObject({ type: 'startWorkflow', workflowType: 'auditSealWorkflow' });
      expect(described.policies.overlap).toBe(ScheduleOverlapPolicy.SKIP);
      // A worker of another task queue takes the schedule over: the run stuck on the idle queue is
      // ended (it would block the next one, overlap SKIP, until its 5-minute timeout).
      const stuck = described.info.runningActions[0]!.workflow;
      const moved = { ...options, taskQueue: `${config.TEMPORAL_TASK_QUEUE}-moved` };
      expect(await ensureAuditSealSchedule(client, moved)).toEqual({ created: false, scheduleId });
      expect(
        (await client.workflow.getHandle(stuck.workflowId, stuck.firstExecutionRunId).describe()).status.name,
      ).toBe('TERMINATED');
      expect((await schedule.describe()).action).toMatchObject({ taskQueue: moved.taskQueue });
    } finally {
      const running = (await schedule.describe()).info.runningActions;
      await schedule.delete();
      for (const { workflow } of running) await client.workflow.getHandle(workflow.workflowId).terminate('test done');
      await client.connection.close();
    }
  });

  it('`cak audit verify` passes on the real trail and names the broken event after one is edited', async () => {
    const run = randomUUID().slice(0, 8);
    const keys: CallbackPayload[] = [0, 1, 2, 3, 4].map((i) => ({
      userId: `user-${run}-${i}`,
      verifierDid: `did:air:verifier-${run}`,
      schemaId: 'kyc-basic',
    }));
    for (const key of keys) await seedRecord(stack.db, key);
    for (const key of keys) expect(ACKED).toContain((await postCallback(stack.api.url, key)).status);
    await eventually(
      () => stack.db.collection('audit_events').countDocuments({ type: 'authorization' }),
      (n) => n === 5,
    );
    const sealedAll = () => stack.db.collection('audit_pending').countDocuments({});
    const revoke = await fetch(`${stack.api.url}/v1/admin/authorizations/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(keys[0]),
    });
    expect(revoke.status).toBe(200);
    await eventually(sealedAll, (n) => n === 0);

    const intact = cakAuditVerify(config);
    expect(intact.stderr).toBe('');
    expect(intact.status).toBe(0);
    const total = await stack.db.collection('audit_events').countDocuments({});
    expect(intact.stdout).toContain(`audit chain intact: ${total} events`);

    const events = stack.db.collection<AuditEvent>('audit_events');
    const victim = (await events.findOne({ type: 'authorization', 'data.userId': keys[2]!.userId }))!;
    await events.replaceOne({ _id: victim._id }, { ...victim, data: { ...victim.data, outcome: 'no-data' } });

    const broken = cakAuditVerify(config);
    expect(broken.status).toBe(3);
    expect(broken.stdout).toContain(`BROKEN at seq ${victim.seq} (event ${victim._id})`);
    expect(broken.stdout).toContain('content does not match its keyed hash');
  });
});
