/**
 * A worker in a child process, for tests that SIGKILL it. Config comes from the environment like
 * the real worker; CAK_TEST_PAUSE_BEFORE_STORE=<file> makes the `store` activity write that file and
 * hang before touching the database (i.e. after `encrypt` completed), so the test can kill the
 * process exactly between encrypt and store.
 */
import { writeFileSync } from 'node:fs';
import { loadConfig } from '../../src/config';
import { createWorker } from '../../src/workers/worker';
import { workflowBundle } from './temporal'; // also installs a WARN-level Temporal runtime logger

async function main(): Promise<void> {
  const config = loadConfig();
  const pauseFile = process.env.CAK_TEST_PAUSE_BEFORE_STORE;
  const { worker } = await createWorker(config, {
    workflowBundle: workflowBundle(),
    ...(pauseFile
      ? {
          issuanceHooks: {
            beforeStore: async (issuanceId: string) => {
              writeFileSync(pauseFile, issuanceId);
              await new Promise(() => undefined); // until SIGKILL
            },
          },
        }
      : {}),
  });
  process.stdout.write('worker-ready\n');
  await worker.run();
}

main().catch((err: unknown) => {
  process.stderr.write(`worker-process failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
