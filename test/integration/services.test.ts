import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import request from 'supertest';
import { mongoReady, startDatabase, startTemporal, stopService, type Paths } from '../../scripts/lib/local-services';
import { pathsFrom } from '../../scripts/services';
import { startApi, type ApiHandle } from '../../src/api/server';
import { freePort } from '../support/ports';
import { testConfig } from '../support/temporal';

const quiet = () => undefined;

function runScript(script: string, env: NodeJS.ProcessEnv) {
  return spawnSync(process.execPath, ['-r', '@swc-node/register', script, 'up'], {
    env: { ...process.env, ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

describe('local services', () => {
  const config = testConfig();

  it('starting them again reuses what runs and starts nothing', async () => {
    const paths = pathsFrom(config);
    const lines: string[] = [];
    const temporal = await startTemporal(
      paths,
      { port: config.LOCAL_TEMPORAL_PORT, uiPort: config.LOCAL_TEMPORAL_UI_PORT, namespace: config.TEMPORAL_NAMESPACE },
      (l) => lines.push(l),
    );
    const database = await startDatabase(paths, { port: config.LOCAL_MONGO_PORT }, (l) => lines.push(l));
    expect(temporal.started).toBe(false);
    expect(database.started).toBe(false);
    expect(lines.filter((l) => l.includes('already running'))).toHaveLength(2);
    expect(lines.some((l) => l.includes('starting'))).toBe(false);
  });

  it('`services up` run twice in a row says it reuses both servers', () => {
    const run = runScript('scripts/services.ts', {});
    expect(run.status).toBe(0);
    expect(run.stderr).toMatch(/temporal: already running/);
    expect(run.stderr).toMatch(/database: already running/);
    expect(run.stderr).not.toMatch(/starting/);
  });
});

describe('/readyz follows the database', () => {
  let paths: Paths;
  let api: ApiHandle | undefined;
  let port: number;

  beforeAll(async () => {
    paths = { dataDir: mkdtempSync(join(tmpdir(), 'cak-readyz-')), toolsDir: resolve(testConfig().CAK_TOOLS_DIR) };
    port = await freePort();
    await startDatabase(paths, { port }, quiet);
  });

  afterAll(async () => {
    await api?.close();
    await stopService(paths, 'database');
    rmSync(paths.dataDir, { recursive: true, force: true });
  });

  it('answers 503 naming the database while it is stopped, and 200 once it is back', async () => {
    const config = testConfig({ MONGODB_URI: `mongodb://127.0.0.1:${port}/`, API_PORT: String(await freePort()) });
    api = await startApi(config);

    const up = await request(api.url).get('/readyz');
    expect(up.status).toBe(200);
    expect(up.body.checks).toEqual({ temporal: { status: 'up' }, database: { status: 'up' } });

    expect(await stopService(paths, 'database')).toBe(true);
    expect(await mongoReady(config.MONGODB_URI)).toBe(false);
    const down = await request(api.url).get('/readyz');
    expect(down.status).toBe(503);
    expect(down.body.status).toBe('not-ready');
    expect(down.body.checks.temporal).toEqual({ status: 'up' });
    expect(down.body.checks.database.status).toBe('down');
    expect((await request(api.url).get('/healthz')).status).toBe(200);

    await startDatabase(paths, { port }, quiet);
    const back = await request(api.url).get('/readyz');
    expect(back.status).toBe(200);
  });
});

describe('start-up with a bad setting', () => {
  it.each(['src/api/server.ts', 'src/workers/worker.ts'])('%s exits non-zero naming the variable', (entry) => {
    const run = spawnSync(process.execPath, ['-r', '@swc-node/register', entry], {
      env: { ...process.env, API_PORT: 'not-a-port', LOG_LEVEL: 'silent' },
      encoding: 'utf8',
      timeout: 30_000,
    });
    expect(run.status).not.toBe(0);
    expect(run.stderr).toContain('API_PORT');
  });
});
