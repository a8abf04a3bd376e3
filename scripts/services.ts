/**
 * `npm run services:up | services:down | services:status`: the local Temporal dev server and
 * MongoDB-wire database, real and pinned (see scripts/lib/local-services.ts).
 */
import { resolve } from 'node:path';
import { loadConfig, type Config } from '../src/config';
import {
  ensureSearchAttributes,
  mongoReady,
  readRecord,
  startDatabase,
  startTemporal,
  stopService,
  temporalReady,
  waitUntil,
  type Paths,
} from './lib/local-services';

const say = (line: string) => process.stderr.write(`[services] ${line}\n`);

export function pathsFrom(config: Config): Paths {
  return { dataDir: resolve(config.CAK_DATA_DIR), toolsDir: resolve(config.CAK_TOOLS_DIR) };
}

export async function servicesUp(config: Config): Promise<void> {
  const paths = pathsFrom(config);
  if (config.explicit.temporal) {
    say(`temporal: using TEMPORAL_ADDRESS=${config.TEMPORAL_ADDRESS}`);
    await waitUntil(
      `Temporal at ${config.TEMPORAL_ADDRESS}`,
      () => temporalReady(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE),
      30_000,
    );
    await ensureSearchAttributes(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE);
  } else {
    await startTemporal(
      paths,
      {
        port: config.LOCAL_TEMPORAL_PORT,
        uiPort: config.LOCAL_TEMPORAL_UI_PORT,
        namespace: config.TEMPORAL_NAMESPACE,
        codecEndpoint: `http://${config.API_HOST}:${config.API_PORT}/codec`,
      },
      say,
    );
  }
  if (config.explicit.mongo) {
    say('database: using MONGODB_URI from the environment');
    await waitUntil('the database at MONGODB_URI', () => mongoReady(config.MONGODB_URI), 30_000);
  } else {
    await startDatabase(paths, { port: config.LOCAL_MONGO_PORT }, say);
  }
  say(
    `ready: Temporal ${config.TEMPORAL_ADDRESS} (Web UI ${config.TEMPORAL_UI_URL}), database ${config.explicit.mongo ? '(MONGODB_URI)' : config.MONGODB_URI}`,
  );
}

async function servicesDown(config: Config): Promise<void> {
  const paths = pathsFrom(config);
  for (const name of ['temporal', 'database']) {
    say(`${name}: ${(await stopService(paths, name)) ? 'stopped' : 'nothing started by this script'}`);
  }
}

async function servicesStatus(config: Config): Promise<void> {
  const paths = pathsFrom(config);
  const temporal = await temporalReady(config.TEMPORAL_ADDRESS, config.TEMPORAL_NAMESPACE);
  const database = await mongoReady(config.MONGODB_URI);
  const own = (name: string) =>
    readRecord(paths, name) ? `started by this script, pid ${readRecord(paths, name)?.pid}` : 'not ours';
  say(`temporal ${config.TEMPORAL_ADDRESS}: ${temporal ? 'up' : 'down'} (${own('temporal')})`);
  say(`database: ${database ? 'up' : 'down'} (${own('database')})`);
  if (!temporal || !database) process.exitCode = 1;
}

if (require.main === module) {
  const command = process.argv[2] ?? 'up';
  const actions: Record<string, (c: Config) => Promise<void>> = {
    up: servicesUp,
    down: servicesDown,
    status: servicesStatus,
  };
  const action = actions[command];
  if (!action) {
    say(`unknown command "${command}"; use up, down or status`);
    process.exit(2);
  }
  action(loadConfig())
    .then(() => process.exit())
    .catch((err: unknown) => {
      say(err instanceof Error ? err.message : String(err));
      process.exit(1);
    });
}
