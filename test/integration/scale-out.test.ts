import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import type { Client } from '@temporalio/client';
import { temporal as proto } from '@temporalio/proto';
import type { Db } from 'mongodb';
import type { ApiHandle } from '../../src/api/server';
import { DEV_API_KEY, DEV_ISSUER_DID, type Config } from '../../src/config';
import type { CallbackPayload } from '../../src/domain/authorization';
import { authorizationIdFor, authorizationWorkflowId } from '../../src/domain/callback';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/server';
import { parseSecrets } from '../../src/platform/callback-signature';
import { auditRepository } from '../../src/storage/audit';
import { recordsRepository } from '../../src/storage/records';
import { freePort } from '../support/ports';
import { markedPng } from '../support/scans';
import { testAuditKeys } from '../support/temporal';
import { spawnWorkerChild, type WorkerChild } from '../support/worker-child';
import { ACKED, connectClient, countRuns, eventually, inParallel, postCallback } from './callbacks-harness';
import { callbackConfig, openDb, runWorker, type RunningWorker, startCallbackApi } from '../support/system';

/**
 * Scale-out: two API instances and two workers (one in-process, one in a child process) on one
 * Temporal, one task queue and one database (of this test's own, so whole collections can be
 * counted). A duplicate storm of signed callbacks is split across both APIs while the child
 * worker is SIGKILLed mid-storm, and issuances (some posted twice with one Idempotency-Key, once to
 * each API) run through the same workers. Every key must end with one run, one authorization and
 * one sealed audit event; every issuance with one run, one record version, completed.
 *
 * The callback users hold no data, so each authorization ends `no-data` (docs/callbacks.md: kept,
 * audited, and its run waits for an operator's re-drive), which keeps the expected state exact
 * while issuances run concurrently.
 */

jest.setTimeout(180_000);

const USERS = 5;
const VERIFIERS = ['alpha', 'beta'];
const SCHEMAS = ['kyc-basic', 'proof-of-address'];
const DELIVERIES_PER_KEY = 4;
const IN_FLIGHT = 16;
const ISSUANCES = 6;

interface Delivery {
  key: number;
  api: 0 | 1;
  messageId: string;
}

interface IssuancePost {
  index: number;
  api: 0 | 1;
  status: number;
  issuanceId: string;
  replayed: boolean;
}

