import type { Server } from 'node:http';
import express from 'express';
import { loadConfig, type Config } from '../config';
import { createLogger } from '../observability/logger';

/**
 * A local stand-in for the AIR Credential platform, the embedded default when AIR_PLATFORM_URL is
 * not set. Never run it in production: it derives CAK key pairs from a local secret.
 */
export async function startEmulator(config: Config): Promise<{ server: Server; url: string; close(): Promise<void> }> {
  const log = createLogger({ level: config.LOG_LEVEL, name: 'emulator' });
  const app = express();
  app.disable('x-powered-by');
  app.get('/healthz', (_req, res) => {
    res.json({ status: 'ok', emulator: true });
  });
  const server = await new Promise<Server>((resolve, reject) => {
    const s = app.listen(config.EMULATOR_PORT, config.EMULATOR_HOST, () => resolve(s)).once('error', reject);
  });
  const url = `http://${config.EMULATOR_HOST}:${config.EMULATOR_PORT}`;
  log.info({ url }, 'AIR platform emulator listening');
  return { server, url, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

if (require.main === module) {
  startEmulator(loadConfig())
    .then((emulator) => {
      const stop = () => void emulator.close().then(() => process.exit(0));
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    })
    .catch((err: unknown) => {
      process.stderr.write(`emulator failed: ${err instanceof Error ? err.stack : String(err)}\n`);
      process.exit(1);
    });
}
