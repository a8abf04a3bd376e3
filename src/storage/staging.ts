import { Binary, type Db } from 'mongodb';
import { gridFsBucket, streamedBytesId, type BlobStream } from './blobs';
import { isDuplicateKey } from './duplicate-key';

/**
 * The `staging` collection (+ `stagingBlobs` GridFS bucket): the raw items and the credentialSubject
 * of an issuance between the API accepting it and the workflow encrypting them. Callers hand in
 * bytes already sealed under the issuer-managed key; nothing here is plaintext.
 *
 * One document per issuance, keyed by the issuance id: FerretDB v1 answers only `_id` equality
 * without reading every document of the collection, so every read, write and delete of an
 * issuance's staging is one command by `_id` whatever else is in flight. An entry below the GridFS
 * threshold keeps its bytes in the document; a larger one (or one streamed by a multipart upload)
 * lives in GridFS and the document names its file. Documents carry an `expiresAt`; the workflow
 * shreds its issuance's document when it ends and the sweep schedule deletes what a dead run left
 * behind (FerretDB has no TTL indexes).
 */
export interface StagedEntry {
  itemId: string;
  role: 'item' | 'subject';
  size: number;
  storage: 'inline' | 'gridfs';
  /** the sealed bytes, inline */
  data?: Binary;
  /** the GridFS file holding the sealed bytes */
  bytesId?: string;
}

export interface StagingDoc {
  /** the issuance id */
  _id: string;
  issuanceId: string;
  entries: StagedEntry[];
  entryCount: number;
  createdAt: Date;
  expiresAt: Date;
}

/** What the API stages: sealed bytes, or a file already streamed into GridFS (`openStream`). */
export type StageEntry =
  | { itemId: string; role: StagedEntry['role']; sealed: Uint8Array }
  | { itemId: string; role: 'item'; streamed: { bytesId: string; size: number } };

export const STAGING_SUBJECT_ITEM_ID = '$subject';

/** Inline bytes one staging document may hold (MongoDB's documents end at 16 MiB); the rest go to GridFS. */
const INLINE_BUDGET_BYTES = 8 * 1024 * 1024;

/** Streamed bytes are written under `<issuanceId>/<itemId>~<random>`: the issuance id leads. */
const issuanceOf = (fileId: string) => fileId.split('/')[0]!;

export function stagingRepository(db: Db, thresholdBytes: number) {
  const staging = db.collection<StagingDoc>('staging');
  const gridfs = gridFsBucket(db, 'stagingBlobs');
  const filesOf = (doc: Pick<StagingDoc, 'entries'> | null) =>
    (doc?.entries ?? []).flatMap((e) => (e.bytesId ? [{ id: e.bytesId, size: e.size }] : []));

  async function readEntry(entry: StagedEntry): Promise<Buffer | undefined> {
    if (entry.data) return Buffer.from(entry.data.buffer);
    return entry.bytesId ? gridfs.read(entry.bytesId, entry.size) : undefined;
  }

  async function get(issuanceId: string): Promise<StagingDoc | null> {
    return staging.findOne({ _id: issuanceId });
  }

  async function read(issuanceId: string, itemId: string): Promise<Buffer | undefined> {
    const entry = (await get(issuanceId))?.entries.find((e) => e.itemId === itemId);
    return entry && readEntry(entry);
  }

  /** Deletes an issuance's staging: its document, then the GridFS files it named. */
  async function shred(issuanceId: string): Promise<number> {
    const doc = await staging.findOneAndDelete({ _id: issuanceId });
    await gridfs.removeMany(filesOf(doc));
    return doc?.entryCount ?? 0;
  }

  return {
    /**
     * Stages an issuance's entries with one insert (plus one per GridFS collection for large
     * entries). Staging again (a retried request re-stages over an earlier attempt) replaces the
     * document and deletes the files only the earlier one named.
     */
    async stage(issuanceId: string, entries: StageEntry[], ttlMs: number): Promise<void> {
      const big: { id: string; bytes: Uint8Array }[] = [];
      let inlineBytes = 0;
      const staged = entries.map((e): StagedEntry => {
        if ('streamed' in e) {
          if (issuanceOf(e.streamed.bytesId) !== issuanceId)
            throw new Error(`${e.streamed.bytesId} is not ${issuanceId}'s`);
          return {
            itemId: e.itemId,
            role: e.role,
            size: e.streamed.size,
            storage: 'gridfs',
            bytesId: e.streamed.bytesId,
          };
        }
        if (e.sealed.length < thresholdBytes && inlineBytes + e.sealed.length <= INLINE_BUDGET_BYTES) {
          inlineBytes += e.sealed.length;
          return {
            itemId: e.itemId,
            role: e.role,
            size: e.sealed.length,
            storage: 'inline',
            data: new Binary(e.sealed),
          };
        }
        const bytesId = `${issuanceId}/${e.itemId}`;
        big.push({ id: bytesId, bytes: e.sealed });
        return { itemId: e.itemId, role: e.role, size: e.sealed.length, storage: 'gridfs', bytesId };
      });
      await gridfs.writeMany(big);
      const now = new Date();
      const doc: StagingDoc = {
        _id: issuanceId,
        issuanceId,
        entries: staged,
        entryCount: staged.length,
        createdAt: now,
        expiresAt: new Date(now.getTime() + ttlMs),
      };
      try {
        await staging.insertOne(doc);
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        const previous = await staging.findOneAndReplace({ _id: issuanceId }, doc);
        const kept = new Set(filesOf(doc).map((f) => f.id));
        await gridfs.removeMany(filesOf(previous).filter((f) => !kept.has(f.id)));
      }
    },

    /**
     * A sealed item streamed in before its issuance is accepted: GridFS bytes under an id of their
     * own, invisible to readers until `stage` names them (or `BlobStream.abort` deletes them).
     */
    openStream: (issuanceId: string, itemId: string, headLength: number): Promise<BlobStream> =>
      gridfs.openStream(streamedBytesId(`${issuanceId}/${itemId}`), headLength),

    /** An issuance's staging: every entry, inline bytes included (one read by `_id`). */
    get,
    /** The sealed bytes of an entry of `get`. */
    readEntry,
    read,
    readSubject: (issuanceId: string) => read(issuanceId, STAGING_SUBJECT_ITEM_ID),
    shred,

    /** Entries staged for one issuance, or for all of them. */
    async count(issuanceId?: string): Promise<number> {
      const docs = await staging
        .find(issuanceId === undefined ? {} : { _id: issuanceId }, { projection: { entryCount: 1 } })
        .toArray();
      return docs.reduce((sum, d) => sum + d.entryCount, 0);
    },

    /**
     * Deletes the staging of every issuance past its expiry, and GridFS files no staging names (a
     * crash mid-upload or mid-shred) once a minute old; returns the entries deleted.
     */
    async sweepExpired(now = new Date()): Promise<number> {
      let removed = 0;
      const expired = await staging.find({ expiresAt: { $lt: now } }, { projection: { _id: 1 } }).toArray();
      for (const { _id } of expired) removed += await shred(_id);
      const named = new Map<string, Set<string>>();
      for (const fileId of await gridfs.uploadedBefore(new Date(now.getTime() - 60_000))) {
        const issuanceId = issuanceOf(fileId);
        if (!named.has(issuanceId)) {
          named.set(issuanceId, new Set(filesOf(await get(issuanceId)).map((f) => f.id)));
        }
        if (!named.get(issuanceId)!.has(fileId)) await gridfs.remove(fileId);
      }
      return removed;
    },
  };
}

export type StagingRepository = ReturnType<typeof stagingRepository>;
