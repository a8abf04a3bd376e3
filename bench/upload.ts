import { fork, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { issuanceWorkflowId } from '../src/domain/ids';
import globalSetup from '../test/support/global-setup';
import { uniqueId } from '../test/support/temporal';
import { API_KEY_HEADER, markedPng } from '../test/e2e/issuance-harness';
import { startSystem, type System } from '../test/support/system';
import type { BenchResult } from './types';

/**
 * Peak memory of the process serving one multipart upload of a file at the per-file limit
 * (ITEM_MAX_FILE_BYTES, 25 MiB). The API runs alone in a child process (bench/upload-child.ts); a
 * worker in this process finishes each issuance. After a small warm-up upload (every code path
 * loaded) the child collects garbage and resets its peak (VmHWM, via /proc/self/clear_refs); the
 * figure is (peak during the upload - RSS at that reset) / the item size. It counts everything the
 * process holds while it parses, seals and stages the upload: buffers, the database driver, garbage
 * not yet collected. Target: at most 3.
 */

const TARGET = 3;

type Memory = { rss: number; peak: number };

function ask<T>(child: ChildProcess, message?: string): Promise<T> {
  return new Promise((resolve, reject) => {
    child.once('message', (reply) => resolve(reply as T));
    child.once('exit', (code) => reject(new Error(`upload child exited (${code})`)));
    if (message) child.send(message);
  });
}

async function upload(system: System, port: number, file: Buffer): Promise<void> {
  const userId = uniqueId('bench-upload');
  const form = new FormData();
  form.set('userId', userId);
  form.set('issuerDid', 'did:air:id:cak-dev-issuer');
  form.set('credentialId', 'prog-kyc-basic');
  form.set('schemaId', 'kyc-basic');
  form.set('credentialSubject', JSON.stringify({ kycLevel: 1 }));
  form.set('id-front', new Blob([file], { type: 'image/png' }), 'front.png');
  const res = await fetch(`http://127.0.0.1:${port}/v1/issuances`, {
    method: 'POST',
    headers: API_KEY_HEADER,
    body: form,
  });
  if (res.status !== 202) throw new Error(`upload answered ${res.status}: ${await res.text()}`);
  const { issuanceId } = (await res.json()) as { issuanceId: string };
  await system.client.workflow.getHandle(issuanceWorkflowId(system.config.ID_HMAC_SECRET, issuanceId)).result();
}

export async function run(): Promise<BenchResult[]> {
  await globalSetup(); // services up (no-op when running) and the workflow bundle
  const system = await startSystem({ env: { LOG_LEVEL: 'silent' } });
  const child = fork(join(__dirname, 'upload-child.ts'), [], {
    execArgv: ['--expose-gc', '-r', '@swc-node/register'],
    env: {
      ...process.env,
      MONGODB_DB: system.config.MONGODB_DB,
      TEMPORAL_TASK_QUEUE: system.config.TEMPORAL_TASK_QUEUE,
      GRIDFS_THRESHOLD_BYTES: String(system.config.GRIDFS_THRESHOLD_BYTES),
    },
  });
  try {
    const { port } = await ask<{ port: number }>(child);
    const itemBytes = system.config.ITEM_MAX_FILE_BYTES;
    await upload(system, port, markedPng('BENCH-WARM-UP', 1024 * 1024));
    const file = markedPng('BENCH-UPLOAD', itemBytes);
    const baseline = await ask<Memory>(child, 'baseline');
    const started = performance.now();
    await upload(system, port, file);
    const seconds = (performance.now() - started) / 1000;
    const after = await ask<Memory>(child, 'peak');
    const growth = after.peak - baseline.rss;
    const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
    return [
      {
        name: 'multipart upload of 25 MiB: peak RSS / item',
        detail: `API process RSS ${mb(baseline.rss)} before, peak ${mb(after.peak)} (+${mb(growth)}) for a ${mb(itemBytes)} item; upload to completed ${seconds.toFixed(1)} s`,
        ratio: growth / itemBytes,
        target: TARGET,
        kind: 'max',
      },
    ];
  } finally {
    child.send('exit');
    await new Promise((resolve) => child.once('exit', resolve));
    await system.close();
  }
}
