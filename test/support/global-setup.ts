import { mkdirSync, writeFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { bundleWorkflowCode } from '@temporalio/worker';
import { loadConfig } from '../../src/config';
import { servicesUp } from '../../scripts/services';

export const BUNDLE_PATH = resolve('.data/test/workflow-bundle.js');

/**
 * Runs once per jest run: makes sure the real local services are up (a no-op when they are) and
 * bundles the workflow code once, so each test's worker loads it in milliseconds instead of
 * re-running webpack.
 */
export default async function globalSetup(): Promise<void> {
  // each project that needs the services names this setup: once per jest run is enough
  if (process.env.CAK_TEST_SERVICES_READY === '1') return;
  process.env.CAK_TEST_SERVICES_READY = '1';
  // Every API a test starts (in-process or spawned) gets its metrics listener on a free port, not
  // the production default, so tests and engineers' parallel runs on one host never collide on it.
  process.env.API_METRICS_PORT ??= '0';
  await servicesUp(loadConfig());
  const { code } = await bundleWorkflowCode({
    workflowsPath: require.resolve('../../src/workflows'),
    // as the worker bundles it: failure messages and stacks are encoded by the codec too
    failureConverterPath: require.resolve('../../src/crypto/failure-converter'),
    logger: {
      log: () => undefined,
      trace: () => undefined,
      debug: () => undefined,
      info: () => undefined,
      warn: () => undefined,
      error: (m) => console.error(m),
    },
  });
  mkdirSync(resolve('.data/test'), { recursive: true });
  writeFileSync(BUNDLE_PATH, code);
}
