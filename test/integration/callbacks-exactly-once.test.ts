import { testAuditKeys } from '../support/temporal';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Config } from '../../src/config';
import type { CallbackPayload } from '../../src/domain/authorization';
import { auditRepository } from '../../src/storage/audit';
import { connectClient, countRuns, eventually, inParallel, postCallback, seedRecord } from './callbacks-harness';
import { callbackConfig, startSystem, type System } from '../support/system';

jest.setTimeout(240_000);

describe('authorization callbacks: exactly once', () => {
  let config: Config;
  let client: Client;
  let stack: System;

  beforeAll(async () => {
    config = await callbackConfig();
    stack = await startSystem({ config, emulator: false, sealLoop: true });
    client = await connectClient(config);
  });

  afterAll(async () => {
    await stack?.close();
    await client?.connection.close();
  });

  it('1,000 deliveries over 100 keys, 50 in flight, with worker restarts: 100 runs, records and audit events, all 2XX', async () => {
    const run = randomUUID().slice(0, 8);
    const keys: CallbackPayload[] = [];
    for (let u = 0; u < 25; u += 1) {
      for (const verifier of ['alpha', 'beta']) {
        for (const schemaId of ['kyc-basic', 'proof-of-address']) {
          keys.push({ userId: `user-${run}-${u}`, verifierDid: `did:air:verifier-${verifier}-${run}`, schemaId });
        }
      }
    }
    for (const key of keys) await seedRecord(stack.db, key);

    // Ten deliveries per key: five platform retries of one message (same webhook-id, fresh
    // signature) and five fresh messages; all shuffled.
    const deliveries = keys.flatMap((key, k) =>
      Array.from({ length: 10 }, (_, i) => ({ key, id: i < 5 ? `msg_${run}_${k}` : `msg_${run}_${k}_${i}` })),
    );
    for (let i = deliveries.length - 1; i > 0; i -= 1) {
      const j = Math.floor(Math.random() * (i + 1));
      [deliveries[i], deliveries[j]] = [deliveries[j]!, deliveries[i]!];
    }
    const send = (d: (typeof deliveries)[number]) => () => postCallback(stack.api.url, d.key, { id: d.id });

    const restart = async () => {
      await stack.restartWorker();
    };
    const responses = [];
    for (const [index, chunk] of [
      deliveries.slice(0, 333),
      deliveries.slice(333, 666),
      deliveries.slice(666),
    ].entries()) {
      // worker restarts run while the next chunk's deliveries are in flight
      const restarting = index > 0 ? restart() : Promise.resolve();
      responses.push(...(await inParallel(50, chunk.map(send))));
      await restarting;
    }

    expect(responses).toHaveLength(1_000);
    // 200: Temporal took the start; 202: the dev server was slower than the start timeout under
    // this load, so the inbox took it and the relay started it. Both are durable acknowledgements.
    expect(responses.filter((r) => r.status !== 200 && r.status !== 202)).toEqual([]);
    expect(new Set(responses.map((r) => r.body.workflowId)).size).toBe(100);

    // every run audited its consent (and then holds its key for the access window)
    const audit = auditRepository(stack.db, testAuditKeys());
    await eventually(
      () => audit.count({ type: 'authorization' }),
      (n) => n === 100,
      120_000,
    );
    expect(await countRuns(client, config.TEMPORAL_TASK_QUEUE)).toBe(100);

    const authorizations = stack.db.collection('authorizations');
    expect(await authorizations.countDocuments({})).toBe(100);
    expect(await authorizations.countDocuments({ state: 'active' })).toBe(100);
    // every delivery is logged (after its answer) against its authorization
    await eventually(
      () => stack.db.collection('callback_deliveries').countDocuments({}),
      (n) => n === 1_000,
    );

    expect(await audit.count({ type: 'authorization' })).toBe(100);
    await eventually(
      () => audit.pending.countDocuments({}),
      (n) => n === 0,
    );
    expect(await audit.verifyChain()).toMatchObject({ ok: true, events: 100, unsealed: 0 });
    expect(await stack.db.collection('callback_inbox').countDocuments({})).toBe(0);
  });
});
