import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { Agent, createServer, request, type IncomingHttpHeaders, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net';
import { startApi } from '../../src/api/server';
import { DEV_API_KEY, type Config } from '../../src/config';
import { eventually } from '../support/eventually';
import { freePort } from '../support/ports';
import { testConfig, uniqueId } from '../support/temporal';
import { openDb, uniqueDbName } from '../support/system';

jest.setTimeout(240_000);

/** Start-up and shutdown of the API process: a taken port, a graceful stop, a rolling restart behind a proxy. */

const sleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

async function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>(
    (_, reject) => (timer = setTimeout(() => reject(new Error(`${what}: over ${ms} ms`)), ms)),
  );
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

interface Child {
  kill(signal: NodeJS.Signals): void;
  exited: Promise<number | null>;
  stderr(): string;
}

/** A process entry point (`src/.../server.ts`), configured like production: by its environment. */
function spawnEntry(entry: string, env: NodeJS.ProcessEnv): Child {
  const child = spawn(process.execPath, ['-r', '@swc-node/register', entry], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return {
    kill: (signal) => void (child.exitCode === null && child.kill(signal)),
    exited,
    stderr: () => stderr,
  };
}

async function dropDatabase(config: Pick<Config, 'MONGODB_URI' | 'MONGODB_DB'>): Promise<void> {
  const database = await openDb(config as Config);
  await database.db.dropDatabase().catch(() => undefined);
  await database.close();
}

describe('a taken port', () => {
  it.each([
    ['api', 'src/api/server.ts', 'API_PORT'],
    ['emulator', 'src/emulator/server.ts', 'EMULATOR_PORT'],
  ])('the %s process exits non-zero and names the address', async (name, entry, variable) => {
    const holder = createTcpServer();
    await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
    const port = (holder.address() as AddressInfo).port;
    const child = spawnEntry(entry, {
      LOG_LEVEL: 'silent',
      MONGODB_DB: uniqueDbName('listen'),
      [variable]: String(port),
    });
    try {
      expect(await within(child.exited, 60_000, `${name} exit`)).toBe(1);
      expect(child.stderr()).toContain(`${name} failed: cannot listen on 127.0.0.1:${port}: EADDRINUSE`);
    } finally {
      child.kill('SIGKILL');
      holder.close();
    }
  });
});

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
}

/** A request whose body is sent only when `finish` is called: in flight until then. */
function slowPost(port: number, body: string): { finish(): void; answer: Promise<Answer | Error> } {
  const req = request({
    host: '127.0.0.1',
    port,
    method: 'POST',
    path: '/v1/cak/callbacks',
    agent: new Agent({ keepAlive: true }),
    headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
  });
  const answer = new Promise<Answer | Error>((resolve) => {
    req.once('response', (res) => {
      res.resume();
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers }));
    });
    req.once('error', resolve);
  });
  req.write(body.slice(0, 10));
  return { finish: () => void req.end(body.slice(10)), answer };
}

function get(port: number, path: string, agent: Agent): Promise<Answer & { body: string; socket: Socket }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent }, (res) => {
      let body = '';
      res.on('data', (chunk: Buffer) => (body += chunk.toString('utf8')));
      res.once('end', () => resolve({ status: res.statusCode!, headers: res.headers, body, socket: req.socket! }));
    });
    req.once('error', reject);
    req.end();
  });
}

describe('graceful stop', () => {
  it('turns /readyz to 503, stops accepting, finishes requests in flight, closes idle connections, cuts what outlives the grace', async () => {
    const config = testConfig({
      MONGODB_DB: uniqueDbName('stop'),
      API_PORT: String(await freePort()),
      API_SHUTDOWN_DELAY_MS: '1000',
      API_SHUTDOWN_GRACE_MS: '1500',
    });
    const api = await startApi(config);
    const port = config.API_PORT;
    try {
      const idle = await get(port, '/healthz', new Agent({ keepAlive: true }));
      expect(idle.status).toBe(200);
      const idleClosed = new Promise((resolve) => idle.socket.once('close', resolve));
      const seen = new Promise<void>((resolve) => {
        let count = 0;
        api.server.on('request', () => ++count === 2 && resolve());
      });
      const callback = JSON.stringify({ userId: 'user-stop', verifierDid: 'did:air:v', schemaId: 'kyc-basic' });
      const finishing = slowPost(port, callback);
      const stuck = slowPost(port, callback);
      await seen;

      const started = Date.now();
      const closed = api.close();
      // the delay: still serving, not ready, and every answer closes its connection
      const readiness = await get(port, '/readyz', new Agent({ keepAlive: true }));
      expect(readiness).toMatchObject({ status: 503, headers: { connection: 'close' } });
      expect(JSON.parse(readiness.body)).toEqual({ status: 'draining' });
      // then: no new connection, idle keep-alive connections closed
      await within(idleClosed, 5_000, 'idle connection closed');
      expect(Date.now() - started).toBeGreaterThanOrEqual(950);
      await expect(get(port, '/healthz', new Agent())).rejects.toMatchObject({ code: 'ECONNREFUSED' });
      // a request in flight finishes (a refusal here: it is not signed) and its connection closes
      finishing.finish();
      expect(await finishing.answer).toMatchObject({ status: 401, headers: { connection: 'close' } });
      // one that outlives the grace is cut
      expect(await stuck.answer).toMatchObject({ message: expect.stringMatching(/socket hang up|ECONNRESET/) });
      await within(closed, 10_000, 'close');
      expect(Date.now() - started).toBeGreaterThanOrEqual(1000 + 1500 - 50);
    } finally {
      await api.close();
      await dropDatabase(config);
    }
  });
});

