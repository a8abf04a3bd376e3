/**
 * The soak's reverse proxy in front of its API instances (`scripts/soak.ts`), doing what
 * docs/operations.md "Rolling restart of the API" asks of a proxy: it checks `GET /readyz` on every
 * instance every `checkEveryMs` and sends requests to the instances that last answered 200 (round
 * robin); it retries a request once on another instance when the connection fails before any answer
 * (refused or reset), and at once on a fresh connection when a reused idle one was closed under it;
 * idle upstream connections are kept for less than the API's 5 s keep-alive.
 *
 * While Temporal or the database is down every instance answers 503 without draining; the proxy
 * then falls back to those (they still answer: callbacks go to the inbox), never to one that is
 * draining or down. With no instance at all it answers 503 itself, as a load balancer would.
 */
import { Agent, createServer, request, type IncomingMessage, type ServerResponse } from 'node:http';
import { listen } from '../../src/net/listen';
import { eventually } from '../../test/support/eventually';

/**
 * What the last /readyz said: 200; 503 `draining`; another answer, or none in time on an open
 * connection (a dependency down: the readiness probe waits for it); the connection refused.
 */
export type UpstreamState = 'ready' | 'degraded' | 'draining' | 'down';

export interface Upstream {
  name: string;
  port: number;
  state: UpstreamState;
}

export interface ProxyStats {
  requests: number;
  /** requests sent again to another instance after a connection error */
  retried: number;
  /** answered 503 by the proxy itself: no instance ready or degraded */
  noUpstream: number;
  /** answered 502 by the proxy itself: the connection failed on both tries */
  failed: number;
}

export interface ProxyHandle {
  url: string;
  upstreams: Upstream[];
  stats: ProxyStats;
  /** resolves once the proxy's own check has seen `name` in `state` */
  waitFor(name: string, state: UpstreamState, timeoutMs: number): Promise<void>;
  close(): Promise<void>;
}

const agent = new Agent({ keepAlive: true, timeout: 2_000, maxSockets: 64 });

function probe(port: number): Promise<UpstreamState> {
  return new Promise((done) => {
    const req = request({ host: '127.0.0.1', port, path: '/readyz', agent: false, timeout: 3_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => done(res.statusCode === 200 ? 'ready' : body.includes('draining') ? 'draining' : 'degraded'));
      res.on('error', () => done('down'));
    });
    req.on('timeout', () => {
      done('degraded'); // connected, but slow to answer
      req.destroy();
    });
    req.on('error', () => done('down'));
    req.end();
  });
}

function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((done, fail) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => done(Buffer.concat(chunks)));
    req.on('error', fail);
  });
}

export async function startProxy(options: {
  port: number;
  upstreams: { name: string; port: number }[];
  checkEveryMs: number;
}): Promise<ProxyHandle> {
  const upstreams: Upstream[] = options.upstreams.map((u) => ({ ...u, state: 'down' }));
  const stats: ProxyStats = { requests: 0, retried: 0, noUpstream: 0, failed: 0 };
  let turn = 0;

  const pick = (exclude?: Upstream): Upstream | undefined => {
    const usable = (state: UpstreamState) => upstreams.filter((u) => u.state === state && u !== exclude);
    const candidates = usable('ready').length > 0 ? usable('ready') : usable('degraded');
    turn += 1;
    return candidates[turn % Math.max(1, candidates.length)];
  };

  /**
   * Forwards once; resolves true when an answer came (and was piped), false on a connection error
   * before it. A kept-alive socket the instance closed as we reused it (its idle timeout, or its
   * drain) fails with nothing sent: that one is retried at once on a fresh connection, as nginx does.
   */
  const forward = (upstream: Upstream, req: IncomingMessage, body: Buffer, res: ServerResponse, fresh = false) =>
    new Promise<boolean>((done) => {
      const out = request(
        {
          host: '127.0.0.1',
          port: upstream.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, 'content-length': String(body.length) },
          agent: fresh ? false : agent,
        },
        (answer) => {
          res.writeHead(answer.statusCode ?? 502, answer.headers);
          answer.pipe(res);
          answer.on('error', () => res.destroy());
          done(true);
        },
      );
      out.on('error', () => {
        if (out.reusedSocket && !fresh) forward(upstream, req, body, res, true).then(done, () => done(false));
        else done(false);
      });
      out.end(body);
    });

  const server = createServer((req, res) => {
    stats.requests += 1;
    void (async () => {
      const body = await readBody(req);
      const first = pick();
      if (first && (await forward(first, req, body, res))) return;
      const second = pick(first);
      if (second) {
        stats.retried += 1;
        if (await forward(second, req, body, res)) return;
      }
      if (first) stats.failed += 1;
      else stats.noUpstream += 1;
      if (!res.headersSent) res.writeHead(first ? 502 : 503, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: { code: first ? 'UPSTREAM_FAILED' : 'NO_UPSTREAM' } }));
    })().catch(() => res.destroy());
  });
  const port = await listen(server, options.port, '127.0.0.1');

  let stopped = false;
  const checks = (async () => {
    while (!stopped) {
      await Promise.all(upstreams.map(async (u) => (u.state = await probe(u.port))));
      await new Promise((r) => setTimeout(r, options.checkEveryMs));
    }
  })();

  return {
    url: `http://127.0.0.1:${port}`,
    upstreams,
    stats,
    async waitFor(name, state, timeoutMs) {
      const upstream = upstreams.find((u) => u.name === name);
      await eventually(
        () => upstream?.state,
        (s) => s === state,
        { what: `proxy: ${name} ${state}`, timeoutMs, intervalMs: 50 },
      );
    },
    async close() {
      stopped = true;
      await checks;
      await new Promise<void>((done) => {
        server.close(() => done());
        server.closeAllConnections();
      });
      agent.destroy();
    },
  };
}
