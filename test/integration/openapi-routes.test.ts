import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Client } from '@temporalio/client';
import express, { Router, type Express } from 'express';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import type { Db } from 'mongodb';
import { z } from 'zod';
import * as admin from '../../src/api/admin';
import { createApp } from '../../src/api/app';
import { authorizationApiDeps, type AuthorizationApiDeps } from '../../src/api/authorization-wiring';
import { receiveAuthorizationCallback } from '../../src/api/callbacks';
import * as codec from '../../src/api/codec-routes';
import { getHealth, getReadiness } from '../../src/api/health';
import { createIssuance, getIssuance } from '../../src/api/issuances';
import { getPartnerJwks } from '../../src/api/jwks';
import { buildOpenApiDocument, errorsOf, getOpenApi, ROUTES } from '../../src/api/openapi';
import { createPartnerToken } from '../../src/api/partner-tokens';
import type { Route } from '../../src/api/routes';
import { startApi, type ApiHandle } from '../../src/api/server';
import { getVerifierData, getVerifierPackage, type CurrentData } from '../../src/api/verifier';
import { DEV_ADMIN_TOKEN, DEV_API_KEY } from '../../src/config';
import { authorizationIdFor, authorizationWorkflowId } from '../../src/domain/callback';
import { createLogger } from '../../src/observability/logger';
import { signedCallback } from './callbacks-harness';
import { openDb } from '../support/system';
import { connectClient, testConfig, uniqueId } from '../support/temporal';

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

type Doc = { paths: Record<string, Record<string, { responses: Record<string, ResponseObject> }>> };
type ResponseObject = { content?: Record<string, { schema: unknown }> };
const doc = buildOpenApiDocument() as unknown as Doc;

/** A JSON Schema of the document with every `$ref` replaced by what it points at (answers are not recursive). */
function deref(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(deref);
  if (value === null || typeof value !== 'object') return value;
  const ref = (value as { $ref?: unknown }).$ref;
  if (typeof ref === 'string') {
    return deref(
      ref
        .slice(2)
        .split('/')
        .reduce<unknown>((node, key) => (node as Record<string, unknown>)[key], doc),
    );
  }
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, deref(v)]));
}

/** Which kinds of answer of each route were checked against the document. */
const checked = new Map<string, Set<'success' | 'error'>>();

/**
 * Checks a real answer against the generated document: the route declares its status, its media
 * type is the declared one, and its body validates against the JSON Schema the document has for
 * that status (turned back into a validator by `z.fromJSONSchema`).
 */
async function expectDocumented(route: Route, res: Response): Promise<Response> {
  const where = `${route.operationId} ${res.status}`;
  const declared = doc.paths[route.path]![route.method]!.responses[String(res.status)];
  const text = await res.text();
  if (!declared) throw new Error(`${where}: a status the document does not declare; body ${text.slice(0, 300)}`);
  const [media] = Object.entries(declared.content ?? {});
  if (!media) {
    expect(text).toBe('');
  } else {
    const [mediaType, { schema }] = media;
    expect(`${where} ${res.headers.get('content-type')}`).toMatch(new RegExp(`^${where} ${mediaType}`));
    const body: unknown = mediaType === 'application/json' ? JSON.parse(text) : text;
    const parsed = z.fromJSONSchema(deref(schema) as Parameters<typeof z.fromJSONSchema>[0]).safeParse(body);
    if (!parsed.success) {
      throw new Error(`${where}: ${z.prettifyError(parsed.error)}\nbody: ${text.slice(0, 500)}`);
    }
  }
  const kinds = checked.get(route.operationId) ?? new Set();
  kinds.add(res.status >= 400 ? 'error' : 'success');
  checked.set(route.operationId, kinds);
  return new Response(res.status === 204 ? null : text, { status: res.status, headers: res.headers });
}

