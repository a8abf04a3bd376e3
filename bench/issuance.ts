import { MockActivityEnvironment } from '@temporalio/testing';
import { activityDepsFrom } from '../src/activities';
import { createIssuanceActivities } from '../src/activities/issuance';
import { stagingContext } from '../src/domain/issuance';
import { sealOuter } from '../src/crypto/outer-layer';
import { cakKeyFingerprint, issuanceWorkflowId, recordIdFor } from '../src/domain/ids';
import { issuancesRepository } from '../src/storage/issuances';
import type { ItemDescriptor, PackageRef } from '../src/domain/issuance';
import { stagingRepository } from '../src/storage/staging';
import globalSetup from '../test/support/global-setup';
import { uniqueId } from '../test/support/temporal';
import { commandsDuring, watchDatabaseCommands, type SeenCommand } from '../test/support/db-commands';
import { API_KEY_HEADER, markedPng, startIssuanceSystem } from '../test/e2e/issuance-harness';
import type { BenchResult } from './types';

/**
 * Issuances per second end to end (HTTP API -> Temporal -> worker activities -> FerretDB), with
 * two 100 KB images and a text-field item each, over the same staging + encrypt + store + shred work
 * done by a bare loop calling the activity functions directly (no Temporal server, no HTTP), both at
 * CONCURRENCY at a time; and the database commands one end-to-end issuance sends (driver command
 * monitoring, API and worker), at the production GridFS threshold (the images inline).
 */

const ISSUANCES = 40;
const CONCURRENCY = 8;
const ITEM_BYTES = 100 * 1024;

/** Runs `task` ISSUANCES times, CONCURRENCY at a time. */
async function concurrently(task: () => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (next < ISSUANCES) {
        next += 1;
        await task();
      }
    }),
  );
}

/** Commands per issuance by name, e.g. `find 8, insert 5`. */
function summary(commands: SeenCommand[]): string {
  const byName = new Map<string, number>();
  for (const c of commands) byName.set(c.name, (byName.get(c.name) ?? 0) + 1);
  return [...byName].map(([name, n]) => `${name} ${(n / ISSUANCES).toFixed(1)}`).join(', ');
}

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

