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
import { API_KEY_HEADER, markedPng, startIssuanceSystem } from '../test/e2e/issuance-harness';
import type { BenchResult } from './types';

/**
 * Issuances per second end to end (HTTP API -> Temporal -> worker activities -> FerretDB), with
 * two 100 KB images and a text-field item each, over the same encrypt + store work done by a bare
 * sequential loop calling the activity functions directly (no Temporal server, no HTTP).
 */

const ISSUANCES = 40;
const CONCURRENCY = 8;
const ITEM_BYTES = 100 * 1024;

const percentile = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]!;

export async function run(): Promise<BenchResult[]> {
  await globalSetup(); // services up (no-op when running) and the workflow bundle
  const system = await startIssuanceSystem({ LOG_LEVEL: 'silent' });
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
    const e2eStart = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < ISSUANCES) {
          next += 1;
          await one();
        }
      }),
    );
    const e2ePerSecond = (ISSUANCES / (performance.now() - e2eStart)) * 1000;

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
      for (const [i, item] of items.entries()) {
        const sealed = sealOuter(keyring, bytes[i]!, stagingContext(issuanceId, item.itemId));
        await staging.put(issuanceId, item.itemId, 'item', sealed, 60_000);
      }
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
    for (let i = 0; i < ISSUANCES; i += 1) await bare();
    const barePerSecond = (ISSUANCES / (performance.now() - bareStart)) * 1000;

    latencies.sort((a, b) => a - b);
    const p50 = percentile(latencies, 0.5);
    const p99 = percentile(latencies, 0.99);
    return [
      {
        name: 'issuance e2e throughput, 2 x 100 KB + fields',
        detail: `${e2ePerSecond.toFixed(1)}/s end to end (${CONCURRENCY} concurrent clients) vs ${barePerSecond.toFixed(1)}/s bare loop; latency p50 ${p50.toFixed(0)} ms, p99 ${p99.toFixed(0)} ms`,
        ratio: e2ePerSecond / barePerSecond,
        target: 0.5,
        kind: 'min',
      },
    ];
  } finally {
    await system.close();
  }
}
