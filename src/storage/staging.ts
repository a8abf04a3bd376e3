import type { Db } from 'mongodb';
import {
  LOCATION_PROJECTION,
  blobStore,
  streamedBytesId,
  type BlobLocation,
  type BlobMeta,
  type BlobStream,
} from './blobs';

/**
 * The `staging` collection (+ `stagingBlobs` GridFS bucket): raw items and the credentialSubject of
 * an issuance between the API accepting it and the workflow encrypting it. Callers hand in bytes
 * already sealed under the issuer-managed key; nothing here is plaintext. Entries carry an
 * `expiresAt`; the workflow deletes them when it ends and the sweep schedule deletes what a dead run
 * left behind (FerretDB has no TTL indexes).
 */
export interface StagingDoc extends BlobMeta {
  issuanceId: string;
  itemId: string;
  role: 'item' | 'subject';
  createdAt: Date;
  expiresAt: Date;
}

export const STAGING_SUBJECT_ITEM_ID = '$subject';

export function stagingRepository(db: Db, thresholdBytes: number) {
  // Staging is short-lived (an issuance's run reads it once and shreds it), so an inline entry's
  // bytes live in its document: staging, reading and shredding an issuance's entries take one command each.
  const blobs = blobStore<StagingDoc>(db, {
    collection: 'staging',
    bucket: 'stagingBlobs',
    thresholdBytes,
    embedInline: true,
  });
  const idOf = (issuanceId: string, itemId: string) => `${issuanceId}/${itemId}`;
  return {
    async put(
      issuanceId: string,
      itemId: string,
      role: StagingDoc['role'],
      sealed: Uint8Array,
      ttlMs: number,
    ): Promise<void> {
      const now = new Date();
      await blobs.put(idOf(issuanceId, itemId), sealed, {
        issuanceId,
        itemId,
        role,
        createdAt: now,
        expiresAt: new Date(now.getTime() + ttlMs),
      });
    },
    /** Stages several sealed entries with one insert per collection (see `BlobStore.putMany`). */
    async putMany(
      issuanceId: string,
      entries: { itemId: string; role: StagingDoc['role']; sealed: Uint8Array }[],
      ttlMs: number,
    ): Promise<void> {
      const now = new Date();
      const expiresAt = new Date(now.getTime() + ttlMs);
      await blobs.putMany(
        entries.map((e) => ({
          id: idOf(issuanceId, e.itemId),
          bytes: e.sealed,
          fields: { issuanceId, itemId: e.itemId, role: e.role, createdAt: now, expiresAt },
        })),
      );
    },
    /**
     * A sealed item streamed in before its issuance is accepted: bytes only, under an id of their own,
     * invisible to readers until `link` makes them the entry (or `BlobStream.abort` deletes them).
     */
    openStream: (issuanceId: string, itemId: string, headLength: number): Promise<BlobStream> =>
      blobs.openStream(streamedBytesId(idOf(issuanceId, itemId)), headLength),
    async link(
      issuanceId: string,
      itemId: string,
      bytesId: string,
      blob: { size: number; sha256: string },
      ttlMs: number,
    ): Promise<void> {
      const now = new Date();
      await blobs.link(idOf(issuanceId, itemId), bytesId, blob, {
        issuanceId,
        itemId,
        role: 'item',
        createdAt: now,
        expiresAt: new Date(now.getTime() + ttlMs),
      });
    },
    read: (issuanceId: string, itemId: string) => blobs.read(idOf(issuanceId, itemId)),
    /** The credentialSubject: small, so one read of its document. */
    readSubject: (issuanceId: string) => blobs.read(idOf(issuanceId, STAGING_SUBJECT_ITEM_ID)),
    /** Every entry of an issuance, inline bytes included (one query). */
    entries: (issuanceId: string) =>
      blobs.collection.find({ issuanceId }, { projection: { ...LOCATION_PROJECTION, itemId: 1 } }).toArray() as Promise<
        (BlobLocation & Pick<StagingDoc, 'itemId'>)[]
      >,
    /** The sealed bytes of an entry listed by `entries`. */
    readEntry: (entry: BlobLocation) => blobs.readAt(entry),
    shred: (issuanceId: string) => blobs.deleteWhere({ issuanceId }),
    count: (issuanceId?: string) => blobs.collection.countDocuments(issuanceId ? { issuanceId } : {}),
    /** Deletes every entry past its expiry, and GridFS bytes orphaned by a crash; returns entries deleted. */
    async sweepExpired(now = new Date()): Promise<number> {
      const removed = await blobs.deleteWhere({ expiresAt: { $lt: now } });
      await blobs.deleteOrphans(new Date(now.getTime() - 60_000));
      return removed;
    },
  };
}

export type StagingRepository = ReturnType<typeof stagingRepository>;
