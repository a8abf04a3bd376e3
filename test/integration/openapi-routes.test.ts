import express, { Router, type Express } from 'express';
import { MongoClient } from 'mongodb';
import { buildOpenApiDocument, operations } from '../../src/api/openapi';
import { startApi, type ApiHandle } from '../../src/api/server';
import { testConfig, uniqueId } from '../support/temporal';

interface Layer {
  route?: { path: string | string[]; methods: Record<string, boolean> };
  handle?: { stack?: Layer[] };
  rawPath?: unknown;
  slash?: boolean;
}

/**
 * Every (method, path) an Express 5 app registers, in OpenAPI form. Routes are layers with a
 * `route`; mounted routers are layers whose `handle.stack` exists, mounted at `rawPath` (router
 * 2.3's record of the path given to `use`; '/' when mounted without one).
 */
function registeredRoutes(app: Express): string[] {
  const found: string[] = [];
  const walk = (stack: Layer[], prefix: string) => {
    for (const layer of stack) {
      if (layer.route) {
        const paths = Array.isArray(layer.route.path) ? layer.route.path : [layer.route.path];
        for (const path of paths) {
          for (const [method, on] of Object.entries(layer.route.methods)) {
            if (on && method !== '_all') found.push(`${method} ${toOpenApiPath(prefix + path)}`);
          }
        }
      } else if (layer.handle?.stack) {
        if (typeof layer.rawPath !== 'string') throw new Error('a router mounted without a string path');
        walk(layer.handle.stack, layer.slash || layer.rawPath === '/' ? prefix : prefix + layer.rawPath);
      }
    }
  };
  walk((app as unknown as { router: { stack: Layer[] } }).router.stack, '');
  return found.sort();
}

function toOpenApiPath(path: string): string {
  return path.replace(/:([A-Za-z0-9_]+)/g, '{$1}');
}

describe('the OpenAPI document against the routes the API registers', () => {
  const config = { ...testConfig({ MONGODB_DB: uniqueId('openapi').slice(0, 40) }), API_PORT: 0 };
  let api: ApiHandle;
  let app: Express;

  beforeAll(async () => {
    api = await startApi(config);
    // app.listen() makes an http.Server whose request listener is the app itself
    app = api.server.listeners('request')[0] as Express;
  });
  afterAll(async () => {
    await api.close();
    const mongo = new MongoClient(config.MONGODB_URI);
    await mongo
      .db(config.MONGODB_DB)
      .dropDatabase()
      .catch(() => undefined);
    await mongo.close();
  });

  it('finds prefixed and nested routers (the walker itself)', () => {
    const inner = Router();
    inner.get('/items/:id', (_req, res) => void res.end());
    inner.post('/items', (_req, res) => void res.end());
    const outer = Router();
    outer.use('/inner', inner);
    const probe = express();
    probe.use('/outer', outer);
    probe.put('/top', (_req, res) => void res.end());
    expect(registeredRoutes(probe)).toEqual(['get /outer/inner/items/{id}', 'post /outer/inner/items', 'put /top']);
  });

  it('documents every registered route, and documents no route that is not registered', () => {
    const registered = registeredRoutes(app);
    const documented = operations.map((o) => `${o.method} ${o.path}`).sort();
    expect(registered.length).toBeGreaterThanOrEqual(20);
    expect(registered.filter((r) => !documented.includes(r))).toEqual([]); // undocumented routes
    expect(documented.filter((d) => !registered.includes(d))).toEqual([]); // stale entries
    expect(new Set(registered).size).toBe(registered.length);
  });

  it('serves the document at GET /openapi.json, public and cacheable', async () => {
    const res = await fetch(`${api.url}/openapi.json`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^application\/json/);
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument())));
  });
});
