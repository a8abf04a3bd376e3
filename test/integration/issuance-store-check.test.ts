import { MockActivityEnvironment } from '@temporalio/testing';
import { MongoClient, type Db } from 'mongodb';
import { activityDepsFrom } from '../../src/activities';
import { createIssuanceActivities } from '../../src/activities/issuance';
import { sealOuter } from '../../src/crypto/outer-layer';
import { generateKeyPair } from '../../src/crypto/keys';
import { cakKeyFingerprint, issuanceWorkflowId, recordIdFor } from '../../src/domain/ids';
import { stagingContext, type ItemDescriptor, type PackageRef } from '../../src/domain/issuance';
import { issuancesRepository } from '../../src/storage/issuances';
import { stagingRepository } from '../../src/storage/staging';
import { uniqueDbName } from './callbacks-harness';
import { testConfig } from '../support/temporal';

const config = testConfig({ MONGODB_DB: uniqueDbName('store-check') });
const ISSUER = 'did:air:id:cak-dev-issuer';

/**
 * `store` takes the package list from the run, and a run can be started by anyone with Temporal
 * access: the list must name exactly the accepted issuance's items, or a forged run could store a
 * version that leaves one out (a face photo, say). The real activities against the real database.
 */
describe('store: the package list is checked against the accepted issuance', () => {
  let mongo: MongoClient;
  let db: Db;

  beforeAll(async () => {
    mongo = await MongoClient.connect(config.MONGODB_URI, { serverSelectionTimeoutMS: 5_000 });
    db = mongo.db(config.MONGODB_DB);
  });
  afterAll(async () => {
    await db?.dropDatabase().catch(() => undefined);
    await mongo?.close();
  });

  it('refuses a list without one of the items (ForgedInput, no version stored), then stores the whole list', async () => {
    const deps = activityDepsFrom(config).issuance;
    const activities = createIssuanceActivities({ db, ...deps });
    const issuanceId = 'iss_store-check';
    const userId = 'store-check-user';
    const recordId = recordIdFor(config.ID_HMAC_SECRET, ISSUER, userId, 'kyc-basic');
    const cakPublicKey = generateKeyPair('secp256r1').publicKey.toString('hex');
    const items: ItemDescriptor[] = [
      { itemId: 'fields', kind: 'fields', contentType: 'application/json', size: 2 },
      { itemId: 'face-photo', kind: 'face-photo', contentType: 'image/png', size: 4 },
    ];
    const workflowId = issuanceWorkflowId(config.ID_HMAC_SECRET, issuanceId);
    const now = new Date();
    await issuancesRepository(db).create({
      _id: issuanceId,
      clientId: 'dev',
      fingerprint: 'test',
      workflowId,
      recordId,
      userId,
      issuerDid: ISSUER,
      schemaId: 'kyc-basic',
      credentialId: 'prog-kyc-basic',
      curve: 'secp256r1',
      keySource: 'client',
      cakKeyFingerprint: cakKeyFingerprint(config.ID_HMAC_SECRET, cakPublicKey),
      items,
      status: 'running',
      steps: {
        issue: { state: 'completed' },
        encrypt: { state: 'pending' },
        store: { state: 'pending' },
        shred: { state: 'pending' },
      },
      createdAt: now,
      updatedAt: now,
    });
    const bytes: Record<string, Buffer> = { fields: Buffer.from('{}'), 'face-photo': Buffer.from('face') };
    await stagingRepository(db, config.GRIDFS_THRESHOLD_BYTES).stage(
      issuanceId,
      items.map((item) => ({
        itemId: item.itemId,
        role: 'item' as const,
        sealed: sealOuter(deps.managedKeyring, bytes[item.itemId]!, stagingContext(issuanceId, item.itemId)),
      })),
      60_000,
    );
    const env = new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'test' } });
    const packages: PackageRef[] = await env.run(
      (input: Parameters<typeof activities.encryptItems>[0]) => activities.encryptItems(input),
      { issuanceId, recordId, curve: 'secp256r1' as const, cakPublicKey, items },
    );
    expect(packages.map((p) => p.itemId)).toEqual(['fields', 'face-photo']);
    const store = (list: PackageRef[]) =>
      env.run((input: Parameters<typeof activities.storeRecord>[0]) => activities.storeRecord(input), {
        issuanceId,
        identity: { recordId, issuerDid: ISSUER, userId, schemaId: 'kyc-basic' },
        packages: list,
      });

    await expect(store(packages.slice(0, 1))).rejects.toMatchObject({ type: 'ForgedInput', nonRetryable: true });
    await expect(
      store([...packages, { ...packages[0]!, itemId: 'id-front', packageId: `${issuanceId}/id-front` }]),
    ).rejects.toMatchObject({
      type: 'ForgedInput',
    });
    expect(await db.collection('record_versions').countDocuments({ _id: issuanceId as never })).toBe(0);

    expect(await store(packages)).toEqual({ recordId, version: 1, issuanceId });
    expect((await db.collection('record_versions').findOne({ _id: issuanceId as never }))?.manifest).toHaveLength(2);
  });
});
