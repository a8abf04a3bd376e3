import type { Db } from 'mongodb';

/**
 * Every index the service relies on, in one place, created idempotently: the worker at start (before
 * it takes work), the API in the background (it starts while the database is down).
 * Plain and unique indexes only: FerretDB v1 has no TTL indexes (expiry is the sweep schedule's job).
 */
export async function ensureIndexes(db: Db): Promise<void> {
  // issuance
  await db.collection('staging').createIndex({ issuanceId: 1 }, { name: 'by_issuance' });
  await db.collection('staging').createIndex({ expiresAt: 1 }, { name: 'by_expiry' });
  await db.collection('packages').createIndex({ issuanceId: 1, state: 1 }, { name: 'by_issuance_state' });
  await db.collection('packages').createIndex({ state: 1, createdAt: 1 }, { name: 'by_state_age' });
  await db
    .collection('record_versions')
    .createIndex({ recordId: 1, version: 1 }, { name: 'record_version_unique', unique: true });
  await db.collection('issuances').createIndex({ userId: 1, createdAt: -1 }, { name: 'by_user' });
  // authorization
  await db.collection('authorizations').createIndex({ state: 1, updatedAt: 1 }, { name: 'state_updatedAt' });
  await db.collection('callback_deliveries').createIndex({ authorizationId: 1 }, { name: 'by_authorization' });
  await db.collection('callback_inbox').createIndex({ nextAttemptAt: 1 }, { name: 'by_next_attempt' });
  // audit: `seq` is unique, a second guard beside the batch arbiter that the chain never forks
  await db.collection('audit_events').createIndex({ seq: 1 }, { unique: true, name: 'seq_unique' });
}