describe('scale-out: two APIs and two workers on one Temporal and one database', () => {
  let config: Config;
  let database: { db: Db; close(): Promise<void> };
  const apis: ApiHandle[] = [];
  let emulator: EmulatorHandle;
  let worker: RunningWorker;
  let child: WorkerChild;
  let temporal: Client;
  // The child's `store` activity writes this file and hangs until the kill (test/support/worker-process.ts).
  const pauseFile = join(mkdtempSync(join(tmpdir(), 'cak-scale-out-')), 'paused');

  beforeAll(async () => {
    config = await callbackConfig({ API_RATE_LIMIT_PER_MINUTE: '100000' });
    database = await openDb(config);
    apis.push(await startCallbackApi(config));
    apis.push(await startCallbackApi({ ...config, API_PORT: await freePort() }));
    // The AIR platform the issuance workers call (it checks our Partner JWTs against the first API's JWKS;
    // both APIs publish the same keys).
    emulator = await startEmulator(config, { port: 0, jwksUrl: `${apis[0]!.url}/.well-known/jwks.json` });
    const workerConfig = { ...config, AIR_PLATFORM_URL: emulator.url };
    child = await spawnWorkerChild(workerConfig, { env: { CAK_TEST_PAUSE_BEFORE_STORE: pauseFile } });
    worker = await runWorker(workerConfig); // with the audit seal loop beside it
    temporal = await connectClient(config);
  });

  afterAll(async () => {
    await child?.kill();
    // The no-data runs wait 30 days for a re-drive: end them so the dev server keeps nothing running.
    if (temporal && config) {
      for await (const wf of temporal.workflow.list({
        query: `TaskQueue = '${config.TEMPORAL_TASK_QUEUE}' AND ExecutionStatus = 'Running'`,
      })) {
        await temporal.workflow
          .getHandle(wf.workflowId, wf.runId)
          .terminate('scale-out test done')
          .catch(() => undefined);
      }
    }
    await worker?.stop();
    for (const api of apis) await api.close();
    await emulator?.close();
    await temporal?.connection.close();
    await database?.db.dropDatabase().catch(() => undefined);
    await database?.close();
    rmSync(dirname(pauseFile), { recursive: true, force: true });
  });

  it('a duplicate storm across both APIs with a worker SIGKILLed mid-storm, plus duplicated issuances: everything exactly once', async () => {
    const began = Date.now();
    const db = database.db;
    const run = randomUUID().slice(0, 8);
    const secret = parseSecrets(config.CALLBACK_SECRETS)[0]!;

    // 20 keys: 5 users x 2 Verifiers x 2 schemas, none of whose users has data.
    const keys: CallbackPayload[] = [];
    for (let u = 0; u < USERS; u += 1)
      for (const verifier of VERIFIERS)
        for (const schemaId of SCHEMAS)
          keys.push({ userId: `so-${run}-${u}`, verifierDid: `did:air:verifier-${verifier}-${run}`, schemaId });
    const authIds = keys.map((k) => authorizationIdFor(config.ID_HMAC_SECRET, k));

    // Four deliveries a key: one message sent twice (a platform retry: same webhook-id, fresh
    // signature) and two fresh messages for the same consent; two to each API, shuffled within the
    // key and sent back to back, so a key's copies race each other on both APIs.
    const deliveriesOf = (k: number): Delivery[] => {
      const d: Delivery[] = [
        { key: k, api: 0, messageId: `msg_${run}_${k}` },
        { key: k, api: 1, messageId: `msg_${run}_${k}` },
        { key: k, api: 0, messageId: `msg_${run}_${k}_a` },
        { key: k, api: 1, messageId: `msg_${run}_${k}_b` },
      ];
      for (let i = d.length - 1; i > 0; i -= 1) {
        const j = Math.floor(Math.random() * (i + 1));
        [d[i], d[j]] = [d[j]!, d[i]!];
      }
      return d;
    };
    // The first half of the keys goes out at once; the second half waits for the kill, so the
    // worker dies once some runs have started but not all of them.
    const half = keys.length / 2;
    const deliveries = keys.flatMap((_, k) => deliveriesOf(k));
    expect(deliveries).toHaveLength(keys.length * DELIVERIES_PER_KEY);
    let releaseSecondHalf!: () => void;
    const killed = new Promise<void>((resolve) => (releaseSecondHalf = resolve));
    const send = (d: Delivery) => async () => {
      if (d.key >= half) await killed;
      const res = await postCallback(apis[d.api]!.url, keys[d.key], { id: d.messageId, secret });
      return { ...d, ...res };
    };

    // Issuances: six users, each posted once; four of them also posted a second time with the
    // same Idempotency-Key to the other API, concurrently. Half before the kill, half after.
    const issuanceUsers = Array.from({ length: ISSUANCES }, (_, i) => `so-iss-${run}-${i}`);
    const postIssuance = async (index: number, api: 0 | 1): Promise<IssuancePost> => {
      const res = await fetch(`${apis[api]!.url}/v1/issuances`, {
        method: 'POST',
        headers: {
          'x-api-key': DEV_API_KEY,
          'content-type': 'application/json',
          'idempotency-key': `so-idem-${run}-${index}`,
        },
        body: JSON.stringify({
          userId: issuanceUsers[index],
          issuerDid: DEV_ISSUER_DID,
          credentialId: 'prog-kyc-basic',
          schemaId: 'kyc-basic',
          credentialSubject: { kycLevel: 1 },
          fields: { fullName: `scale-out ${index}` },
          files: [
            {
              kind: 'id-front',
              contentType: 'image/png',
              data: markedPng(`SO-${run}-${index}`, 8 * 1024).toString('base64'),
            },
          ],
        }),
      });
      const body = (await res.json().catch(() => ({}))) as { issuanceId?: string };
      return {
        index,
        api,
        status: res.status,
        issuanceId: body.issuanceId ?? '',
        replayed: res.headers.get('idempotent-replayed') === 'true',
      };
    };
    const duplicated = (i: number) => i % 3 !== 2; // 0, 1, 3, 4 twice; 2, 5 once
    const postBatch = (from: number, to: number) =>
      Promise.all(
        Array.from({ length: to - from }, (_, n) => from + n).flatMap((i) =>
          duplicated(i) ? [postIssuance(i, 0), postIssuance(i, 1)] : [postIssuance(i, (i % 2) as 0 | 1)],
        ),
      );

    // The storm and the first issuances; the kill once the workers have recorded some
    // authorizations and the child is caught holding an activity (a run's pending activity last
    // started by it, or an issuance `store` paused in it), so it dies with work in hand.
    const storm = inParallel(IN_FLIGHT, deliveries.map(send));
    const firstIssuances = postBatch(0, ISSUANCES / 2);
    // awaited below; handled now so a failure while the kill runs is reported there, not as unhandled
    storm.catch(() => undefined);
    firstIssuances.catch(() => undefined);
    const firstHalfRuns = authIds.slice(0, half).map(authorizationWorkflowId);
    const childHolds = async () => {
      const authorizations = await db.collection('authorizations').countDocuments({});
      const issuanceRuns = await db
        .collection<{ workflowId: string }>('issuances')
        .find({}, { projection: { workflowId: 1 } })
        .toArray();
      const held = await activitiesHeldBy(temporal, child.identity, [
        ...firstHalfRuns,
        ...issuanceRuns.map((d) => d.workflowId),
      ]);
      if (existsSync(pauseFile)) held.push(`storeRecord of ${readFileSync(pauseFile, 'utf8')}`);
      return { authorizations, held };
    };
    let atKill: { authorizations: number; held: string[]; sinceStartMs: number } | undefined;
    const kill = (async () => {
      try {
        const seen = await eventually(childHolds, (s) => s.authorizations >= 1 && s.held.length > 0, 90_000);
        child.process.kill('SIGKILL');
        atKill = { ...seen, sinceStartMs: Date.now() - began };
        return await child.exited;
      } finally {
        releaseSecondHalf();
      }
    })();
    const exitedWith = await kill;
    // What the child still held when it died: those activities must be retried by the other worker.
    const running: string[] = [];
    for await (const wf of temporal.workflow.list({
      query: `TaskQueue = '${config.TEMPORAL_TASK_QUEUE}' AND ExecutionStatus = 'Running'`,
    }))
      running.push(wf.workflowId);
    const heldAtDeath = await pendingActivitiesOf(temporal, child.identity, running);
    const lateIssuances = postBatch(ISSUANCES / 2, ISSUANCES);
    const responses = await storm;
    const posts = [...(await firstIssuances), ...(await lateIssuances)];
    const stormMs = Date.now() - began;

    // The kill landed mid-storm: the child died by SIGKILL holding work, with some keys recorded
    // and the second half of the keys not yet sent.
    expect(exitedWith).toBe('SIGKILL');
    expect(atKill!.held.length).toBeGreaterThanOrEqual(1);
    expect(atKill!.authorizations).toBeGreaterThanOrEqual(1);
    expect(atKill!.authorizations).toBeLessThanOrEqual(half);

    // Every delivery acknowledged durably, half by each API, every copy of a key naming its run.
    expect(responses).toHaveLength(keys.length * DELIVERIES_PER_KEY);
    expect(responses.filter((r) => !ACKED.includes(r.status))).toEqual([]);
    expect(responses.filter((r) => r.api === 0)).toHaveLength(responses.length / 2);
    for (const [k, authId] of authIds.entries()) {
      const ofKey = responses.filter((r) => r.key === k);
      expect(ofKey).toHaveLength(DELIVERIES_PER_KEY);
      expect(new Set(ofKey.map((r) => r.body.workflowId))).toEqual(new Set([authorizationWorkflowId(authId)]));
      // Temporal took at most one start (a 200 that is not a duplicate); the first copy
      // to be made durable (started, or queued first) is not a duplicate.
      expect(ofKey.filter((r) => r.status === 200 && r.body.duplicate === false).length).toBeLessThanOrEqual(1);
      expect(ofKey.filter((r) => r.body.duplicate === false).length).toBeGreaterThanOrEqual(1);
    }

    // Callbacks: one sealed audit event per key (the seal loop beside the surviving worker).
    const audit = auditRepository(db, testAuditKeys());
    const sealed = db.collection<{ _id: string; type: string; data: { authorizationId?: string } }>('audit_events');
    await eventually(
      async () => ({ sealed: await sealed.countDocuments({}), pending: await audit.pending.countDocuments({}) }),
      (n) => n.sealed >= keys.length && n.pending === 0,
      120_000,
    );
    const events = await sealed.find({}).toArray();
    expect(events.filter((e) => e.type !== 'authorization')).toEqual([]);
    expect(events.map((e) => e.data.authorizationId).sort()).toEqual([...authIds].sort());
    expect(await audit.verifyChain()).toMatchObject({ ok: true, events: keys.length, unsealed: 0 });

    // One authorization per key, recorded as no-data (we hold nothing for these users).
    const authorizations = await db
      .collection<{ _id: string; state: string; workflowId: string }>('authorizations')
      .find({})
      .toArray();
    expect(authorizations.map((a) => a._id).sort()).toEqual([...authIds].sort());
    expect(authorizations.filter((a) => a.state !== 'no-data')).toEqual([]);

    // One run per key: every execution ever started under the key's workflow id, and on the queue.
    for (const authId of authIds) {
      const { count } = await temporal.workflow.count(`WorkflowId = '${authorizationWorkflowId(authId)}'`);
      expect({ authId, runs: count }).toEqual({ authId, runs: 1 });
    }
    expect(await countRuns(temporal, config.TEMPORAL_TASK_QUEUE)).toBe(keys.length);
    expect(await countRuns(temporal, config.TEMPORAL_TASK_QUEUE, ` AND ExecutionStatus = 'Running'`)).toBe(keys.length);

    // Nothing left in the inbox; every acknowledged delivery logged once against its key.
    await eventually(
      () => db.collection('callback_inbox').countDocuments({}),
      (n) => n === 0,
    );
    const deliveryLog = db.collection<{ authorizationId: string }>('callback_deliveries');
    await eventually(
      () => deliveryLog.countDocuments({}),
      (n) => n >= deliveries.length,
    );
    const perKey = new Map<string, number>();
    for (const d of await deliveryLog.find({}).toArray())
      perKey.set(d.authorizationId, (perKey.get(d.authorizationId) ?? 0) + 1);
    expect(Object.fromEntries(perKey)).toEqual(Object.fromEntries(authIds.map((id) => [id, DELIVERIES_PER_KEY])));

    // Issuances: a repeated Idempotency-Key, on either API, lands on the same issuance; one of
    // the pair is the replay.
    expect(posts.filter((p) => p.status !== 202)).toEqual([]);
    for (let i = 0; i < ISSUANCES; i += 1) {
      const pair = posts.filter((p) => p.index === i);
      expect(pair).toHaveLength(duplicated(i) ? 2 : 1);
      expect(new Set(pair.map((p) => p.issuanceId)).size).toBe(1);
      expect(pair.filter((p) => p.replayed)).toHaveLength(duplicated(i) ? 1 : 0);
    }
    const issuanceIds = [...new Set(posts.map((p) => p.issuanceId))];
    expect(issuanceIds).toHaveLength(ISSUANCES);

    const issuances = db.collection<{ _id: string; status: string; workflowId: string; recordId: string }>('issuances');
    await eventually(
      () => issuances.find({}, { projection: { status: 1 } }).toArray(),
      (docs) => docs.length >= ISSUANCES && docs.every((d) => d.status === 'completed' || d.status === 'failed'),
      150_000,
    );
    const issued = await issuances.find({}).toArray();
    expect(issued.map((d) => d._id).sort()).toEqual([...issuanceIds].sort());
    expect(issued.filter((d) => d.status !== 'completed')).toEqual([]);
    const records = recordsRepository(db);
    expect(await records.records.countDocuments({})).toBe(ISSUANCES);
    expect(await records.versions.countDocuments({})).toBe(ISSUANCES);
    for (const doc of issued) {
      expect(await records.countVersions(doc.recordId)).toBe(1);
      expect(await records.versionFor(doc._id)).toMatchObject({ recordId: doc.recordId, version: 1 });
      const { count } = await temporal.workflow.count(`WorkflowId = '${doc.workflowId}'`);
      expect({ issuance: doc._id, runs: count }).toEqual({ issuance: doc._id, runs: 1 });
    }
    // Both APIs answer the same status for each issuance.
    for (const id of issuanceIds) {
      for (const api of apis) {
        const res = await fetch(`${api.url}/v1/issuances/${id}`, { headers: { 'x-api-key': DEV_API_KEY } });
        expect(res.status).toBe(200);
        expect(await res.json()).toMatchObject({ status: 'completed', record: { version: 1 } });
      }
    }
    const issuanceRuns = await temporal.workflow.count(
      `TaskQueue = '${config.TEMPORAL_TASK_QUEUE}' AND WorkflowType = 'issuanceWorkflow'`,
    );
    expect(issuanceRuns.count).toBe(ISSUANCES);
    const completedRuns = await temporal.workflow.count(
      `TaskQueue = '${config.TEMPORAL_TASK_QUEUE}' AND WorkflowType = 'issuanceWorkflow' AND ExecutionStatus = 'Completed'`,
    );
    expect(completedRuns.count).toBe(ISSUANCES);
    expect(await db.collection('packages').countDocuments({ state: { $ne: 'committed' } })).toBe(0);
    expect(await db.collection('staging').countDocuments({})).toBe(0);

    // Every activity the child held when it died was completed by the other worker, on a later attempt.
    for (const held of heldAtDeath) {
      const history = await temporal.workflow.getHandle(held.workflowId).fetchHistory();
      const scheduled = history.events?.find(
        (e) => e.activityTaskScheduledEventAttributes?.activityId === held.activityId,
      );
      const started = history.events?.find(
        (e) => Number(e.activityTaskStartedEventAttributes?.scheduledEventId) === Number(scheduled?.eventId),
      );
      expect({ ...held, attempt: started?.activityTaskStartedEventAttributes?.attempt }).toEqual({
        ...held,
        attempt: expect.any(Number),
      });
      expect(started!.activityTaskStartedEventAttributes!.attempt).toBeGreaterThanOrEqual(2);
      expect(started!.activityTaskStartedEventAttributes!.identity).not.toBe(child.identity);
    }

    // How the runs went between the workers (reported; the kill's effect is asserted above).
    const takeover = { runs: 0, touchedByKilled: 0, workflowTaskTimeouts: 0, activityRetries: 0 };
    for await (const wf of temporal.workflow.list({ query: `TaskQueue = '${config.TEMPORAL_TASK_QUEUE}'` })) {
      takeover.runs += 1;
      const history = await temporal.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
      let touched = false;
      for (const e of history.events ?? []) {
        const identity =
          e.workflowTaskStartedEventAttributes?.identity ??
          e.workflowTaskCompletedEventAttributes?.identity ??
          e.activityTaskStartedEventAttributes?.identity;
        if (identity === child.identity) touched = true;
        if (e.workflowTaskTimedOutEventAttributes) takeover.workflowTaskTimeouts += 1;
        if ((e.activityTaskStartedEventAttributes?.attempt ?? 1) > 1) takeover.activityRetries += 1;
      }
      if (touched) takeover.touchedByKilled += 1;
    }
    expect(takeover.runs).toBe(keys.length + ISSUANCES);

    console.log(
      `scale-out: ${deliveries.length} deliveries over ${keys.length} keys and ${posts.length} issuance posts ` +
        `(${ISSUANCES} issuances); worker killed at ${atKill!.sinceStartMs} ms with ${atKill!.authorizations} ` +
        `authorizations recorded, caught holding [${atKill!.held.join(', ')}], holding at death ` +
        `[${heldAtDeath.map((h) => `${h.activityType} of ${h.workflowId}`).join(', ')}]; storm acknowledged in ${stormMs} ms ` +
        `(${responses.filter((r) => r.status === 202).length} via the inbox); all settled in ${Date.now() - began} ms; ` +
        `runs touched by the killed worker: ${takeover.touchedByKilled}/${takeover.runs}, workflow task timeouts: ` +
        `${takeover.workflowTaskTimeouts}, retried activities: ${takeover.activityRetries}`,
    );
  });
});

/** Activities of these runs that are started and were last started by the worker `identity`. */
async function pendingActivitiesOf(
  client: Client,
  identity: string,
  workflowIds: readonly string[],
): Promise<{ workflowId: string; activityId: string; activityType: string }[]> {
  const described = await Promise.all(
    workflowIds.map((id) =>
      client.workflow
        .getHandle(id)
        .describe()
        .catch(() => undefined),
    ),
  );
  return described.flatMap((d) =>
    (d?.raw.pendingActivities ?? [])
      .filter(
        (a) =>
          a.lastWorkerIdentity === identity &&
          a.state === proto.api.enums.v1.PendingActivityState.PENDING_ACTIVITY_STATE_STARTED,
      )
      .map((a) => ({
        workflowId: d!.workflowId,
        activityId: a.activityId ?? '',
        activityType: a.activityType?.name ?? '',
      })),
  );
}

async function activitiesHeldBy(client: Client, identity: string, workflowIds: readonly string[]): Promise<string[]> {
  return (await pendingActivitiesOf(client, identity, workflowIds)).map((a) => `${a.activityType} of ${a.workflowId}`);
}
