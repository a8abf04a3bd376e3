// Imported first by the tests in this folder: most of their runs fail or are cancelled on purpose,
// and the SDK logs each failed workflow and activity at WARN (its core, e.g. an activity completing
// after its run was cancelled, too). Only errors are shown.
import { DefaultLogger, Runtime } from '@temporalio/worker';
try {
  Runtime.install({
    logger: new DefaultLogger('ERROR'),
    telemetryOptions: { logging: { filter: { core: 'ERROR', other: 'ERROR' }, forward: {} } },
  });
} catch {
  /* already installed in this jest worker process */
}
