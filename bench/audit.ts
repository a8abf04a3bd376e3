import { randomUUID } from 'node:crypto';
import { Agent, request } from 'node:http';
import { NativeConnection, Worker } from '@temporalio/worker';
import type { Db } from 'mongodb';
import { activityDepsFrom, createActivities } from '../src/activities';
import { startApi, type ApiHandle } from '../src/api/server';
import { DEV_ADMIN_TOKEN, DEV_ISSUER_DID, type Config } from '../src/config';
import { parseKeyring } from '../src/crypto/keyring';
import { dataConverterFor } from '../src/crypto/payload-codec';
import type { CallbackPayload } from '../src/domain/authorization';
import { recordIdFor } from '../src/domain/ids';
import { VerifierSimulation } from '../src/emulator/verifier-sim';
import { auditRepository } from '../src/storage/audit';
import globalSetup from '../test/support/global-setup';
import { uniqueId, workflowBundle } from '../test/support/temporal';
import { eventually, signedCallback } from '../test/integration/callbacks-harness';
import { callbackConfig, openDb, startSealLoop } from '../test/support/system';
import type { BenchResult } from './types';

/**
 * The audit trail under load (docs/callbacks.md, "Audit trail"):
 * - append cost: audit appends per second with 10,000 events already sealed in the chain, over the
 *   rate with 100 (an append is one insert, whatever the chain's length);
 * - burst settle: 500 unique signed consents posted at once, timed until every one is routed,
 *   audited and sealed into the chain, over the same burst with the audit step replaced by a no-op
 *   activity (and no sequencer): what the audit trail costs a burst;
 * - Verifier manifest reads during that burst: p99 over the p99 of the same reads at rest.
 */

const BURST = 500;
const POST_CONCURRENCY = 32;
const APPENDS = 1_000;
const APPEND_CONCURRENCY = 16;
const BENCH_ENV = {
  LOG_LEVEL: 'silent',
  API_RATE_LIMIT_PER_MINUTE: '1000000',
  VERIFIER_RATE_LIMIT_PER_MINUTE: '1000000',
};

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

async function inParallel(count: number, concurrency: number, one: (i: number) => Promise<unknown>): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < count) await one(next++);
    }),
  );
  return performance.now() - start;
}

async function appendCost(config: Config): Promise<BenchResult[]> {
  const database = await openDb({ ...config, MONGODB_DB: `${config.MONGODB_DB}_append` });
  const audit = auditRepository(database.db, parseKeyring(config.CAK_AUDIT_KEYS));
  try {
    const fill = async (to: number) => {
      const have = await audit.length();
      const docs = Array.from({ length: to - have }, (_, i) => ({
        _id: `fill:${have + i}`,
        type: 'verifier.manifest' as const,
        at: new Date().toISOString(),
        data: { n: have + i },
      }));
      for (let i = 0; i < docs.length; i += 1_000) await audit.pending.insertMany(docs.slice(i, i + 1_000));
      await audit.sealAll(1_000);
    };
    const measure = async (label: string) => {
      const appendMs = await inParallel(APPENDS, APPEND_CONCURRENCY, (i) =>
        audit.append(`${label}:${i}`, 'verifier.manifest', { i }),
      );
      const sealStart = performance.now();
      await audit.sealAll(500);
      return { appends: (APPENDS / appendMs) * 1000, seals: (APPENDS / (performance.now() - sealStart)) * 1000 };
    };
    await fill(100);
    const small = await measure('at-100');
    await fill(10_000);
    const large = await measure('at-10000');
    const chain = await audit.verifyChain();
    if (!chain.ok) throw new Error(`audit chain broken in the bench: ${chain.reason}`);
    return [
      {
        name: 'audit append rate, 10,000 events vs 100',
        detail: `${large.appends.toFixed(0)}/s with 10,000 in the chain vs ${small.appends.toFixed(0)}/s with 100 (${APPEND_CONCURRENCY} appenders)`,
        ratio: large.appends / small.appends,
        target: 0.8,
        kind: 'min',
      },
      {
        name: 'audit seal rate, 10,000 events vs 100',
        detail: `${large.seals.toFixed(0)}/s vs ${small.seals.toFixed(0)}/s (batches of 500, one sequencer)`,
        ratio: large.seals / small.seals,
        target: 0.8,
        kind: 'min',
      },
    ];
  } finally {
    await database.db.dropDatabase().catch(() => undefined);
    await database.close();
  }
}

interface Burst {
  settleMs: number;
  /** manifest read latencies during the burst (ms, sorted) */
  reads: number[];
  idleReads: number[];
}

