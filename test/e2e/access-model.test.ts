import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WorkflowFailedError, type Client } from '@temporalio/client';
import type { Db } from 'mongodb';
import { hashApiKey } from '../../src/api/auth';
import type { ApiHandle } from '../../src/api/server';
import { DEV_ADMIN_TOKEN, DEV_API_KEY, DEV_ISSUER_DID, type Config } from '../../src/config';
import type { Curve } from '../../src/crypto/keys';
import type { AuthorizationInput } from '../../src/domain/authorization';
import { recordIdFor } from '../../src/domain/ids';
import type { IssuanceInput } from '../../src/domain/issuance';
import type { IssuanceDoc } from '../../src/storage/issuances';
import { authorizationIdFor, authorizationWorkflowId } from '../../src/domain/callback';
import { canonicalJson } from '../../src/domain/safe-json';
import type { EmulatorHandle } from '../../src/emulator/server';
import { VerifierSimulation } from '../../src/emulator/verifier-sim';
import { auditRepository, type AuditEvent } from '../../src/storage/audit';
import { runCak } from '../support/cli';
import { testAuditKeys } from '../support/temporal';
import { eventually } from '../integration/callbacks-harness';
import { callbackConfig, startSystem, type System } from '../support/system';

jest.setTimeout(240_000);

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
const WINDOW_SECONDS = 8;
const OTHER_API_KEY = 'cak-test-other-client-key';

/**
 * The access model end to end (docs/callbacks.md, "Access"): only the consented Verifier opens a
 * user's data, only for the schema it was authorized for, only while the authorization holds; a
 * revocation stands against new consents until an operator reinstates; every step is in the keyed
 * audit chain. Also: tenancy between API clients, forged workflow starts, and a tampered chain.
 */
