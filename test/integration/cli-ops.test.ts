import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplicationFailure } from '@temporalio/common';
import { NativeConnection, Worker } from '@temporalio/worker';
import { activityDepsFrom, createActivities } from '../../src/activities';
import type { Config } from '../../src/config';
import { eciesDecrypt } from '../../src/crypto/ecies';
import { parseKeyring } from '../../src/crypto/keyring';
import { parsePrivateKey } from '../../src/crypto/keys';
import { openOuter, outerKeyId } from '../../src/crypto/outer-layer';
import { dataConverterFor } from '../../src/crypto/payload-codec';
import { authorizationIdFor } from '../../src/domain/callback';
import { canonicalJson } from '../../src/domain/safe-json';
import { auditRepository } from '../../src/storage/audit';
import { packagesRepository, type PackageDoc } from '../../src/storage/packages';
import { recordsRepository } from '../../src/storage/records';
import { stagingRepository } from '../../src/storage/staging';
import { signStandardWebhook } from '../../src/platform/callback-signature';
import { API_KEY_HEADER, markedPng, sha256, waitForIssuance } from '../e2e/issuance-harness';
import { callbackConfig, startSystem, type System } from '../support/system';
import { runCak } from '../support/cli';
import { uniqueId, workflowBundle, testAuditKeys } from '../support/temporal';
import { auditEventOf, ACKED, eventually, postCallback, seedRecord } from './callbacks-harness';

jest.setTimeout(240_000);

/** Runs the real `cak` bin in a child process, from a temp folder, against the given configuration. */
async function cak(config: Config, args: string[], env: NodeJS.ProcessEnv = {}) {
  const { status, stdout, stderr } = await runCak(args, {
    MONGODB_URI: config.MONGODB_URI,
    MONGODB_DB: config.MONGODB_DB,
    TEMPORAL_ADDRESS: config.TEMPORAL_ADDRESS,
    TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
    GRIDFS_THRESHOLD_BYTES:
      config.GRIDFS_THRESHOLD_BYTES === undefined ? undefined : String(config.GRIDFS_THRESHOLD_BYTES),
    AIR_PLATFORM_URL: config.AIR_PLATFORM_URL,
    ...env,
  });
  return { code: status, stdout, stderr };
}

const json = <T>(out: { stdout: string }) => JSON.parse(out.stdout) as T;

