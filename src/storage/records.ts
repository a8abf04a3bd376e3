import type { Db } from 'mongodb';
import { isDuplicateKey } from './duplicate-key';
import type { PackageRef } from '../domain/issuance';

/**
 * `records` (one per (issuerDid, userId, schemaId)) and `record_versions` (one per stored issuance).
 *
 * Versioning rule: every issuance that reaches `store` adds version N+1 and the record's
 * `currentVersion` moves to the highest stored version. The newest `keep` versions are kept (by
 * default the current one and the one before, so a verifier mid-download of the previous package is
 * not cut off); older versions and their packages are deleted in the same `store` step.
 *
 * Idempotence without transactions: a version's `_id` is its issuance id, so a retried `store`
 * finds the version it already wrote; the unique (recordId, version) index makes two concurrent
 * issuances for one record take distinct numbers (the loser retries with the next number).
 */

export interface RecordDoc {
  _id: string;
  /** the API client whose issuance created the record; only it may add versions */
  clientId: string;
  issuerDid: string;
  userId: string;
  schemaId: string;
  currentVersion: number;
  createdAt: Date;
  updatedAt: Date;
}

export interface ManifestEntry extends Omit<PackageRef, 'storage'> {
  storage: PackageRef['storage'];
}

export interface RecordVersionDoc {
  /** the issuance id */
  _id: string;
  recordId: string;
  version: number;
  manifest: ManifestEntry[];
  createdAt: Date;
}

export interface RecordIdentity {
  recordId: string;
  clientId: string;
  issuerDid: string;
  userId: string;
  schemaId: string;
}

export class VersionConflictError extends Error {
  constructor(recordId: string, version: number) {
    super(`record ${recordId} version ${version} was taken concurrently; retry`);
    this.name = 'VersionConflictError';
    Object.setPrototypeOf(this, VersionConflictError.prototype);
  }
}

export function recordsRepository(db: Db) {
  const records = db.collection<RecordDoc>('records');
  const versions = db.collection<RecordVersionDoc>('record_versions');

  return {
    records,
    versions,

    /**
     * Adds the version for this issuance, numbered after the newest one, or finds the one a previous
     * attempt added (its insert collides on `_id`): two round trips when nothing is in the way. The
     * number comes from the versions themselves, never from the record's `currentVersion` (a slot a
     * failed issuance freed would hand a later issuance a number below one stored before it).
     */
    async addVersion(
      identity: RecordIdentity,
      issuanceId: string,
      manifest: ManifestEntry[],
    ): Promise<RecordVersionDoc> {
      const [latest] = await versions
        .find({ recordId: identity.recordId }, { projection: { version: 1 } })
        .sort({ version: -1 })
        .limit(1)
        .toArray();
      const doc: RecordVersionDoc = {
        _id: issuanceId,
        recordId: identity.recordId,
        version: (latest?.version ?? 0) + 1,
        manifest,
        createdAt: new Date(),
      };
      try {
        await versions.insertOne(doc);
        return doc;
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        const mine = await versions.findOne({ _id: issuanceId });
        if (mine) return mine; // a previous (or concurrent) attempt of this same issuance added it
        throw new VersionConflictError(identity.recordId, doc.version);
      }
    },

    /** The API client that owns the record, or undefined when there is none yet. */
    async ownerOf(recordId: string): Promise<string | undefined> {
      return (await records.findOne({ _id: recordId }, { projection: { clientId: 1 } }))?.clientId;
    },

    /**
     * Points the record at `version` unless it already points at a newer one. The filter names the
     * owner, so for a record another client owns the upsert collides on `_id` and throws E11000.
     */
    async promote(identity: RecordIdentity, version: number): Promise<void> {
      const now = new Date();
      await records.updateOne(
        { _id: identity.recordId, clientId: identity.clientId },
        {
          $max: { currentVersion: version },
          $set: { updatedAt: now },
          $setOnInsert: {
            issuerDid: identity.issuerDid,
            userId: identity.userId,
            schemaId: identity.schemaId,
            createdAt: now,
          },
        },
        { upsert: true },
      );
    },

    /** Versions older than the newest `keep`: their issuance ids, for the caller to delete packages first. */
    async versionsBeyond(recordId: string, keep: number): Promise<string[]> {
      const old = await versions
        .find({ recordId }, { projection: { _id: 1 } })
        .sort({ version: -1 })
        .skip(keep)
        .toArray();
      return old.map((v) => v._id);
    },

    async deleteVersions(issuanceIds: string[]): Promise<void> {
      if (issuanceIds.length > 0) await versions.deleteMany({ _id: { $in: issuanceIds } });
    },

    async current(recordId: string): Promise<{ record: RecordDoc; version: RecordVersionDoc } | undefined> {
      const record = await records.findOne({ _id: recordId });
      if (!record) return undefined;
      const version = await versions.findOne({ recordId, version: record.currentVersion });
      return version ? { record, version } : undefined;
    },

    versionFor: (issuanceId: string) => versions.findOne({ _id: issuanceId }),
    countVersions: (recordId: string) => versions.countDocuments({ recordId }),
  };
}

export type RecordsRepository = ReturnType<typeof recordsRepository>;