const json = (body: unknown, headers: Record<string, string> = {}) => ({
  headers: { 'content-type': 'application/json', ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
const apiKey = { 'x-api-key': DEV_API_KEY };
const adminAuth = { authorization: `Bearer ${DEV_ADMIN_TOKEN}` };

describe('the OpenAPI document against the routes the API registers and their real answers', () => {
  const config = {
    ...testConfig({
      MONGODB_DB: uniqueId('openapi').slice(0, 40),
      TEMPORAL_TASK_QUEUE: uniqueId('tq-openapi'),
      PUBLIC_RATE_LIMIT_PER_MINUTE: '3',
    }),
    API_PORT: 0,
    API_METRICS_PORT: 0,
  };
  let api: ApiHandle;
  let app: Express;
  // A second app on the same database, for answers that need data only a worker would make: a
  // package source of its own (the Verifier's manifest and package), a re-drive that always finds
  // its run waiting, and readiness probes that fail.
  let db: { db: Db; close(): Promise<void> };
  let temporal: Client;
  let deps: AuthorizationApiDeps;
  let other: Server;
  let otherUrl: string;
  const call = (base: () => string, method: string, path: string, init: RequestInit = {}) =>
    fetch(`${base()}${path}`, { method, ...init });
  const A = (method: string, path: string, init?: RequestInit) => call(() => api.url, method, path, init);
  const B = (method: string, path: string, init?: RequestInit) => call(() => otherUrl, method, path, init);

  const verifierDid = 'did:air:id:openapi-verifier';
  const consent = (userId: string) => ({ userId, verifierDid, schemaId: 'kyc-basic' });
  const active = consent('openapi-active');
  const toRevoke = consent('openapi-revoke');
  const unrouted = consent('openapi-unrouted');

  beforeAll(async () => {
    api = await startApi(config);
    // app.listen() makes an http.Server whose request listener is the app itself
    app = api.server.listeners('request')[0] as Express;
    db = await openDb(config);
    const now = Date.now();
    for (const [payload, state] of [
      [active, 'active'],
      [toRevoke, 'active'],
      [unrouted, 'unrouted'],
    ] as const) {
      const id = authorizationIdFor(config.ID_HMAC_SECRET, payload);
      await db.db.collection<Record<string, unknown> & { _id: string }>('authorizations').insertOne({
        _id: id,
        ...payload,
        state,
        handlers: [],
        redriven: 0,
        workflowId: authorizationWorkflowId(id),
        firstSeenAt: new Date(now),
        updatedAt: new Date(now),
        ...(state === 'active' ? { accessFrom: new Date(now), accessUntil: new Date(now + 3_600_000) } : {}),
      });
    }
    temporal = await connectClient(config);
    deps = authorizationApiDeps(config, db.db, temporal, createLogger({ level: 'silent', name: 'openapi-test' }));
    const current: CurrentData = {
      recordId: 'rec-openapi',
      version: 1,
      manifest: [
        {
          itemId: 'item-1',
          kind: 'id-front',
          contentType: 'image/png',
          curve: 'secp256r1',
          packageId: 'pkg-1',
        } as CurrentData['manifest'][number],
      ],
    };
    const down = () => Promise.reject(new Error('down'));
    const otherApp = createApp({
      log: createLogger({ level: 'silent', name: 'openapi-test' }),
      probes: { temporal: down, database: down },
      authorization: {
        callbacks: deps.callbacks,
        verifier: {
          ...deps.verifier,
          packages: {
            recordIdFor: () => current.recordId,
            current: () => Promise.resolve(current),
            openPackage: () => Promise.resolve(Buffer.from('inner package bytes')),
          },
        },
        admin: { ...deps.admin, redrive: () => Promise.resolve(true) },
      },
    });
    other = otherApp.listen(0, '127.0.0.1');
    await new Promise((resolve) => other.once('listening', resolve));
    otherUrl = `http://127.0.0.1:${(other.address() as AddressInfo).port}`;
  });
  afterAll(async () => {
    await new Promise((resolve) => other?.close(resolve));
    await deps?.close();
    await temporal?.connection.close();
    await api.close();
    await db?.db.dropDatabase().catch(() => undefined);
    await db?.close();
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

  it('declares every registered route, and declares no route that is not registered', () => {
    const registered = registeredRoutes(app);
    const declared = ROUTES.map((o) => `${o.method} ${o.path}`).sort();
    expect(registered.length).toBeGreaterThanOrEqual(20);
    expect(registered.filter((r) => !declared.includes(r))).toEqual([]); // undeclared routes
    expect(declared.filter((d) => !registered.includes(d))).toEqual([]); // stale declarations
    expect(new Set(registered).size).toBe(registered.length);
  });

  it('serves the document at GET /openapi.json, public and cacheable', async () => {
    const res = await expectDocumented(getOpenApi, await A('GET', '/openapi.json'));
    expect(res.headers.get('cache-control')).toBe('public, max-age=300');
    expect(await res.json()).toEqual(JSON.parse(JSON.stringify(buildOpenApiDocument())));
  });

  it('the answer check refuses an answer the document does not allow (negative control)', async () => {
    const answer = (status: number, body: unknown) =>
      new Response(JSON.stringify(body), { status, headers: { 'content-type': 'application/json' } });
    await expect(expectDocumented(getHealth, answer(200, { status: 'up' }))).rejects.toThrow(/getHealth 200/);
    await expect(expectDocumented(getHealth, answer(418, {}))).rejects.toThrow(/does not declare/);
    const wrongCode = answer(404, { error: { code: 'NOT_FOUND', message: 'x' } });
    await expect(expectDocumented(getIssuance, wrongCode)).rejects.toThrow(/getIssuance 404/);
  });

  it('health and readiness', async () => {
    await expectDocumented(getHealth, await A('GET', '/healthz'));
    expect((await expectDocumented(getReadiness, await A('GET', '/readyz'))).status).toBe(200);
    expect((await expectDocumented(getReadiness, await B('GET', '/readyz'))).status).toBe(503);
  });

  it('the JWKS, until its per-address limit', async () => {
    expect((await expectDocumented(getPartnerJwks, await A('GET', '/.well-known/jwks.json'))).status).toBe(200);
    let res = await A('GET', '/.well-known/jwks.json');
    for (let i = 0; i < 5 && res.status !== 429; i++) res = await A('GET', '/.well-known/jwks.json');
    expect((await expectDocumented(getPartnerJwks, res)).status).toBe(429);
  });

  it('partner tokens', async () => {
    const minted = await A('POST', '/v1/partner-tokens', json({ scope: 'verify' }, apiKey));
    expect((await expectDocumented(createPartnerToken, minted)).status).toBe(201);
    const refused = await A('POST', '/v1/partner-tokens', json({ scope: 'verify' }));
    expect((await expectDocumented(createPartnerToken, refused)).status).toBe(401);
  });

  it('issuances: accepted, described, refused', async () => {
    const example = createIssuance.body!.content['application/json']!.examples.fieldsOnly!.value;
    const headers = { ...apiKey, 'idempotency-key': uniqueId('openapi') };
    const accepted = await expectDocumented(createIssuance, await A('POST', '/v1/issuances', json(example, headers)));
    expect(accepted.status).toBe(202);
    const { statusUrl } = (await accepted.json()) as { statusUrl: string };
    const refused = await A('POST', '/v1/issuances', json({ ...(example as object), surprise: true }, apiKey));
    expect((await expectDocumented(createIssuance, refused)).status).toBe(400);
    expect((await expectDocumented(getIssuance, await A('GET', statusUrl, { headers: apiKey }))).status).toBe(200);
    const unknown = await A('GET', `/v1/issuances/iss_${'A'.repeat(24)}`, { headers: apiKey });
    expect((await expectDocumented(getIssuance, unknown)).status).toBe(404);
  });

  it('the authorization callback: acknowledged, and refused unsigned', async () => {
    const { body, headers } = signedCallback(consent('openapi-callback'));
    const acked = await expectDocumented(
      receiveAuthorizationCallback,
      await A('POST', '/v1/cak/callbacks', { headers, body }),
    );
    expect([200, 202]).toContain(acked.status);
    const unsigned = await A('POST', '/v1/cak/callbacks', json(consent('openapi-callback')));
    expect((await expectDocumented(receiveAuthorizationCallback, unsigned)).status).toBe(401);
  });

  it('the Verifier API and the admin routes', async () => {
    const { privateKey, publicKey } = await generateKeyPair('ES256');
    const { x, y } = await exportJWK(publicKey);
    const key = { verifierDid, jwk: { kty: 'EC', crv: 'P-256', x, y, kid: 'openapi-key' } };
    const put = await A('PUT', '/v1/admin/verifiers/keys', json(key, adminAuth));
    expect((await expectDocumented(admin.putVerifierKey, put)).status).toBe(200);
    const badKey = await A('PUT', '/v1/admin/verifiers/keys', json({ ...key, jwk: { kty: 'RSA' } }, adminAuth));
    expect((await expectDocumented(admin.putVerifierKey, badKey)).status).toBe(400);

    const jwt = await new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: 'openapi-key' })
      .setIssuer(verifierDid)
      .setSubject(verifierDid)
      .setAudience('cak-issuer')
      .setIssuedAt()
      .setExpirationTime('5m')
      .sign(privateKey);
    const query = `/v1/verifier/data?userId=${active.userId}&schemaId=${active.schemaId}`;
    const manifest = await B('GET', query, { headers: { authorization: `Bearer ${jwt}` } });
    const { items } = (await (await expectDocumented(getVerifierData, manifest)).json()) as {
      items: { url: string }[];
    };
    expect(manifest.status).toBe(200);
    expect((await expectDocumented(getVerifierData, await A('GET', query))).status).toBe(401);
    const pkg = await expectDocumented(getVerifierPackage, await B('GET', items[0]!.url));
    expect(pkg.status).toBe(200);
    const forged = await A('GET', `/v1/verifier/packages/${'a'.repeat(20)}.${'b'.repeat(43)}`);
    expect((await expectDocumented(getVerifierPackage, forged)).status).toBe(403);

    const list = await A('GET', '/v1/admin/authorizations?state=active', { headers: adminAuth });
    expect((await expectDocumented(admin.listAuthorizationsRoute, list)).status).toBe(200);
    const listAnon = await A('GET', '/v1/admin/authorizations');
    expect((await expectDocumented(admin.listAuthorizationsRoute, listAnon)).status).toBe(401);

    const post = (path: string, body: unknown) => A('POST', path, json(body, adminAuth));
    const revoked = await post('/v1/admin/authorizations/revoke', toRevoke);
    expect((await expectDocumented(admin.revokeAuthorization, revoked)).status).toBe(200);
    const unknown = await post('/v1/admin/authorizations/revoke', consent('openapi-nobody'));
    expect((await expectDocumented(admin.revokeAuthorization, unknown)).status).toBe(404);
    const reinstated = await post('/v1/admin/authorizations/reinstate', toRevoke);
    expect((await expectDocumented(admin.reinstateAuthorization, reinstated)).status).toBe(200);
    const invalid = await post('/v1/admin/authorizations/reinstate', {});
    expect((await expectDocumented(admin.reinstateAuthorization, invalid)).status).toBe(400);
    const notRedrivable = await post('/v1/admin/authorizations/redrive', toRevoke);
    expect((await expectDocumented(admin.redriveAuthorizationRoute, notRedrivable)).status).toBe(409);
    const redriven = await B('POST', '/v1/admin/authorizations/redrive', json(unrouted, adminAuth));
    expect((await expectDocumented(admin.redriveAuthorizationRoute, redriven)).status).toBe(202);

    const removed = await post('/v1/admin/verifiers/keys/remove', { verifierDid, kid: 'openapi-key' });
    expect((await expectDocumented(admin.removeVerifierKey, removed)).status).toBe(200);
    const anonymous = await A('POST', '/v1/admin/verifiers/keys/remove', json({ verifierDid, kid: 'openapi-key' }));
    expect((await expectDocumented(admin.removeVerifierKey, anonymous)).status).toBe(401);
  });

  it('the codec endpoint', async () => {
    const evil = { origin: 'https://evil.example' };
    const [signInForm, signIn, signOut, encode, decode] = codec.CODEC_ROUTES;
    expect((await expectDocumented(signInForm!, await A('GET', '/codec/session'))).status).toBe(200);
    expect((await expectDocumented(signInForm!, await A('GET', '/codec/session', { headers: evil }))).status).toBe(403);
    const form = (token: string) => ({
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ token }).toString(),
    });
    const token = config.CODEC_AUTH_TOKENS[0]!;
    expect((await expectDocumented(signIn!, await A('POST', '/codec/session', form(token)))).status).toBe(200);
    expect((await expectDocumented(signIn!, await A('POST', '/codec/session', form('wrong-token')))).status).toBe(401);
    expect((await expectDocumented(signOut!, await A('DELETE', '/codec/session'))).status).toBe(204);
    expect((await expectDocumented(signOut!, await A('DELETE', '/codec/session', { headers: evil }))).status).toBe(403);

    const bearer = { authorization: `Bearer ${token}` };
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const payloads = { payloads: [{ metadata: { encoding: b64('json/plain') }, data: b64('{"a":1}') }] };
    const encoded = await expectDocumented(encode!, await A('POST', '/codec/encode', json(payloads, bearer)));
    expect(encoded.status).toBe(200);
    expect((await expectDocumented(encode!, await A('POST', '/codec/encode', json(payloads)))).status).toBe(401);
    const decoded = await A('POST', '/codec/decode', json(await encoded.text(), bearer));
    expect((await expectDocumented(decode!, decoded)).status).toBe(200);
    const invalid = await A('POST', '/codec/decode', json({ payloads: 'none' }, bearer));
    expect((await expectDocumented(decode!, invalid)).status).toBe(400);
  });

  it('checked a success and an error answer of every declared route', () => {
    // A route whose only refusal is 500 INTERNAL has no error a test can provoke.
    const unprovokable = ROUTES.filter(
      (r) => Object.keys(errorsOf(r)).join() === '500' && Object.keys(r.responses).every((s) => Number(s) < 400),
    ).map((r) => r.operationId);
    expect(unprovokable.sort()).toEqual(['getHealth', 'getOpenApi']);
    const missing = ROUTES.flatMap((r) =>
      (['success', 'error'] as const)
        .filter((kind) => !checked.get(r.operationId)?.has(kind))
        .filter((kind) => kind === 'success' || !unprovokable.includes(r.operationId))
        .map((kind) => `${r.operationId}: no ${kind} answer checked`),
    );
    expect(missing).toEqual([]);
  });
});
