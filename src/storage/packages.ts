import type { Db } from 'mongodb';
import { blobStore, type BlobMeta } from './blobs';

/**
 * The `packages` collection (+ `packageBlobs` GridFS bucket): encrypted item packages (inner CAK
 * ECIES layer sealed by the issuer-managed outer layer). `encrypt` writes them `pending`, keyed by
 * (issuance, item), so big bytes never pass through Temporal; `store` commits the ones a record
 * version points to. Pending packages of a failed or abandoned issuance are deleted by the
 * workflow, or by the sweep once older than the staging TTL.
 */
export interface PackageDoc extends BlobMeta {
  issuanceId: string;
  recordId: string;
  itemId: string;
  state: 'pending' | 'committed';
  /** the managed key the outer layer is wrapped under (absent on packages written before it was recorded) */
  keyId?: string;
  createdAt: Date;
}

export function packageIdFor(issuanceId: string, itemId: string): string {
  return `${issuanceId}/${itemId}`;
}

export function packagesRepository(db: Db, thresholdBytes: number) {
  const blobs = blobStore<PackageDoc>(db, { collection: 'packages', bucket: 'packageBlobs', thresholdBytes });
  return {
    /**
     * Writes pending packages of an issuance with one insert per collection (see `BlobStore.putMany`);
     * `keyId`: the managed key the caller sealed each under.
     */
    async putPendingMany(
      issuanceId: string,
      recordId: string,
      items: { itemId: string; sealed: Uint8Array; keyId: string }[],
    ): Promise<BlobMeta[]> {
      const createdAt = new Date();
      return blobs.putMany(
        items.map(({ itemId, sealed, keyId }) => ({
          id: packageIdFor(issuanceId, itemId),
          bytes: sealed,
          fields: { issuanceId, recordId, itemId, state: 'pending', keyId, createdAt },
        })),
      );
    },
    /** Metadata of packages after `afterId` in `_id` order (a resumable walk over every package). */
    page: (afterId: string | undefined, limit: number) =>
      blobs.collection
        .find(afterId === undefined ? {} : { _id: { $gt: afterId } })
        .sort({ _id: 1 })
        .limit(limit)
        .toArray(),
    /**
     * Replaces a package's bytes with a rewrap of them (same record, item and state), unless the
     * package was deleted meanwhile (superseded by a newer version); returns what was recorded.
     */
    async replaceSealed(packageId: string, sealed: Uint8Array, keyId: string): Promise<BlobMeta | undefined> {
      const current = await blobs.collection.findOne({ _id: packageId });
      if (!current) return undefined;
      const { issuanceId, recordId, itemId, state, createdAt } = current;
      return blobs.put(packageId, sealed, {
        issuanceId,
        recordId,
        itemId,
        state,
        createdAt,
        keyId,
      });
    },
    /** Records the key id of a package written before key ids were recorded. */
    async labelKeyId(packageId: string, keyId: string): Promise<void> {
      await blobs.collection.updateOne({ _id: packageId }, { $set: { keyId } });
    },
    /** Deletes one package (bytes first). */
    remove: (packageId: string) => blobs.deleteWhere({ _id: packageId }),
    read: (packageId: string) => blobs.read(packageId),
    /**
     * Commits the packages of an issuance's items; returns how many of them are there (committed now
     * or before). One `update` command whose statements are each an `_id` equality: FerretDB v1 would
     * answer a filter on `issuanceId` by reading every package's metadata.
     */
    async commit(issuanceId: string, itemIds: string[]): Promise<number> {
      if (itemIds.length === 0) return 0;
      const { matchedCount } = await blobs.collection.bulkWrite(
        itemIds.map((itemId) => ({
          updateOne: { filter: { _id: packageIdFor(issuanceId, itemId) }, update: { $set: { state: 'committed' } } },
        })),
        { ordered: false },
      );
      return matchedCount;
    },
    /** Deletes the pending packages of an issuance that will not be stored. */
    discardPending: (issuanceId: string) => blobs.deleteWhere({ issuanceId, state: 'pending' }),
    deleteForIssuances: (issuanceIds: string[]) => blobs.deleteWhere({ issuanceId: { $in: issuanceIds } }),
    async sweepAbandoned(olderThan: Date): Promise<number> {
      const removed = await blobs.deleteWhere({ state: 'pending', createdAt: { $lt: olderThan } });
      await blobs.deleteOrphans(olderThan);
      return removed;
    },
    count: (filter: { issuanceId?: string; recordId?: string } = {}) => blobs.collection.countDocuments(filter),
  };
}

export type PackagesRepository = ReturnType<typeof packagesRepository>;
