import type { Db } from 'mongodb';

/**
 * Every index the issuance pipeline relies on, created idempotently at API and worker start.
 * Plain and unique indexes only: FerretDB v1 has no TTL indexes (expiry is the sweep schedule's job).
 */
export async function ensureIssuanceIndexes(db: Db): Promise<void> {
  await db.collection('staging').createIndex({ issuanceId: 1 }, { name: 'by_issuance' });
  await db.collection('staging').createIndex({ expiresAt: 1 }, { name: 'by_expiry' });
  await db.collection('packages').createIndex({ issuanceId: 1, state: 1 }, { name: 'by_issuance_state' });
  await db.collection('packages').createIndex({ state: 1, createdAt: 1 }, { name: 'by_state_age' });
  await db
    .collection('record_versions')
    .createIndex({ recordId: 1, version: 1 }, { name: 'record_version_unique', unique: true });
  await db.collection('issuances').createIndex({ userId: 1, createdAt: -1 }, { name: 'by_user' });
}