describe('cak operator commands against the real Temporal and database', () => {
  it('cak --help lists every command group, audit included', async () => {
    const { code, stdout } = await cak({} as Config, ['--help'], { MONGODB_URI: '', MONGODB_DB: '' });
    expect(code).toBe(0);
    for (const group of ['audit', 'authorizations', 'issuances', 'keys', 'platform', 'verifier', 'keygen']) {
      expect(stdout).toMatch(new RegExp(`^  ${group}\\b`, 'm'));
    }
  });

  it('keys generate prints keyring entries parseKeyring accepts, and whsec_ secrets that sign and verify', async () => {
    const entries: string[] = [];
    for (let i = 0; i < 2; i += 1) {
      const out = await cak({} as Config, ['keys', 'generate']);
      expect(out.code).toBe(0);
      entries.push(out.stdout.trim());
    }
    expect(entries[0]).toMatch(/^k\d{8}-[0-9a-f]{8}:[A-Za-z0-9+/]{43}=$/);
    const keyring = parseKeyring(entries.join(','));
    expect(keyring.activeKeyId).toBe(entries[0]!.split(':')[0]);
    expect(keyring.keys.size).toBe(2);
    const named = await cak({} as Config, ['keys', 'generate', '--kid', 'outer-2']);
    expect(parseKeyring(named.stdout.trim()).activeKeyId).toBe('outer-2');
    expect((await cak({} as Config, ['keys', 'generate', '--kid', 'bad kid'])).code).not.toBe(0);

    const secret = (await cak({} as Config, ['keys', 'generate', '--webhook-secret'])).stdout.trim();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]{43}=$/);
    const headers = signStandardWebhook(secret, '{}', { id: 'msg_1' });
    expect(headers['webhook-signature']).toMatch(/^v1,/);
  });

  describe('issuances: list failed, retry by the documented rule; keys: status and rewrap', () => {
    let system: System;
    let worker: Worker;
    let running: Promise<void>;
    let connection: NativeConnection;
    /** The platform outage outlasts the activity's 10 attempts: the run ends as the real one would. */
    let platformDown = false;
    const issuerDid = 'did:air:id:cak-dev-issuer';

    beforeAll(async () => {
      system = await startSystem({ worker: false });
      const config = system.config;
      const deps = activityDepsFrom(config);
      const activities = createActivities({
        db: system.db,
        ...deps,
        authorization: { ...deps.authorization, notify: { ...deps.authorization.notify, timeoutMs: 1000 } },
      });
      connection = await NativeConnection.connect({ address: config.TEMPORAL_ADDRESS });
      worker = await Worker.create({
        connection,
        namespace: config.TEMPORAL_NAMESPACE,
        taskQueue: config.TEMPORAL_TASK_QUEUE,
        dataConverter: dataConverterFor(parseKeyring(config.CAK_CODEC_KEYS)),
        workflowBundle: workflowBundle(),
        shutdownForceTime: '5s',
        activities: {
          ...activities,
          // the type a PlatformError has when the run's retries of a 503 run out
          obtainCakPublicKey: (input: Parameters<typeof activities.obtainCakPublicKey>[0]) =>
            platformDown
              ? Promise.reject(
                  ApplicationFailure.nonRetryable('platform unavailable (503), 10 attempts', 'PlatformError'),
                )
              : activities.obtainCakPublicKey(input),
        },
      });
      running = worker.run();
    });

    afterAll(async () => {
      worker?.shutdown();
      await running;
      await connection?.close();
      await system?.close();
    });

    const files = () => ({
      'id-front': markedPng(uniqueId('front'), 100 * 1024), // GridFS (threshold 64 KiB)
      'face-photo': markedPng(uniqueId('face'), 8 * 1024), // inline
    });

    async function post(userId: string) {
      const fields = { fullName: uniqueId('name') };
      const sent = files();
      const res = await fetch(`${system.apiUrl}/v1/issuances`, {
        method: 'POST',
        headers: { ...API_KEY_HEADER, 'content-type': 'application/json', 'idempotency-key': uniqueId('idem') },
        body: JSON.stringify({
          userId,
          issuerDid,
          credentialId: 'prog-kyc-basic',
          schemaId: 'kyc-basic',
          curve: 'secp256r1',
          credentialSubject: { kycLevel: 1 },
          fields,
          files: Object.entries(sent).map(([kind, data]) => ({
            kind,
            contentType: 'image/png',
            data: data.toString('base64'),
          })),
        }),
      });
      expect(res.status).toBe(202);
      const { issuanceId } = (await res.json()) as { issuanceId: string };
      const expected: Record<string, Buffer> = { fields: Buffer.from(canonicalJson(fields)), ...sent };
      return { issuanceId, userId, expected };
    }

    type Listed = { issuanceId: string; status: string; retryable?: boolean; error?: { type: string } }[];
    const staged = (issuanceId: string) =>
      stagingRepository(system.db, system.config.GRIDFS_THRESHOLD_BYTES).count(issuanceId);
    const stored: Awaited<ReturnType<typeof post>>[] = [];

    it('a permanent failure is listed as failed, not retryable, and retry refuses: the client must resubmit', async () => {
      system.emulator.controls.failNextIssues(1, 404); // the platform refuses: permanent
      const rejected = await post(uniqueId('user'));
      expect(await waitForIssuance(system, rejected.issuanceId)).toMatchObject({ status: 'failed' });
      expect(await staged(rejected.issuanceId)).toBe(0); // shredded at once

      const listed = json<Listed>(await cak(system.config, ['issuances', 'list', '--state', 'failed', '--json']));
      expect(listed).toEqual([
        expect.objectContaining({
          issuanceId: rejected.issuanceId,
          status: 'failed',
          retryable: false,
          error: expect.objectContaining({ type: 'PlatformRejected' }),
        }),
      ]);
      const text = await cak(system.config, ['issuances', 'list', '--state', 'failed']);
      expect(text.stdout).toContain(rejected.issuanceId);
      expect(text.stdout).toContain('PlatformRejected');

      const retry = await cak(system.config, ['issuances', 'retry', rejected.issuanceId]);
      expect(retry.code).toBe(4);
      expect(retry.stdout).toMatch(/PERMANENT_FAILURE.*must resubmit/);
      const { count } = await system.client.workflow.count(`WorkflowId = '${await workflowIdOf(rejected.issuanceId)}'`);
      expect(count).toBe(1);
    });

    async function workflowIdOf(issuanceId: string): Promise<string> {
      return (await system.db
        .collection<{ _id: string; workflowId: string }>('issuances')
        .findOne({ _id: issuanceId }))!.workflowId;
    }

    it('a transient failure keeps its staging; retry starts a new run under the same id, once, and it completes', async () => {
      platformDown = true;
      const kept = await post(uniqueId('user'));
      const expired = await post(uniqueId('user'));
      for (const { issuanceId } of [kept, expired]) {
        expect(await waitForIssuance(system, issuanceId)).toMatchObject({
          status: 'failed',
          error: { type: 'PlatformError' },
          steps: { issue: { state: 'failed' } },
        });
        expect(await staged(issuanceId)).toBe(4); // subject + fields + two files, kept until the TTL
      }
      platformDown = false;
      // the sweep has taken this one's staging (past STAGING_TTL_SECONDS)
      await stagingRepository(system.db, system.config.GRIDFS_THRESHOLD_BYTES).shred(expired.issuanceId);

      const listed = json<Listed>(await cak(system.config, ['issuances', 'list', '--state', 'failed', '--json']));
      expect(
        listed
          .filter((i) => i.retryable)
          .map((i) => i.issuanceId)
          .sort(),
      ).toEqual([kept.issuanceId, expired.issuanceId].sort());

      const gone = await cak(system.config, ['issuances', 'retry', expired.issuanceId]);
      expect(gone.code).toBe(4);
      expect(gone.stdout).toMatch(/STAGING_GONE.*must resubmit/);

      // two operators retry at once: one new run, the other is told a run is going (or it is done)
      const both = await Promise.all([
        cak(system.config, ['issuances', 'retry', kept.issuanceId, '--json']),
        cak(system.config, ['issuances', 'retry', kept.issuanceId, '--json']),
      ]);
      const outcomes = both.map((r) => json<{ outcome: string; code?: string }>(r));
      expect(outcomes.filter((o) => o.outcome === 'started')).toHaveLength(1);
      for (const o of outcomes.filter((x) => x.outcome !== 'started')) {
        expect(o.outcome === 'already-running' || o.code === 'NOT_FAILED').toBe(true);
      }
      const done = await waitForIssuance(system, kept.issuanceId);
      expect(done).toMatchObject({ status: 'completed', record: { version: 1 } });
      expect(done.error).toBeUndefined();
      expect(await staged(kept.issuanceId)).toBe(0);
      const { count } = await system.client.workflow.count(`WorkflowId = '${await workflowIdOf(kept.issuanceId)}'`);
      expect(count).toBe(2); // the failed run and the retry

      const again = await cak(system.config, ['issuances', 'retry', kept.issuanceId]);
      expect(again.code).toBe(4);
      expect(again.stdout).toContain('NOT_FAILED');
      stored.push(kept);
    });

    it('rewrap moves every stored package to the new active key; every package still opens; a second rewrap is a no-op', async () => {
      stored.push(await post(uniqueId('user')));
      expect(await waitForIssuance(system, stored[1]!.issuanceId)).toMatchObject({ status: 'completed' });

      const oldSpec = system.config.CAK_MANAGED_KEYS;
      const oldKid = parseKeyring(oldSpec).activeKeyId;
      const entry = (await cak(system.config, ['keys', 'generate'])).stdout.trim();
      const rotated = `${entry},${oldSpec}`;
      const keyring = parseKeyring(rotated);
      const env = { CAK_MANAGED_KEYS: rotated };
      const packages = packagesRepository(system.db, system.config.GRIDFS_THRESHOLD_BYTES);
      const all = () => system.db.collection<PackageDoc>('packages').find({}).sort({ _id: 1 }).toArray();
      expect((await all()).map((p) => p.storage).sort()).toEqual([
        'gridfs',
        'gridfs',
        'inline',
        'inline',
        'inline',
        'inline',
      ]);
      // a package written before key ids were recorded: found by reading its bytes
      await system.db
        .collection<PackageDoc>('packages')
        .updateOne({ _id: (await all())[0]!._id }, { $unset: { keyId: '' } });

      type Status = { managed: { active: string }; packages: Record<string, { committed: number; pending: number }> };
      const before = json<Status>(await cak(system.config, ['keys', 'status', '--json'], env));
      expect(before.managed.active).toBe(keyring.activeKeyId);
      expect(before.packages).toEqual({ [oldKid]: { committed: 6, pending: 0 } });

      type Report = { rewrapped: number; alreadyActive: number; failed: unknown[]; after: Status['packages'] };
      const dry = json<Report>(await cak(system.config, ['keys', 'rewrap', '--dry-run', '--json'], env));
      expect(dry).toMatchObject({ rewrapped: 6, failed: [], after: { [oldKid]: { committed: 6 } } });

      const run = await cak(system.config, ['keys', 'rewrap', '--batch', '4'], env);
      expect(run.code).toBe(0);
      expect(run.stdout).toContain(`rewrapped 6 of 6 committed packages to ${keyring.activeKeyId}`);
      const after = json<Status>(await cak(system.config, ['keys', 'status', '--json'], env));
      expect(after.packages).toEqual({ [keyring.activeKeyId]: { committed: 6, pending: 0 } });

      const oldOnly = parseKeyring(oldSpec);
      const records = recordsRepository(system.db);
      for (const sent of stored) {
        const version = (await records.versionFor(sent.issuanceId))!;
        const privateKey = parsePrivateKey(
          system.emulator.controls.cakPrivateKey(
            { userId: sent.userId, issuerDid, schemaId: 'kyc-basic' },
            'secp256r1',
          ),
          'secp256r1',
        );
        for (const item of version.manifest) {
          const sealed = (await packages.read(item.packageId))!;
          const context = { recordId: version.recordId, itemId: item.packageId };
          expect(outerKeyId(sealed)).toBe(keyring.activeKeyId);
          expect(item).toMatchObject({ keyId: keyring.activeKeyId, sha256: sha256(sealed), size: sealed.length });
          expect(() => openOuter(oldOnly, sealed, context)).toThrow(/not in the keyring/);
          const inner = openOuter(keyring, sealed, context);
          expect(eciesDecrypt(privateKey, inner).equals(sent.expected[item.itemId]!)).toBe(true);
        }
      }

      const second = json<Report>(await cak(system.config, ['keys', 'rewrap', '--json'], env));
      expect(second).toMatchObject({ rewrapped: 0, alreadyActive: 6, failed: [] });
    });
  });

  describe('authorizations: list unrouted, re-drive once the route exists', () => {
    let dir: string;
    let registryPath: string;
    let config: Config;
    let stack: System;
    const registry = (route: string) =>
      `schemas:\n  kyc-basic:\n    programs: [prog-kyc-basic]\n    allowedItemKinds: [fields]\n    callback:\n      handlers: [grant-access]\n` +
      `  later:\n    programs: [prog-later]\n    allowedItemKinds: [fields]\n${route}`;

    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'cak-cli-ops-'));
      registryPath = join(dir, 'schemas.yaml');
      writeFileSync(registryPath, registry(''));
      config = await callbackConfig({ SCHEMA_REGISTRY_PATH: registryPath });
      stack = await startSystem({ config, emulator: false, sealLoop: true });
    });

    afterAll(async () => {
      await stack?.close();
      rmSync(dir, { recursive: true, force: true });
    });

    it('lists the unrouted authorization, re-drives it to active, and refuses one that is not waiting', async () => {
      const k = { userId: uniqueId('user'), verifierDid: 'did:air:id:cli-verifier', schemaId: 'later' };
      const id = authorizationIdFor(config.ID_HMAC_SECRET, k);
      await seedRecord(stack.db, k);
      expect(ACKED).toContain((await postCallback(stack.api.url, k)).status);
      const stateOf = async () =>
        (await stack.db.collection<{ _id: string; state: string }>('authorizations').findOne({ _id: id }))?.state;
      await eventually(stateOf, (s) => s === 'unrouted');

      type Listed = { authorizationId: string; state: string; userId: string; deliveries: number }[];
      const listed = json<Listed>(await cak(config, ['authorizations', 'list', '--state', 'unrouted', '--json']));
      expect(listed).toEqual([
        expect.objectContaining({ authorizationId: id, state: 'unrouted', userId: k.userId, deliveries: 1 }),
      ]);
      expect((await cak(config, ['authorizations', 'list', '--state', 'unrouted'])).stdout).toContain(id);

      // the operator adds the route and restarts the workers, then re-drives every unrouted one
      writeFileSync(registryPath, registry('    callback:\n      handlers: [grant-access]\n'));
      await stack.restartWorker();
      const redrive = await cak(config, ['authorizations', 'redrive', '--all-unrouted']);
      expect(redrive.code).toBe(0);
      expect(redrive.stdout).toContain(`${id}: re-drive signalled`);
      expect(redrive.stdout).toContain('1 of 1 re-driven');
      await eventually(stateOf, (s) => s === 'active');
      const event = await eventually(
        () => auditEventOf(stack.db, id, 'authorization.redriven'),
        (e) => e !== null,
      );
      expect(event).toMatchObject({ type: 'authorization.redriven', data: { outcome: 'active' } });

      const refused = await cak(config, ['authorizations', 'redrive', id]);
      expect(refused.code).toBe(4);
      expect(refused.stdout).toContain('it is active');
      expect((await cak(config, ['authorizations', 'redrive'])).code).toBe(2); // a usage error
      expect(json<Listed>(await cak(config, ['authorizations', 'list', '--state', 'unrouted', '--json']))).toEqual([]);

      // revoke and reinstate by the callback's key; listed as revoked in between
      const byKey = ['--user', k.userId, '--verifier', k.verifierDid, '--schema', k.schemaId];
      const revoked = await cak(config, ['authorizations', 'revoke', ...byKey, '--by', 'ops-alice']);
      expect([revoked.code, revoked.stdout.trim()]).toEqual([0, `${id}: revoked`]);
      expect(json<Listed>(await cak(config, ['authorizations', 'list', '--state', 'revoked', '--json']))).toEqual([
        expect.objectContaining({ authorizationId: id, state: 'revoked' }),
      ]);
      expect((await cak(config, ['authorizations', 'revoke', ...byKey])).stdout.trim()).toBe(`${id}: already revoked`);
      const reinstated = await cak(config, ['authorizations', 'reinstate', ...byKey]);
      expect([reinstated.code, reinstated.stdout.trim()]).toEqual([0, `${id}: reinstated`]);
      const unknown = await cak(config, ['authorizations', 'reinstate', ...byKey.slice(0, 5), 'no-such-schema']);
      expect(unknown.code).toBe(4);
      const audit = auditRepository(stack.db, testAuditKeys());
      expect(await audit.count({ type: 'authorization.revoked' })).toBe(1);
      expect(await audit.count({ type: 'authorization.reinstated' })).toBe(1);
    });
  });
});