export async function run(): Promise<BenchResult[]> {
  await globalSetup(); // services up (no-op when running) and the workflow bundle
  watchDatabaseCommands();
  const system = await startIssuanceSystem(
    { LOG_LEVEL: 'silent', GRIDFS_THRESHOLD_BYTES: String(256 * 1024) },
    { mongo: { appName: 'bench-api' } },
  );
  try {
    const issuerDid = 'did:air:id:cak-dev-issuer';
    const files = [markedPng('BENCH-FRONT', ITEM_BYTES), markedPng('BENCH-BACK', ITEM_BYTES)];
    const body = (userId: string) => ({
      userId,
      issuerDid,
      credentialId: 'prog-kyc-basic',
      schemaId: 'kyc-basic',
      curve: 'secp256r1',
      cakPublicKey: system.emulator.controls.cakPublicKey({ userId, issuerDid, schemaId: 'kyc-basic' }, 'secp256r1'),
      credentialSubject: { kycLevel: 1 },
      fields: { fullName: 'bench user' },
      files: [
        { kind: 'id-front', contentType: 'image/png', data: files[0]!.toString('base64') },
        { kind: 'id-back', contentType: 'image/png', data: files[1]!.toString('base64') },
      ],
    });

    // End to end, CONCURRENCY clients at a time; latency is POST until the workflow result.
    const latencies: number[] = [];
    const one = async () => {
      const userId = uniqueId('bench');
      const started = performance.now();
      const res = await fetch(`${system.apiUrl}/v1/issuances`, {
        method: 'POST',
        headers: { ...API_KEY_HEADER, 'content-type': 'application/json' },
        body: JSON.stringify(body(userId)),
      });
      if (res.status !== 202) throw new Error(`POST answered ${res.status}`);
      const { issuanceId } = (await res.json()) as { issuanceId: string };
      await system.client.workflow.getHandle(issuanceWorkflowId(system.config.ID_HMAC_SECRET, issuanceId)).result();
      latencies.push(performance.now() - started);
    };
    await one(); // warm-up
    latencies.length = 0;
    let e2eMs = 0;
    const commands = await commandsDuring(async () => {
      const e2eStart = performance.now();
      await concurrently(one);
      e2eMs = performance.now() - e2eStart;
    }, 0);
    const e2ePerSecond = (ISSUANCES / e2eMs) * 1000;
    const commandsPerIssuance = commands.length / ISSUANCES;

    // Baseline: the same staging + encrypt + store work in a bare loop, activities called directly.
    const config = system.config;
    const deps = activityDepsFrom(config).issuance;
    const keyring = deps.managedKeyring;
    const activities = createIssuanceActivities({ db: system.db, ...deps });
    const staging = stagingRepository(system.db, config.GRIDFS_THRESHOLD_BYTES);
    const issuances = issuancesRepository(system.db);
    const bare = async () => {
      const userId = uniqueId('bare');
      const issuanceId = uniqueId('iss_bare');
      const recordId = recordIdFor(config.ID_HMAC_SECRET, issuerDid, userId, 'kyc-basic');
      const items: ItemDescriptor[] = [
        { itemId: 'fields', kind: 'fields', contentType: 'application/json', size: 24 },
        { itemId: 'id-front', kind: 'id-front', contentType: 'image/png', size: ITEM_BYTES },
        { itemId: 'id-back', kind: 'id-back', contentType: 'image/png', size: ITEM_BYTES },
      ];
      // the issuance the API would have recorded: the activities check their input against it
      const workflowId = issuanceWorkflowId(config.ID_HMAC_SECRET, issuanceId);
      const now = new Date();
      await issuances.create({
        _id: issuanceId,
        clientId: 'dev',
        fingerprint: 'bench',
        workflowId,
        recordId,
        userId,
        issuerDid,
        schemaId: 'kyc-basic',
        credentialId: 'prog-kyc-basic',
        curve: 'secp256r1',
        keySource: 'client',
        cakKeyFingerprint: cakKeyFingerprint(config.ID_HMAC_SECRET, body(userId).cakPublicKey),
        items,
        status: 'accepted',
        steps: {
          issue: { state: 'completed' },
          encrypt: { state: 'pending' },
          store: { state: 'pending' },
          shred: { state: 'pending' },
        },
        createdAt: now,
        updatedAt: now,
      });
      const env = new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'bench' } });
      const bytes = [Buffer.from('{"fullName":"bench user"}'), files[0]!, files[1]!];
      await staging.stage(
        issuanceId,
        items.map((item, i) => ({
          itemId: item.itemId,
          role: 'item' as const,
          sealed: sealOuter(keyring, bytes[i]!, stagingContext(issuanceId, item.itemId)),
        })),
        60_000,
      );
      const cakPublicKey = body(userId).cakPublicKey;
      const packages: PackageRef[] = await env.run(
        (input: Parameters<typeof activities.encryptItems>[0]) => activities.encryptItems(input),
        {
          issuanceId,
          recordId,
          curve: 'secp256r1' as const,
          cakPublicKey,
          items,
        },
      );
      await env.run((input: Parameters<typeof activities.storeRecord>[0]) => activities.storeRecord(input), {
        issuanceId,
        identity: { recordId, issuerDid, userId, schemaId: 'kyc-basic' },
        packages,
      });
      await env.run((id: string) => activities.shredStaging(id), issuanceId);
    };
    await bare();
    const bareStart = performance.now();
    await concurrently(bare);
    const barePerSecond = (ISSUANCES / (performance.now() - bareStart)) * 1000;

    latencies.sort((a, b) => a - b);
    const p50 = percentile(latencies, 0.5);
    const p99 = percentile(latencies, 0.99);
    return [
      {
        name: 'issuance e2e throughput, 2 x 100 KB + fields',
        detail: `${e2ePerSecond.toFixed(1)}/s end to end vs ${barePerSecond.toFixed(1)}/s bare loop, ${CONCURRENCY} at a time each; latency p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms`,
        ratio: e2ePerSecond / barePerSecond,
        target: 0.8,
        kind: 'min',
      },
      {
        name: 'database commands per 3-item issuance',
        detail: `${commands.length} commands for ${ISSUANCES} issuances (API and worker, at the wire): ${summary(commands)}`,
        ratio: commandsPerIssuance,
        target: 15,
        kind: 'max',
      },
    ];
  } finally {
    await system.close();
  }
}
