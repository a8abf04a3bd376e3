// Serves the issuance API alone (no worker, no emulator) for bench/upload.ts and reports its own memory.
import { readFileSync, writeFileSync } from 'node:fs';
import { MongoClient } from 'mongodb';
import { createApp } from '../src/api/app';
import { issuanceApiDeps } from '../src/api/issuance-wiring';
import { createLogger } from '../src/observability/logger';
import { connectClient, testConfig } from '../test/support/temporal';

const gc = (globalThis as { gc?: () => void }).gc ?? (() => undefined);

/** VmRSS (now) and VmHWM (peak since start, or since the last reset) of this process, in bytes. */
function memory(): { rss: number; peak: number } {
  const status = readFileSync('/proc/self/status', 'utf8');
  const kib = (name: string) => Number(new RegExp(`^${name}:\\s+(\\d+) kB`, 'm').exec(status)?.[1] ?? NaN) * 1024;
  return { rss: kib('VmRSS'), peak: kib('VmHWM') };
}

async function main(): Promise<void> {
  const config = testConfig({ API_RATE_LIMIT_PER_MINUTE: '100000' }); // the parent passes the DB and task queue
  const mongo = await MongoClient.connect(config.MONGODB_URI, { serverSelectionTimeoutMS: 5_000 });
  const temporal = await connectClient(config);
  const app = createApp({
    log: createLogger({ level: 'silent', name: 'api' }),
    probes: { temporal: () => Promise.resolve(), database: () => Promise.resolve() },
    issuance: issuanceApiDeps(config, mongo.db(config.MONGODB_DB), temporal),
  });
  const server = app.listen(0, '127.0.0.1', () => {
    process.send?.({ port: (server.address() as { port: number }).port });
  });
  process.on('message', (message) => {
    if (message === 'baseline') {
      gc();
      gc();
      writeFileSync('/proc/self/clear_refs', '5'); // resets VmHWM to the current RSS
      process.send?.(memory());
    } else if (message === 'peak') {
      process.send?.(memory());
    } else if (message === 'exit') {
      server.close();
      server.closeAllConnections();
      void Promise.all([mongo.close(), temporal.connection.close()]).then(() => process.exit(0));
    }
  });
}

main().catch((err: unknown) => {
  process.stderr.write(`upload child failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