interface Upstream {
  port: number;
  ready: boolean;
  served: number;
}

/**
 * A minimal reverse proxy as a platform runs one: it sends requests to the upstreams whose last
 * /readyz (polled every 100 ms) was 200, to all of them when none is (fail open, like a cloud load
 * balancer), and retries a request once on the other upstream when its connection fails.
 */
async function startProxy(upstreams: Upstream[]): Promise<{ url: string; close(): Promise<void> }> {
  const agent = new Agent({ keepAlive: true });
  let turn = 0;
  let polling = true;
  const poll = async (upstream: Upstream) => {
    while (polling) {
      const answer = fetch(`http://127.0.0.1:${upstream.port}/readyz`, { signal: AbortSignal.timeout(3_000) });
      upstream.ready = await answer.then(
        (res) => res.status === 200,
        () => false,
      );
      await sleep(100); // the health-check interval of the proxy being modelled, not a wait for anything
    }
  };
  const polls = upstreams.map(poll);
  const pick = (not?: Upstream) => {
    const candidates = upstreams.filter((u) => u !== not);
    const ready = candidates.filter((u) => u.ready);
    const pool = ready.length > 0 ? ready : candidates;
    return pool[turn++ % pool.length]!;
  };
  const forward = (upstream: Upstream, method: string, path: string, headers: IncomingHttpHeaders) =>
    new Promise<{ status: number; body: Buffer }>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port: upstream.port, method, path, headers, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.once('end', () => {
          upstream.served += 1;
          resolve({ status: res.statusCode!, body: Buffer.concat(chunks) });
        });
        res.once('error', reject);
      });
      req.once('error', reject);
      req.end();
    });
  const server: Server = createServer((req, res) => {
    const { connection: _hopByHop, ...headers } = req.headers;
    const first = pick();
    forward(first, req.method!, req.url!, headers)
      .catch(() => forward(pick(first), req.method!, req.url!, headers))
      .then(
        (answer) => res.writeHead(answer.status, { 'content-type': 'application/json' }).end(answer.body),
        (err: unknown) => res.writeHead(502).end(`upstream connection failed twice: ${String(err)}`),
      );
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    async close() {
      polling = false;
      await Promise.all(polls);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      agent.destroy();
    },
  };
}

const until = (condition: () => boolean, timeoutMs: number, what: string) =>
  eventually(condition, (met) => met, { what, timeoutMs, intervalMs: 50 });

describe('rolling restart of two API instances behind a proxy', () => {
  it('loses no request', async () => {
    const shared = {
      LOG_LEVEL: 'warn',
      MONGODB_DB: uniqueDbName('rolling'),
      TEMPORAL_TASK_QUEUE: uniqueId('tq-rolling'),
      API_RATE_LIMIT_PER_MINUTE: '1000000',
    };
    const upstreams: Upstream[] = [];
    for (let i = 0; i < 2; i++) upstreams.push({ port: await freePort(), ready: false, served: 0 });
    const start = (u: Upstream) => spawnEntry('src/api/server.ts', { ...shared, API_PORT: String(u.port) });
    const children = upstreams.map(start);
    const proxy = await startProxy(upstreams);

    const outcomes: (number | string)[] = [];
    let loading = true;
    let load: Promise<unknown> = Promise.resolve();
    try {
      await until(() => upstreams.every((u) => u.ready), 60_000, 'both instances ready');
      // a steady stream: authenticated lookups of an issuance that does not exist (auth, database, 404)
      load = Promise.all(
        Array.from({ length: 4 }, async () => {
          const deadline = Date.now() + 120_000;
          while (loading && outcomes.length < 20_000 && Date.now() < deadline) {
            const id = `iss_${randomBytes(18).toString('base64url')}`;
            const answer = fetch(`${proxy.url}/v1/issuances/${id}`, { headers: { 'x-api-key': DEV_API_KEY } });
            outcomes.push(
              await answer.then(
                async (res) => (res.status === 404 ? 404 : `${res.status} ${await res.text()}`),
                (err: unknown) => `failed: ${String(err)}`,
              ),
            );
            await sleep(10); // pacing of the steady load (about 400 requests a second), not a wait for anything
          }
        }),
      );

      await until(() => upstreams.every((u) => u.served >= 20), 30_000, 'both instances serving');
      for (const [i, upstream] of upstreams.entries()) {
        children[i]!.kill('SIGTERM');
        const code = await within(children[i]!.exited, 30_000, `instance ${i} exit`);
        expect({ code, stderr: children[i]!.stderr() }).toEqual({ code: 0, stderr: expect.any(String) });
        children[i] = start(upstream);
        // back in the rotation before the other one goes
        const served = upstream.served;
        await until(() => upstream.ready && upstream.served >= served + 20, 60_000, `instance ${i} serving again`);
      }
    } finally {
      loading = false;
      await load;
      for (const child of children) child.kill('SIGKILL');
      await proxy.close();
      await dropDatabase(testConfig(shared));
    }

    expect(outcomes.length).toBeGreaterThan(100);
    const unexpected = outcomes.filter((o) => o !== 404);
    expect({ unexpected: unexpected.slice(0, 10), count: unexpected.length }).toEqual({ unexpected: [], count: 0 });
  });
});
