import { MockActivityEnvironment } from '@temporalio/testing';
import type { Db } from 'mongodb';
import type { createIssuanceActivities } from '../../src/activities/issuance';
import { DEV_ISSUER_DID, type Config } from '../../src/config';
import type { Keyring } from '../../src/crypto/keyring';
import { sealOuter } from '../../src/crypto/outer-layer';
import { cakKeyFingerprint, issuanceWorkflowId, recordIdFor } from '../../src/domain/ids';
import { stagingContext, type ItemDescriptor, type PackageRef } from '../../src/domain/issuance';
import { issuancesRepository } from '../../src/storage/issuances';
import { stagingRepository } from '../../src/storage/staging';

type IssuanceActivities = ReturnType<typeof createIssuanceActivities>;

/**
 * An issuance of `kyc-basic` as the API would have accepted it (its document, which the activities
 * check their input against, and its sealed staging), and its steps after `issue` run by calling the
 * activities directly in an activity environment whose run is the one the issuance id names.
 * For the bench's bare loop and for tests of the activities against the real database.
 */
export async function acceptedIssuance(
  db: Db,
  config: Config,
  deps: { managedKeyring: Keyring; activities: IssuanceActivities },
  issuance: {
    issuanceId: string;
    userId: string;
    cakPublicKey: string;
    items: { descriptor: ItemDescriptor; bytes: Buffer }[];
  },
) {
  const { issuanceId, userId, cakPublicKey } = issuance;
  const items = issuance.items.map((i) => i.descriptor);
  const recordId = recordIdFor(config.ID_HMAC_SECRET, DEV_ISSUER_DID, userId, 'kyc-basic');
  const workflowId = issuanceWorkflowId(config.ID_HMAC_SECRET, issuanceId);
  const now = new Date();
  await issuancesRepository(db).create({
    _id: issuanceId,
    clientId: 'dev',
    fingerprint: 'direct',
    workflowId,
    recordId,
    userId,
    issuerDid: DEV_ISSUER_DID,
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
  await stagingRepository(db, config.GRIDFS_THRESHOLD_BYTES).stage(
    issuanceId,
    issuance.items.map(({ descriptor: { itemId }, bytes }) => ({
      itemId,
      role: 'item' as const,
      sealed: sealOuter(deps.managedKeyring, bytes, stagingContext(issuanceId, itemId)),
    })),
    60_000,
  );
  const { activities } = deps;
  const env = new MockActivityEnvironment({ workflowExecution: { workflowId, runId: 'direct' } });
  return {
    recordId,
    encrypt: (): Promise<PackageRef[]> =>
      env.run((input: Parameters<IssuanceActivities['encryptItems']>[0]) => activities.encryptItems(input), {
        issuanceId,
        recordId,
        curve: 'secp256r1' as const,
        cakPublicKey,
        items,
      }),
    store: (packages: PackageRef[]) =>
      env.run((input: Parameters<IssuanceActivities['storeRecord']>[0]) => activities.storeRecord(input), {
        issuanceId,
        identity: { recordId, issuerDid: DEV_ISSUER_DID, userId, schemaId: 'kyc-basic' },
        packages,
      }),
    shred: () => env.run((id: string) => activities.shredStaging(id), issuanceId),
  };
}
