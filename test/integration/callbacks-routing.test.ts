import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Webhook } from 'standardwebhooks';
import { DEV_ADMIN_TOKEN, type Config } from '../../src/config';
import type { AuditEventTypeName, CallbackPayload } from '../../src/domain/authorization';
import { authorizationIdFor } from '../../src/domain/callback';
import { auditRepository } from '../../src/storage/audit';
import { freePort } from '../support/ports';
import { testAuditKeys } from '../support/temporal';
import { auditEventOf, eventually, postCallback, seedRecord, ACKED } from './callbacks-harness';
import { callbackConfig, startSystem, type System } from '../support/system';

jest.setTimeout(180_000);

interface Notification {
  headers: Record<string, string>;
  body: string;
  verified: boolean;
}

/** Routing by schema: grant-access + notify (signed, retried), log-only, unrouted and no-data with operator re-drive. */
describe('authorization routing', () => {
  let dir: string;
  let registryPath: string;
  let config: Config;
  let stack: System;
  let hookServer: Server;
  const notifications: Notification[] = [];
  let failNext = 1;
  let hookUrl: string;
  const run = randomUUID().slice(0, 8);
  const verifierDid = `did:air:verifier-${run}`;

  const registry = (extra: string, hookUrl: string) => `schemas:
  notified:
    programs: [prog-notified]
    allowedItemKinds: [fields]
    callback:
      handlers: [grant-access, notify]
      notifyUrl: ${hookUrl}
      accessWindow: 2s
  logged:
    programs: [prog-logged]
    allowedItemKinds: [fields]
    callback:
      handlers: [log-only]
      accessWindow: 2s
  later:
    programs: [prog-later]
    allowedItemKinds: [fields]
${extra}`;

  const admin = (path: string, body?: unknown) =>
    fetch(`${stack.api.url}${path}`, {
      method: body ? 'POST' : 'GET',
      headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      ...(body ? { body: JSON.stringify(body) } : {}),
    });
  const stateOf = async (key: CallbackPayload) =>
    (
      await stack.db
        .collection('authorizations')
        .findOne({ _id: authorizationIdFor(config.ID_HMAC_SECRET, key) } as never)
    )?.state as string | undefined;
  /** The audit step runs after the state is settled: wait for its event. */
  const auditEvent = (authorizationId: string, type: AuditEventTypeName = 'authorization') =>
    eventually(
      () => auditEventOf(stack.db, authorizationId, type),
      (e) => e !== null,
    );
  const key = (schemaId: string, n = 0): CallbackPayload => ({ userId: `user-${run}-${n}`, verifierDid, schemaId });

  beforeAll(async () => {
    const hookPort = await freePort();
    hookUrl = `http://127.0.0.1:${hookPort}/hook`;
    const notifySecret = 'whsec_' + Buffer.from(`notify-secret-for-${run}-000000`).toString('base64');
    hookServer = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const headers = req.headers as Record<string, string>;
        let verified = true;
        try {
          new Webhook(notifySecret).verify(body, headers);
        } catch {
          verified = false;
        }
        notifications.push({ headers, body, verified });
        const status = failNext > 0 ? 503 : 204;
        failNext -= 1;
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => hookServer.listen(hookPort, '127.0.0.1', () => r()));
    dir = mkdtempSync(join(tmpdir(), 'cak-routing-'));
    registryPath = join(dir, 'schemas.yaml');
    writeFileSync(registryPath, registry('', hookUrl));
    config = await callbackConfig({ SCHEMA_REGISTRY_PATH: registryPath, NOTIFY_SECRET: notifySecret });
    stack = await startSystem({ config, emulator: false, sealLoop: true });
  });

  afterAll(async () => {
    await stack?.close();
    await new Promise((r) => hookServer.close(r));
    rmSync(dir, { recursive: true, force: true });
  });

  it('grant-access + notify: access granted, one signed notification retried past a 503', async () => {
    const k = key('notified');
    await seedRecord(stack.db, k);
    expect(ACKED).toContain((await postCallback(stack.api.url, k)).status);
    await eventually(
      () => stateOf(k),
      (s) => s === 'active',
    );
    const mine = notifications.filter((n) => n.body.includes(k.userId));
    expect(mine).toHaveLength(2); // a 503, then the retry that got 204
    expect(mine.every((n) => n.verified)).toBe(true);
    const authorizationId = authorizationIdFor(config.ID_HMAC_SECRET, k);
    expect(new Set(mine.map((n) => n.headers['webhook-id']))).toEqual(new Set([authorizationId]));
    expect(JSON.parse(mine[0]!.body)).toEqual({ type: 'cak.authorization', authorizationId, ...k });
    const event = await auditEvent(authorizationId);
    expect(event?.data).toMatchObject({ outcome: 'active', handlers: 'grant-access,notify', failedHandlers: '' });
  });

  it('log-only: routed and audited, but no access', async () => {
    const k = key('logged');
    await seedRecord(stack.db, k);
    expect(ACKED).toContain((await postCallback(stack.api.url, k)).status);
    await eventually(
      () => stateOf(k),
      (s) => s === 'routed',
    );
    const event = await auditEvent(authorizationIdFor(config.ID_HMAC_SECRET, k));
    expect(event?.data).toMatchObject({ outcome: 'routed', handlers: 'log-only' });
    expect((await admin('/v1/admin/authorizations/redrive', k)).status).toBe(409);
  });

  it('no route: kept as unrouted, listed for operators, re-driven once a route exists', async () => {
    const k = key('later');
    await seedRecord(stack.db, k);
    expect(ACKED).toContain((await postCallback(stack.api.url, k)).status);
    await eventually(
      () => stateOf(k),
      (s) => s === 'unrouted',
    );
    const listed = (await (await admin('/v1/admin/authorizations?state=unrouted')).json()) as {
      authorizations: { userId: string; schemaId: string }[];
    };
    expect(listed.authorizations).toEqual([expect.objectContaining({ userId: k.userId, schemaId: 'later' })]);

    // the operator adds the route and restarts the worker, then re-drives
    writeFileSync(
      registryPath,
      registry('    callback:\n      handlers: [grant-access]\n      accessWindow: 2s\n', hookUrl),
    );
    await stack.restartWorker();
    const redrive = await admin('/v1/admin/authorizations/redrive', k);
    expect(redrive.status).toBe(202);
    await eventually(
      () => stateOf(k),
      (s) => s === 'active',
    );
    const audit = auditRepository(stack.db, testAuditKeys());
    const id = authorizationIdFor(config.ID_HMAC_SECRET, k);
    expect((await auditEvent(id))?.data).toMatchObject({ outcome: 'unrouted' });
    const redriven = await auditEvent(id, 'authorization.redriven');
    expect(redriven).toMatchObject({ type: 'authorization.redriven', data: { outcome: 'active' } });
    expect(await audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('no data held: acknowledged and kept as no-data, re-driven once the data is stored', async () => {
    const k = key('later', 1);
    expect(ACKED).toContain((await postCallback(stack.api.url, k)).status);
    await eventually(
      () => stateOf(k),
      (s) => s === 'no-data',
    );
    await seedRecord(stack.db, k);
    expect((await admin('/v1/admin/authorizations/redrive', k)).status).toBe(202);
    await eventually(
      () => stateOf(k),
      (s) => s === 'active',
    );
    expect((await admin('/v1/admin/authorizations/redrive', key('later', 99))).status).toBe(404);
  });

  it('admin routes need the admin credential', async () => {
    expect((await fetch(`${stack.api.url}/v1/admin/authorizations`)).status).toBe(401);
    const wrong = await fetch(`${stack.api.url}/v1/admin/authorizations`, {
      headers: { authorization: 'Bearer nope' },
    });
    expect(wrong.status).toBe(401);
  });
});
