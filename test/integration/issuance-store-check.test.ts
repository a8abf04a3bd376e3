import type { Db } from 'mongodb';
import { activityDepsFrom } from '../../src/activities';
import { createIssuanceActivities } from '../../src/activities/issuance';
import { generateKeyPair } from '../../src/crypto/keys';
import { acceptedIssuance } from '../support/accepted-issuance';
import { openDb, uniqueDbName } from '../support/system';
import { testConfig } from '../support/temporal';

const config = testConfig({ MONGODB_DB: uniqueDbName('store-check') });

/**
 * `store` takes the package list from the run, and a run can be started by anyone with Temporal
 * access: the list must name exactly the accepted issuance's items, or a forged run could store a
 * version that leaves one out (a face photo, say). The real activities against the real database.
 */
describe('store: the package list is checked against the accepted issuance', () => {
  let database: { db: Db; close(): Promise<void> };

  beforeAll(async () => {
    database = await openDb(config);
  });
  afterAll(async () => {
    await database?.db.dropDatabase().catch(() => undefined);
    await database?.close();
  });

  const FIELDS = {
    descriptor: { itemId: 'fields', kind: 'fields', contentType: 'application/json', size: 2 },
    bytes: Buffer.from('{}'),
  };
  const FACE = {
    descriptor: { itemId: 'face-photo', kind: 'face-photo', contentType: 'image/png', size: 4 },
    bytes: Buffer.from('face'),
  };

  /** An issuance the API accepted, with the real activities on this database. */
  function accept(issuanceId: string, userId: string, items: (typeof FIELDS)[]) {
    const deps = activityDepsFrom(config).issuance;
    const activities = createIssuanceActivities({ db: database.db, ...deps });
    const cakPublicKey = generateKeyPair('secp256r1').publicKey.toString('hex');
    return acceptedIssuance(
      database.db,
      config,
      { managedKeyring: deps.managedKeyring, activities },
      { issuanceId, userId, cakPublicKey, items },
    );
  }

  it('refuses a list without one of the items (ForgedInput, no version stored), then stores the whole list', async () => {
    const { db } = database;
    const issuanceId = 'iss_store-check';
    const issuance = await accept(issuanceId, 'store-check-user', [FIELDS, FACE]);
    const packages = await issuance.encrypt();
    expect(packages.map((p) => p.itemId)).toEqual(['fields', 'face-photo']);

    await expect(issuance.store(packages.slice(0, 1))).rejects.toMatchObject({
      type: 'ForgedInput',
      nonRetryable: true,
    });
    await expect(
      issuance.store([...packages, { ...packages[0]!, itemId: 'id-front', packageId: `${issuanceId}/id-front` }]),
    ).rejects.toMatchObject({ type: 'ForgedInput' });
    expect(await db.collection('record_versions').countDocuments({ _id: issuanceId as never })).toBe(0);

    expect(await issuance.store(packages)).toEqual({ recordId: issuance.recordId, version: 1, issuanceId });
    expect((await db.collection('record_versions').findOne({ _id: issuanceId as never }))?.manifest).toHaveLength(2);
  });

  it('refuses a record another client took after the API accepted the issuance, and leaves nothing of it', async () => {
    const { db } = database;
    const issuanceId = 'iss_store-taken';
    const issuance = await accept(issuanceId, 'store-taken-user', [FIELDS]);
    const packages = await issuance.encrypt();
    const now = new Date();
    const taken = {
      _id: issuance.recordId,
      clientId: 'other',
      issuerDid: 'did:air:id:cak-dev-issuer',
      userId: 'store-taken-user',
      schemaId: 'kyc-basic',
      currentVersion: 1,
      createdAt: now,
      updatedAt: now,
    };
    await db.collection('records').insertOne(taken as never);

    await expect(issuance.store(packages)).rejects.toMatchObject({ type: 'RecordOwnedElsewhere', nonRetryable: true });
    expect(await db.collection('record_versions').countDocuments({ _id: issuanceId as never })).toBe(0);
    expect(await db.collection('packages').countDocuments({ issuanceId })).toBe(0);
    expect(await db.collection('records').findOne({ _id: issuance.recordId as never })).toEqual(taken);
  });
});