describe('access model', () => {
  let config: Config;
  let api: ApiHandle;
  let emulator: EmulatorHandle;
  let database: { db: Db };
  let temporal: Client;
  let stack: System;
  let dir: string;
  const run = randomUUID().slice(0, 8);

  const admin = (action: string, body: unknown) =>
    fetch(`${api.url}/v1/admin/authorizations/${action}`, {
      method: 'POST',
      headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify(body),
    });
  const codeOf = async (res: Response) => ({
    status: res.status,
    code: res.ok ? 'OK' : ((await res.json()) as { error: { code: string } }).error.code,
  });
  const issue = (apiKey: string, body: Record<string, unknown>) =>
    fetch(`${api.url}/v1/issuances`, {
      method: 'POST',
      headers: { 'x-api-key': apiKey, 'content-type': 'application/json' },
      body: JSON.stringify({ credentialSubject: { kycLevel: 2 }, curve: 'secp256r1', ...body }),
    });
  const completed = async (res: Response) => {
    expect(res.status).toBe(202);
    const { issuanceId } = (await res.json()) as { issuanceId: string };
    const status = await eventually(
      async () =>
        (
          (await (
            await fetch(`${api.url}/v1/issuances/${issuanceId}`, { headers: { 'x-api-key': DEV_API_KEY } })
          ).json()) as { status?: string }
        ).status,
      (s) => s === 'completed' || s === 'failed',
    );
    expect(status).toBe('completed');
  };
  const eventsOf = (authorizationId: string) =>
    database.db
      .collection<AuditEvent>('audit_events')
      .find({ 'data.authorizationId': authorizationId })
      .sort({ seq: 1 })
      .toArray();

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cak-access-'));
    const registryPath = join(dir, 'schemas.yaml');
    writeFileSync(
      registryPath,
      readFileSync('config/schemas.yaml', 'utf8').replaceAll('accessWindow: 30d', `accessWindow: ${WINDOW_SECONDS}s`),
    );
    config = await callbackConfig({
      API_RATE_LIMIT_PER_MINUTE: '100000',
      SCHEMA_REGISTRY_PATH: registryPath,
      API_KEYS: `dev:${hashApiKey(DEV_API_KEY)},other:${hashApiKey(OTHER_API_KEY)}`,
      // `other` may issue only proof-of-address for the development issuer
      API_CLIENT_SCOPES: `dev=${DEV_ISSUER_DID},other=${DEV_ISSUER_DID}/proof-of-address`,
    });
    stack = await startSystem({ config, sealLoop: true, registerCallbackUrl: true });
    ({ api, emulator, client: temporal } = stack);
    database = { db: stack.db };
  });

  afterAll(async () => {
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  describe.each<Curve>(['secp256r1', 'secp256k1'])('on %s', (curve) => {
    const userId = `user-${curve}-${run}`;
    const front = Buffer.concat([PNG, Buffer.from(`front-${curve}-${run}-`.repeat(2_000))]);
    const fields = { fullName: `Ada ${run}`, dateOfBirth: '1990-01-01' };
    let alice: VerifierSimulation;
    let key: { userId: string; verifierDid: string; schemaId: string };
    let authorizationId: string;

    const consent = async () => {
      const given = await alice.obtainConsent({ issuerDid: DEV_ISSUER_DID, userId, schemaId: 'kyc-basic', curve });
      await alice.waitForDelivery(given.callbackRecordId);
      return given.cakPrivateKey;
    };
    const openedAfter = (since: number) =>
      eventually(
        async () => (await database.db.collection('authorizations').findOne({ _id: authorizationId as never })) ?? {},
        (doc: { accessFrom?: Date }) => doc.accessFrom !== undefined && doc.accessFrom.getTime() >= since,
      );
    const dataCode = async () => (await codeOf(await alice.requestData(userId, 'kyc-basic'))).code;

    beforeAll(async () => {
      alice = new VerifierSimulation(`did:air:id:alice-${curve}-${run}`, {
        emulatorUrl: emulator.url,
        apiUrl: api.url,
      });
      await alice.register(DEV_ADMIN_TOKEN);
      key = { userId, verifierDid: alice.verifierDid, schemaId: 'kyc-basic' };
      authorizationId = authorizationIdFor(config.ID_HMAC_SECRET, key);
    });

    it('issue, consent, callback: the Verifier decrypts; revoke: the URL it holds is 403 at once', async () => {
      await completed(
        await issue(DEV_API_KEY, {
          userId,
          issuerDid: DEV_ISSUER_DID,
          credentialId: 'prog-kyc-basic',
          schemaId: 'kyc-basic',
          curve,
          fields,
          files: [{ kind: 'id-front', contentType: 'image/png', data: front.toString('base64') }],
        }),
      );
      expect(await dataCode()).toBe('AUTHORIZATION_REQUIRED');
      const started = Date.now() - 1_000;
      const cakPrivateKey = await consent();
      await openedAfter(started);
      await eventually(dataCode, (c) => c === 'OK');
      const plain = await alice.fetchAndDecrypt({ userId, schemaId: 'kyc-basic', cakPrivateKey, curve });
      expect(plain.get('id-front')!.equals(front)).toBe(true);
      expect(plain.get('fields')!.equals(Buffer.from(canonicalJson(fields)))).toBe(true);

      const manifest = (await (await alice.requestData(userId, 'kyc-basic')).json()) as { items: { url: string }[] };
      const url = `${api.url}${manifest.items[0]!.url}`;
      expect((await fetch(url)).status).toBe(200);
      expect((await admin('revoke', key)).status).toBe(200);
      expect(await codeOf(await fetch(url))).toEqual({ status: 403, code: 'AUTHORIZATION_REVOKED' });
      expect(await dataCode()).toBe('AUTHORIZATION_REVOKED');

      // reinstating gives back what the window still allows
      expect(await (await admin('reinstate', key)).json()).toEqual({ authorizationId, reinstated: true });
      expect((await fetch(url)).status).toBe(200);

      // the window closes: 403 AUTHORIZATION_EXPIRED, for the URL and for the data
      await eventually(
        async () => (await codeOf(await fetch(url))).code,
        (c) => c === 'AUTHORIZATION_EXPIRED',
        30_000,
      );
      expect(await dataCode()).toBe('AUTHORIZATION_EXPIRED');
    });

    it('a new consent after the window reopens it; under a revocation it does not, until an operator reinstates', async () => {
      let since = Date.now() - 1_000;
      const cakPrivateKey = await consent();
      await openedAfter(since);
      await eventually(dataCode, (c) => c === 'OK');
      expect(
        (await alice.fetchAndDecrypt({ userId, schemaId: 'kyc-basic', cakPrivateKey, curve })).get('id-front'),
      ).toEqual(front);

      expect((await admin('revoke', key)).status).toBe(200);
      await eventually(dataCode, (c) => c === 'AUTHORIZATION_REVOKED');
      // let this window close (its run audits the expiry), then consent again: the revocation stands
      const doc = await database.db.collection('authorizations').findOne({ _id: authorizationId as never });
      const closesAt = (doc!.accessUntil as Date).getTime();
      await eventually(
        () => eventsOf(authorizationId),
        (list) =>
          list.some(
            (e) => e.type === 'authorization.expired' && new Date(e.data.accessUntil as string).getTime() === closesAt,
          ),
        { what: `the expiry of the window that closes at ${new Date(closesAt).toISOString()}`, timeoutMs: 60_000 },
      );
      since = Date.now() - 1_000;
      await consent();
      await openedAfter(since);
      expect(await dataCode()).toBe('AUTHORIZATION_REVOKED');
      expect((await admin('reinstate', key)).status).toBe(200);
      expect(await dataCode()).toBe('OK');
    });

    it('puts every step in the keyed audit chain, which verifies', async () => {
      // the last window's expiry is audited when it closes
      const events = await eventually(
        () => eventsOf(authorizationId),
        (list) => list.filter((e) => e.type === 'authorization.expired').length >= 3,
        60_000,
      );
      const types = events.map((e) => e.type);
      expect(types.filter((t) => t === 'authorization')).toHaveLength(3);
      expect(types.filter((t) => t === 'authorization.revoked')).toHaveLength(2);
      expect(types.filter((t) => t === 'authorization.reinstated')).toHaveLength(2);
      expect(types).toEqual(expect.arrayContaining(['verifier.manifest', 'verifier.package']));
      // denials are audited in aggregate, per (verifierDid, reason, time bucket) with a count
      const denials = await eventually(
        () =>
          database.db
            .collection<AuditEvent>('audit_events')
            .find({ type: 'verifier.denied', 'data.verifierDid': key.verifierDid })
            .toArray(),
        (list) => list.length > 0,
      );
      expect(denials.every((e) => Number(e.data.count) >= 1)).toBe(true);
      expect(events.filter((e) => e.type === 'authorization').map((e) => e.data.outcome)).toEqual([
        'active',
        'active',
        'revoked',
      ]);
      expect(await auditRepository(database.db, testAuditKeys()).verifyChain()).toMatchObject({ ok: true });
    });
  });

  describe('tenancy', () => {
    const userId = `tenant-user-${run}`;
    const request = (schemaId: string, credentialId: string) => ({
      userId,
      issuerDid: DEV_ISSUER_DID,
      credentialId,
      schemaId,
      fields: { fullName: 'x' },
    });

    it('refuses a client the schema or DID it is not granted, and the data another client holds', async () => {
      expect(await codeOf(await issue(OTHER_API_KEY, request('kyc-basic', 'prog-kyc-basic')))).toEqual({
        status: 403,
        code: 'CLIENT_NOT_PERMITTED',
      });
      expect(
        await codeOf(
          await issue(OTHER_API_KEY, {
            ...request('proof-of-address', 'prog-proof-of-address'),
            issuerDid: 'did:air:id:x',
          }),
        ),
      ).toEqual({ status: 403, code: 'ISSUER_NOT_SERVED' });

      // dev holds this user's proof-of-address data; `other` may issue that schema, but not replace dev's data
      await completed(await issue(DEV_API_KEY, request('proof-of-address', 'prog-proof-of-address')));
      expect(await codeOf(await issue(OTHER_API_KEY, request('proof-of-address', 'prog-proof-of-address')))).toEqual({
        status: 403,
        code: 'RECORD_OWNED_BY_ANOTHER_CLIENT',
      });
      const issuances = await database.db.collection<{ clientId: string }>('issuances').find({ userId }).toArray();
      expect(issuances.map((i) => i.clientId)).toEqual(['dev']);
      const records = await database.db
        .collection<{ clientId: string; currentVersion: number }>('records')
        .find({ userId })
        .toArray();
      expect(records.map((r) => [r.clientId, r.currentVersion])).toEqual([['dev', 1]]);
    });

    it('refuses a program of another schema: its data could never be opened', async () => {
      expect(await codeOf(await issue(DEV_API_KEY, request('kyc-basic', 'prog-proof-of-address')))).toEqual({
        status: 400,
        code: 'PROGRAM_SCHEMA_MISMATCH',
      });
      expect(await codeOf(await issue(DEV_API_KEY, request('kyc-basic', 'prog-nobody-registered')))).toEqual({
        status: 400,
        code: 'UNKNOWN_PROGRAM',
      });
      expect(await database.db.collection('issuances').countDocuments({ userId, schemaId: 'kyc-basic' })).toBe(0);
    });
  });

  describe('attacks (run last: the tamper test breaks the chain on purpose)', () => {
    it('a workflow started on Temporal with a forged authorizationId grants nothing and fails ForgedInput', async () => {
      // A real authorization exists for (victim, mallory-ish verifier, kyc-basic)? The attacker pairs a
      // genuine-looking id with another user: the activities recompute it and refuse.
      const target = { userId: `victim-${run}`, verifierDid: `did:air:id:mallory-${run}`, schemaId: 'kyc-basic' };
      const genuineId = authorizationIdFor(config.ID_HMAC_SECRET, { ...target, userId: `someone-else-${run}` });
      const input: AuthorizationInput = {
        ...target,
        authorizationId: genuineId,
        receivedAt: new Date().toISOString(),
        deliveryProof: 'AAAA',
        redriveWindowMs: 1_000,
      };
      // the attacker has codec access: the payloads are encoded through our codec (connectClient)
      const handle = await temporal.workflow.start('authorizationWorkflow', {
        workflowId: authorizationWorkflowId(genuineId),
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [input],
      });
      const failure = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      const cause = (failure as WorkflowFailedError).cause as { cause?: { type?: string } } | undefined;
      expect(cause?.cause?.type).toBe('ForgedInput');
      expect(await database.db.collection('authorizations').countDocuments({ _id: genuineId as never })).toBe(0);
      expect(await database.db.collection('audit_pending').countDocuments({ 'data.authorizationId': genuineId })).toBe(
        0,
      );
      expect(await database.db.collection('audit_events').countDocuments({ 'data.authorizationId': genuineId })).toBe(
        0,
      );
    });

    it('an IssuanceWorkflow started with a forged identity fails ForgedInput and touches nothing', async () => {
      // the tenancy test stored this issuance; the attacker re-runs it for another user
      const issuances = database.db.collection<IssuanceDoc>('issuances');
      const genuine = (await issuances.findOne({ userId: `tenant-user-${run}`, schemaId: 'proof-of-address' }))!;
      const victim = `victim-${run}`;
      const input: IssuanceInput = {
        issuanceId: genuine._id,
        recordId: recordIdFor(config.ID_HMAC_SECRET, DEV_ISSUER_DID, victim, 'proof-of-address'),
        userId: victim,
        issuerDid: DEV_ISSUER_DID,
        schemaId: 'proof-of-address',
        credentialId: 'prog-proof-of-address',
        curve: 'secp256r1',
        items: genuine.items,
      };
      const handle = await temporal.workflow.start('issuanceWorkflow', {
        workflowId: genuine.workflowId,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        args: [input],
      });
      const failure = await handle.result().then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(failure).toBeInstanceOf(WorkflowFailedError);
      expect(((failure as WorkflowFailedError).cause as { type?: string } | undefined)?.type).toBe('ForgedInput');
      expect(await issuances.findOne({ _id: genuine._id })).toMatchObject({ status: 'completed' });
      expect(await database.db.collection('records').countDocuments({ userId: victim })).toBe(0);
    });

    it('a tampered audit chain, re-linked with plain SHA-256, fails `cak audit verify` at the edited event', async () => {
      const chain = await auditRepository(database.db, testAuditKeys()).verifyChain();
      expect(chain).toMatchObject({ ok: true });
      const events = database.db.collection<AuditEvent>('audit_events');
      const all = await events.find({}).sort({ seq: 1 }).toArray();
      expect(all.length).toBeGreaterThan(4);
      const victim = all[2]!;
      // An attacker with write access edits one event and recomputes every link from there on, with
      // the documented content of a link (the key id only where the events carry one).
      let prevHash = victim.prevHash;
      for (const event of all.slice(2)) {
        const data =
          event._id === victim._id ? { ...event.data, verifierDid: 'did:air:id:someone-innocent' } : event.data;
        const content = canonicalJson({
          seq: event.seq,
          prevHash,
          ...(event.kid !== undefined ? { kid: event.kid } : {}),
          key: event._id,
          type: event.type,
          at: event.at,
          data,
        });
        const hash = createHash('sha256').update(content).digest('hex');
        await events.updateOne({ _id: event._id }, { $set: { data, prevHash, hash } });
        prevHash = hash;
      }
      const env = { MONGODB_URI: config.MONGODB_URI, MONGODB_DB: config.MONGODB_DB };
      const verified = await runCak(['audit', 'verify', '--json'], env);
      expect(verified.status).toBe(3);
      expect(JSON.parse(verified.stdout)).toMatchObject({ ok: false, seq: victim.seq, eventId: victim._id });
    });
  });
});
