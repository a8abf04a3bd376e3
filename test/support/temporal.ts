import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { Client, Connection } from '@temporalio/client';
import type { IssuanceActivityDeps } from '../../src/activities/issuance';
import { loadConfig, type Config } from '../../src/config';
import { parseKeyring, type Keyring } from '../../src/crypto/keyring';
import { dataConverterFor } from '../../src/crypto/payload-codec';
import { createWorker, type WorkerHandle } from '../../src/workers/worker';
import { BUNDLE_PATH } from './global-setup';

/** The config tests run with: the local services `npm test` started, and a task queue per test. */
export function testConfig(overrides: NodeJS.ProcessEnv = {}): Config {
  return loadConfig({ ...process.env, LOG_LEVEL: 'silent', ...overrides });
}

export function uniqueId(prefix: string): string {
  return `${prefix}-${randomUUID()}`;
}

let bundle: { code: string } | undefined;
export function workflowBundle(): { code: string } {
  bundle ??= { code: readFileSync(BUNDLE_PATH, 'utf8') };
  return bundle;
}

export async function connectClient(config: Config): Promise<Client> {
  const connection = await Connection.connect({ address: config.TEMPORAL_ADDRESS });
  return new Client({
    connection,
    namespace: config.TEMPORAL_NAMESPACE,
    dataConverter: dataConverterFor(parseKeyring(config.CAK_CODEC_KEYS)),
  });
}

/** A real worker on a fresh task queue, with the pre-built bundle; shut down within 5 s. */
export async function startTestWorker(
  config: Config,
  taskQueue = uniqueId('tq'),
  issuanceHooks?: IssuanceActivityDeps['hooks'],
): Promise<WorkerHandle & { taskQueue: string }> {
  const handle = await createWorker(config, {
    taskQueue,
    workflowBundle: workflowBundle(),
    shutdownForceTime: '5s',
    ...(issuanceHooks ? { issuanceHooks } : {}),
  });
  return { ...handle, taskQueue };
}

// The SDK logs every worker state change at INFO; tests only want warnings and errors.
import { DefaultLogger, Runtime } from '@temporalio/worker';
try {
  Runtime.install({ logger: new DefaultLogger('WARN') });
} catch {
  /* already installed in this jest worker process */
}

/** The audit keyring of the test configuration (CAK_AUDIT_KEYS). */
export function testAuditKeys(): Keyring {
  return parseKeyring(testConfig().CAK_AUDIT_KEYS);
}
