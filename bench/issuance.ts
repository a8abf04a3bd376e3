import { activityDepsFrom } from '../src/activities';
import { createIssuanceActivities } from '../src/activities/issuance';
import { issuanceWorkflowId } from '../src/domain/ids';
import { acceptedIssuance } from '../test/support/accepted-issuance';
import globalSetup from '../test/support/global-setup';
import { uniqueId } from '../test/support/temporal';
import { commandsDuring, watchDatabaseCommands, type SeenCommand } from '../test/support/db-commands';
import { API_KEY_HEADER, markedPng } from '../test/e2e/issuance-harness';
import { startSystem } from '../test/support/system';
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
  const system = await startSystem({
    env: { LOG_LEVEL: 'silent', GRIDFS_THRESHOLD_BYTES: String(256 * 1024), API_METRICS_REFRESH_SECONDS: '3600' },
    // no callbacks here: the relay's polls of the inbox would count as the issuances' commands
    api: { relay: { intervalMs: 3_600_000 } },
  });
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
    const activities = createIssuanceActivities({ db: system.db, ...deps });
    const bare = async () => {
      const userId = uniqueId('bare');
      const issuance = await acceptedIssuance(
        system.db,
        config,
        { managedKeyring: deps.managedKeyring, activities },
        {
          issuanceId: uniqueId('iss_bare'),
          userId,
          cakPublicKey: body(userId).cakPublicKey,
          items: [
            {
              descriptor: { itemId: 'fields', kind: 'fields', contentType: 'application/json', size: 24 },
              bytes: Buffer.from('{"fullName":"bench user"}'),
            },
            {
              descriptor: { itemId: 'id-front', kind: 'id-front', contentType: 'image/png', size: ITEM_BYTES },
              bytes: files[0]!,
            },
            {
              descriptor: { itemId: 'id-back', kind: 'id-back', contentType: 'image/png', size: ITEM_BYTES },
              bytes: files[1]!,
            },
          ],
        },
      );
      await issuance.store(await issuance.encrypt());
      await issuance.shred();
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
