import { eciesDecrypt } from '../../src/crypto/ecies';
import { parseKeyring } from '../../src/crypto/keyring';
import { parsePrivateKey, type Curve } from '../../src/crypto/keys';
import { openOuter } from '../../src/crypto/outer-layer';
import { canonicalJson } from '../../src/domain/safe-json';
import { packagesRepository } from '../../src/storage/packages';
import { recordsRepository } from '../../src/storage/records';
import { uniqueId } from '../support/temporal';
import {
  API_KEY_HEADER,
  countWorkflows,
  findMarkers,
  markedPng,
  scanDatabase,
  scanHistories,
  sha256,
  waitForIssuance,
} from './issuance-harness';
import { startSystem, type System } from '../support/system';

jest.setTimeout(180_000);

interface Sent {
  issuanceId: string;
  userId: string;
  curve: Curve;
  fields: Record<string, string>;
  files: Record<string, Buffer>;
}

describe('issuance end to end (API, worker, Temporal, FerretDB, AIR emulator)', () => {
  let system: System;
  const markers: string[] = [];
  const userIds: string[] = [];
  const issuerDid = 'did:air:id:cak-dev-issuer';
  const mark = (label: string) => {
    const m = `PLAINTEXT-${label}-${uniqueId('m').slice(2, 14)}`;
    markers.push(m);
    return m;
  };

  beforeAll(async () => {
    system = await startSystem();
  });
  afterAll(async () => {
    await system?.close();
  });

  function body(curve: Curve, userId: string, cakPublicKey?: string) {
    const fields = { fullName: mark('name'), documentNumber: mark('docno') };
    const files = {
      'id-front': markedPng(mark('front'), 100 * 1024), // above the 64 KiB GridFS threshold
      'face-photo': markedPng(mark('face'), 8 * 1024), // inline
    };
    return {
      fields,
      files,
      json: {
        userId,
        issuerDid,
        credentialId: 'prog-kyc-basic',
        schemaId: 'kyc-basic',
        curve,
        credentialSubject: { kycLevel: 2, note: mark('subject') },
        ...(cakPublicKey ? { cakPublicKey } : {}),
        fields,
        files: Object.entries(files).map(([kind, data]) => ({
          kind,
          contentType: 'image/png',
          data: data.toString('base64'),
        })),
      },
    };
  }

  async function post(json: unknown, idempotencyKey: string) {
    return fetch(`${system.apiUrl}/v1/issuances`, {
      method: 'POST',
      headers: { ...API_KEY_HEADER, 'content-type': 'application/json', 'idempotency-key': idempotencyKey },
      body: JSON.stringify(json),
    });
  }

  async function assertDecrypts(sent: Sent, status: Record<string, unknown>) {
    const record = status.record as {
      recordId: string;
      items: { itemId: string; packageId: string; sha256: string }[];
    };
    const keyring = parseKeyring(system.config.CAK_MANAGED_KEYS);
    const packages = packagesRepository(system.db, system.config.GRIDFS_THRESHOLD_BYTES);
    const triple = { userId: sent.userId, issuerDid, schemaId: 'kyc-basic' };
    const privateKey = parsePrivateKey(system.emulator.controls.cakPrivateKey(triple, sent.curve), sent.curve);
    const expected: Record<string, Buffer> = { fields: Buffer.from(canonicalJson(sent.fields)), ...sent.files };
    expect(record.items.map((i) => i.itemId).sort()).toEqual(Object.keys(expected).sort());
    for (const item of record.items) {
      const stored = (await packages.read(item.packageId))!;
      expect(sha256(stored)).toBe(item.sha256);
      const inner = openOuter(keyring, stored, { recordId: record.recordId, itemId: item.packageId });
      expect(eciesDecrypt(privateKey, inner).equals(expected[item.itemId]!)).toBe(true);
    }
  }

  const sent: Sent[] = [];

  it.each<[Curve, 'platform' | 'client']>([
    ['secp256r1', 'platform'],
    ['secp256k1', 'platform'],
    ['secp256k1', 'client'],
  ])(
    'stores text fields and two images on %s (key from the %s), decryptable to the exact bytes',
    async (curve, source) => {
      const userId = uniqueId('user');
      userIds.push(userId);
      const key =
        source === 'client'
          ? system.emulator.controls.cakPublicKey({ userId, issuerDid, schemaId: 'kyc-basic' }, curve)
          : undefined;
      const { json, fields, files } = body(curve, userId, key);
      const res = await post(json, uniqueId('idem'));
      expect(res.status).toBe(202);
      const accepted = (await res.json()) as { issuanceId: string; statusUrl: string };
      expect(accepted.statusUrl).toBe(`/v1/issuances/${accepted.issuanceId}`);
      const status = await waitForIssuance(system, accepted.issuanceId);
      expect(status).toMatchObject({
        status: 'completed',
        keySource: source,
        steps: {
          issue: { state: 'completed' },
          encrypt: { state: 'completed' },
          store: { state: 'completed' },
          shred: { state: 'completed' },
        },
        record: { version: 1 },
      });
      const entry = { issuanceId: accepted.issuanceId, userId, curve, fields, files };
      sent.push(entry);
      await assertDecrypts(entry, status);
    },
  );

  it('answers a repeat with the same Idempotency-Key with the same issuance and starts nothing new', async () => {
    const userId = uniqueId('user');
    userIds.push(userId);
    const { json } = body('secp256r1', userId);
    const key = uniqueId('idem');
    const first = (await (await post(json, key)).json()) as { issuanceId: string };
    await waitForIssuance(system, first.issuanceId);
    const again = await post(json, key);
    expect(again.status).toBe(202);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(((await again.json()) as { issuanceId: string }).issuanceId).toBe(first.issuanceId);
    const conflicting = await post({ ...json, credentialSubject: { kycLevel: 3 } }, key);
    expect(conflicting.status).toBe(409);
    expect(((await conflicting.json()) as { error: { code: string } }).error.code).toBe('IDEMPOTENCY_KEY_REUSED');
    expect(
      await recordsRepository(system.db).countVersions(
        (await system.db.collection('issuances').findOne({ _id: first.issuanceId as never }))!.recordId as string,
      ),
    ).toBe(1);
    expect(await countWorkflows(system.client, userId)).toBe(1);
  });

  it('a start that fails answers 503 and keeps the staging; the retry with the same key starts the run', async () => {
    const { Client, Connection } = await import('@temporalio/client');
    const { default: express } = await import('express');
    const { createApp } = await import('../../src/api/app');
    const { issuanceApiDeps } = await import('../../src/api/issuance-wiring');
    const { createLogger } = await import('../../src/observability/logger');
    // the same API, but its Temporal is unreachable
    const unreachable = new Client({ connection: Connection.lazy({ address: '127.0.0.1:9', connectTimeout: 500 }) });
    const app = express().use(
      createApp({
        log: createLogger({ level: 'silent', name: 'api' }),
        probes: { temporal: () => Promise.resolve(), database: () => Promise.resolve() },
        issuance: issuanceApiDeps(system.config, system.db, unreachable),
      }),
    );
    const server = app.listen(0, '127.0.0.1');
    await new Promise((resolve) => server.once('listening', resolve));
    const userId = uniqueId('user');
    userIds.push(userId);
    const { json } = body('secp256r1', userId);
    const key = uniqueId('idem');
    try {
      const refused = await fetch(`http://127.0.0.1:${(server.address() as { port: number }).port}/v1/issuances`, {
        method: 'POST',
        headers: { ...API_KEY_HEADER, 'content-type': 'application/json', 'idempotency-key': key },
        body: JSON.stringify(json),
      });
      expect(refused.status).toBe(503);
      expect(((await refused.json()) as { error: { code: string } }).error.code).toBe('UNAVAILABLE');
    } finally {
      await new Promise((resolve) => server.close(resolve));
      await unreachable.connection.close().catch(() => undefined);
    }
    const issuance = await system.db.collection('issuances').findOne({ userId });
    expect(issuance?.status).toBe('accepted');
    // kept: a start that timed out may have reached Temporal, and its run reads the staging
    expect(await system.db.collection('staging').countDocuments({ issuanceId: issuance!._id })).toBeGreaterThan(0);
    expect(await countWorkflows(system.client, userId)).toBe(0);

    const retried = await post(json, key);
    expect(retried.status).toBe(202);
    const { issuanceId } = (await retried.json()) as { issuanceId: string };
    expect(issuanceId).toBe(issuance!._id);
    expect((await waitForIssuance(system, issuanceId)).status).toBe('completed');
    expect(await countWorkflows(system.client, userId)).toBe(1);
    const again = await post(json, key);
    expect(again.headers.get('idempotent-replayed')).toBe('true');
    expect(await countWorkflows(system.client, userId)).toBe(1);
  });

  it('adds a version on re-issuance and keeps only the newest RECORD_VERSIONS_KEPT', async () => {
    const userId = uniqueId('user');
    userIds.push(userId);
    const ids: string[] = [];
    for (let i = 0; i < 3; i += 1) {
      const res = await post(body('secp256r1', userId).json, uniqueId('idem'));
      const { issuanceId } = (await res.json()) as { issuanceId: string };
      const status = await waitForIssuance(system, issuanceId);
      expect(status).toMatchObject({ status: 'completed', record: { version: i + 1 } });
      ids.push(issuanceId);
    }
    const doc = await system.db.collection<{ _id: string; recordId: string }>('issuances').findOne({ _id: ids[0]! });
    const records = recordsRepository(system.db);
    expect(await records.countVersions(doc!.recordId)).toBe(system.config.RECORD_VERSIONS_KEPT);
    expect((await records.current(doc!.recordId))?.version.version).toBe(3);
    expect(await system.db.collection('packages').countDocuments({ issuanceId: ids[0] })).toBe(0);
  });

  it('accepts multipart/form-data', async () => {
    const userId = uniqueId('user');
    userIds.push(userId);
    const front = markedPng(mark('mp-front'), 20 * 1024);
    const form = new FormData();
    form.set('userId', userId);
    form.set('issuerDid', issuerDid);
    form.set('credentialId', 'prog-kyc-basic');
    form.set('schemaId', 'kyc-basic');
    form.set('credentialSubject', JSON.stringify({ kycLevel: 1 }));
    form.set('fields', JSON.stringify({ fullName: mark('mp-name') }));
    form.set('id-front', new Blob([front], { type: 'image/png' }), 'front.png');
    const res = await fetch(`${system.apiUrl}/v1/issuances`, { method: 'POST', headers: API_KEY_HEADER, body: form });
    expect(res.status).toBe(202);
    const { issuanceId } = (await res.json()) as { issuanceId: string };
    expect(await waitForIssuance(system, issuanceId)).toMatchObject({ status: 'completed' });
  });

  it('ends a run the platform rejects (4xx) with a clear failure, and retries its 5xx', async () => {
    const userId = uniqueId('user');
    userIds.push(userId);
    system.emulator.controls.failNextIssues(1, 404);
    const rejected = (await (await post(body('secp256r1', userId).json, uniqueId('idem'))).json()) as {
      issuanceId: string;
    };
    expect(await waitForIssuance(system, rejected.issuanceId)).toMatchObject({
      status: 'failed',
      error: { type: 'PlatformRejected' },
      steps: { issue: { state: 'failed' } },
    });
    system.emulator.controls.failNextIssues(2, 503);
    const retried = (await (await post(body('secp256r1', userId).json, uniqueId('idem'))).json()) as {
      issuanceId: string;
    };
    expect(await waitForIssuance(system, retried.issuanceId)).toMatchObject({ status: 'completed' });
  });

  it('leaves no plaintext at rest: every collection, every GridFS bucket, every run history; staging empty', async () => {
    expect(sent).toHaveLength(3);
    // the scanner finds a marker written as is or base64-encoded at any alignment
    for (const prefix of ['', 'a', 'ab']) {
      const b64 = Buffer.from(Buffer.from(`${prefix}${markers[0]}xyz`).toString('base64'));
      expect(findMarkers(b64, markers)).toEqual([markers[0]]);
    }
    expect(findMarkers(Buffer.from(`..${markers[1]}..`), markers)).toEqual([markers[1]]);
    expect(await system.db.collection('staging').countDocuments({})).toBe(0);
    expect(await system.db.collection('stagingBlobs.files').countDocuments({})).toBe(0);
    expect(await system.db.collection('packages').countDocuments({ state: 'pending' })).toBe(0);
    expect(await scanDatabase(system.db, markers)).toEqual([]);
    const { hits, runs } = await scanHistories(system.client, userIds, markers);
    expect(runs).toBeGreaterThanOrEqual(8);
    expect(hits).toEqual([]);
  });
});