/** One burst of BURST unique consents against a fresh database and task queue. */
async function burst(withAudit: boolean): Promise<Burst> {
  const config = await callbackConfig({
    ...BENCH_ENV,
    MONGODB_DB: uniqueId('bench_burst').replace(/-/g, '_').slice(0, 40),
    TEMPORAL_TASK_QUEUE: uniqueId('tq-burst'),
  });
  const database = await openDb(config);
  const api: ApiHandle = await startApi(config);
  const connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
  const activities = createActivities({ db: database.db, ...activityDepsFrom(config) });
  const worker = await Worker.create({
    connection,
    taskQueue: config.TEMPORAL_TASK_QUEUE,
    workflowBundle: workflowBundle(),
    dataConverter: dataConverterFor(parseKeyring(config.CAK_CODEC_KEYS)),
    activities: withAudit ? activities : { ...activities, auditAuthorization: () => Promise.resolve({ eventId: '' }) },
    shutdownForceTime: '5s',
  });
  const running = worker.run();
  const sealer = withAudit ? startSealLoop(config) : undefined;
  const agent = new Agent({ keepAlive: true, maxSockets: POST_CONCURRENCY });
  const tag = randomUUID().slice(0, 8);
  try {
    const db: Db = database.db;
    const seed = async (userIds: string[]) => {
      const now = new Date();
      const records = userIds.map((userId) => ({
        _id: recordIdFor(config.ID_HMAC_SECRET, DEV_ISSUER_DID, userId, 'kyc-basic'),
        clientId: 'dev',
        issuerDid: DEV_ISSUER_DID,
        userId,
        schemaId: 'kyc-basic',
        currentVersion: 1,
        createdAt: now,
        updatedAt: now,
      }));
      await db.collection<{ _id: string }>('records').insertMany(records);
      await db
        .collection<{ _id: string }>('record_versions')
        .insertMany(
          records.map((r) => ({ _id: `iss_${r._id}`, recordId: r._id, version: 1, manifest: [], createdAt: now })),
        );
    };
    const deliver = (p: CallbackPayload) =>
      new Promise<void>((resolve, reject) => {
        const { body, headers } = signedCallback(p);
        const req = request(`${api.url}/v1/cak/callbacks`, { method: 'POST', headers, agent }, (res) => {
          res.resume();
          res.on('end', () =>
            res.statusCode === 200 || res.statusCode === 202
              ? resolve()
              : reject(new Error(`callback answered ${res.statusCode}`)),
          );
        });
        req.on('error', reject);
        req.end(body);
      });

    // A Verifier with an active authorization of its own, reading its manifest throughout.
    const reader = new VerifierSimulation(`did:air:id:bench-reader-${tag}`, {
      emulatorUrl: 'http://127.0.0.1:1',
      apiUrl: api.url,
    });
    await reader.register(DEV_ADMIN_TOKEN);
    const readerUser = `reader-${tag}`;
    await seed([readerUser]);
    await deliver({ userId: readerUser, verifierDid: reader.verifierDid, schemaId: 'kyc-basic' });
    const token = await reader.accessToken();
    const read = async () => {
      const t = performance.now();
      const res = await reader.requestData(readerUser, 'kyc-basic', token);
      await res.arrayBuffer();
      if (!res.ok) throw new Error(`manifest read answered ${res.status}`);
      return performance.now() - t;
    };
    await eventually(
      () =>
        read()
          .then(() => true)
          .catch(() => false),
      (ok) => ok,
    );
    const idleReads: number[] = [];
    for (let i = 0; i < 100; i += 1) idleReads.push(await read());

    const users = Array.from({ length: BURST }, (_, i) => `burst-${tag}-${i}`);
    await seed(users);
    const authorizations = db.collection('authorizations');
    const audited = auditRepository(db, parseKeyring(config.CAK_AUDIT_KEYS));
    const settled = async () => {
      const active = await authorizations.countDocuments({ state: 'active' });
      if (active < BURST + 1) return false;
      // with the audit step: every consent's event is sealed into the chain (the reader's too)
      return !withAudit || (await audited.events.countDocuments({ type: 'authorization' })) === BURST + 1;
    };
    const reads: number[] = [];
    let done = false;
    const readers = Array.from({ length: 2 }, async () => {
      while (!done) reads.push(await read());
    });
    const start = performance.now();
    await inParallel(BURST, POST_CONCURRENCY, (i) =>
      deliver({ userId: users[i]!, verifierDid: `did:air:id:bench-burst-${tag}`, schemaId: 'kyc-basic' }),
    );
    await eventually(settled, (ok) => ok, 600_000);
    const settleMs = performance.now() - start;
    done = true;
    await Promise.all(readers);
    return { settleMs, reads: reads.sort((a, b) => a - b), idleReads: idleReads.sort((a, b) => a - b) };
  } finally {
    agent.destroy();
    await sealer?.stop();
    worker.shutdown();
    await running;
    await connection.close();
    await api.close();
    await database.db.dropDatabase().catch(() => undefined);
    await database.close();
  }
}

export async function run(): Promise<BenchResult[]> {
  await globalSetup();
  const append = await appendCost(await callbackConfig(BENCH_ENV));
  const baseline = await burst(false);
  const subject = await burst(true);
  const rate = (b: Burst) => (BURST / b.settleMs) * 1000;
  const p99 = percentile(subject.reads, 0.99);
  const idleP99 = percentile(subject.idleReads, 0.99);
  return [
    ...append,
    {
      name: `burst of ${BURST} consents, settle rate`,
      detail: `all audited and sealed in ${(subject.settleMs / 1000).toFixed(1)} s (${rate(subject).toFixed(1)}/s) vs ${(baseline.settleMs / 1000).toFixed(1)} s (${rate(baseline).toFixed(1)}/s) with a no-op audit step`,
      ratio: rate(subject) / rate(baseline),
      target: 0.7,
      kind: 'min',
    },
    {
      name: 'Verifier manifest reads during the burst, p99',
      detail: `p99 ${p99.toFixed(0)} ms (p50 ${percentile(subject.reads, 0.5).toFixed(0)} ms, ${subject.reads.length} reads) during the burst vs p99 ${idleP99.toFixed(0)} ms at rest`,
      ratio: p99 / idleP99,
      target: 20,
      kind: 'max',
    },
  ];
}
