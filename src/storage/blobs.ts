import { createHash } from 'node:crypto';
import { Binary, GridFSBucket, type Db, type Filter, type ObjectId } from 'mongodb';

/**
 * Byte storage shared by the staging and packages collections: one metadata document per blob
 * (keyed by a deterministic string id), the bytes inline below `threshold` and in a GridFS bucket
 * (same id) at or above it. Writes are idempotent: a repeat replaces the earlier bytes, including
 * a half-written GridFS file left by a crash. The metadata document is written last, so it only
 * ever points at complete bytes.
 */

export interface BlobMeta {
  _id: string;
  size: number;
  /** sha256 (hex) of the bytes */
  sha256: string;
  storage: 'inline' | 'gridfs';
  data?: Binary;
}

export interface BlobStoreOptions {
  collection: string;
  bucket: string;
  thresholdBytes: number;
}

const CHUNK_BYTES = 1024 * 1024;

export function blobStore<T extends BlobMeta>(db: Db, options: BlobStoreOptions) {
  const meta = db.collection<T>(options.collection);
  const bucket = new GridFSBucket(db, { bucketName: options.bucket, chunkSizeBytes: CHUNK_BYTES });
  const files = db.collection<{ _id: string }>(`${options.bucket}.files`);
  const chunks = db.collection<{ files_id: string }>(`${options.bucket}.chunks`);

  async function deleteGridFs(id: string): Promise<void> {
    await files.deleteOne({ _id: id });
    await chunks.deleteMany({ files_id: id });
  }

  async function upload(id: string, bytes: Uint8Array): Promise<void> {
    await deleteGridFs(id);
    // GridFS ids are typed as ObjectId but any BSON value works; ours are deterministic strings.
    const stream = bucket.openUploadStreamWithId(id as unknown as ObjectId, id);
    await new Promise<void>((resolve, reject) => {
      stream.once('finish', () => resolve());
      stream.once('error', reject);
      stream.end(bytes);
    });
  }

  return {
    collection: meta,

    /** Writes (or rewrites) the bytes and their metadata document; returns what was recorded. */
    async put(id: string, bytes: Uint8Array, fields: Omit<T, keyof BlobMeta>): Promise<BlobMeta> {
      const sha256 = createHash('sha256').update(bytes).digest('hex');
      const gridfs = bytes.length >= options.thresholdBytes;
      if (gridfs) await upload(id, bytes);
      const record: BlobMeta = {
        _id: id,
        size: bytes.length,
        sha256,
        storage: gridfs ? 'gridfs' : 'inline',
        ...(gridfs ? {} : { data: new Binary(bytes) }),
      };
      const doc = { ...fields, ...record } as unknown as T;
      await meta.replaceOne({ _id: id } as Filter<T>, doc, { upsert: true });
      if (!gridfs) await deleteGridFs(id); // a retry may have crossed the threshold the other way
      return { _id: id, size: record.size, sha256, storage: record.storage };
    },

    async read(id: string): Promise<Buffer | undefined> {
      const doc = (await meta.findOne({ _id: id } as Filter<T>)) as BlobMeta | null;
      if (!doc) return undefined;
      if (doc.storage === 'inline') return Buffer.from(doc.data?.buffer ?? new Uint8Array());
      const parts: Buffer[] = [];
      for await (const chunk of bucket.openDownloadStream(id as unknown as ObjectId)) parts.push(chunk as Buffer);
      return Buffer.concat(parts);
    },

    /** Deletes every blob matching the filter, bytes first; returns how many metadata documents went. */
    async deleteWhere(filter: Filter<T>): Promise<number> {
      const docs = await meta.find(filter, { projection: { _id: 1, storage: 1 } }).toArray();
      for (const doc of docs as unknown as BlobMeta[]) if (doc.storage === 'gridfs') await deleteGridFs(doc._id);
      if (docs.length === 0) return 0;
      const res = await meta.deleteMany({ _id: { $in: docs.map((d) => d._id) } } as Filter<T>);
      return res.deletedCount;
    },

    /** GridFS files with no metadata document (a crash between the two writes), older than `before`. */
    async deleteOrphanFiles(before: Date): Promise<number> {
      const candidates = await db
        .collection<{ _id: string; uploadDate: Date }>(`${options.bucket}.files`)
        .find({ uploadDate: { $lt: before } }, { projection: { _id: 1 } })
        .toArray();
      let removed = 0;
      for (const file of candidates) {
        const owner = await meta.findOne({ _id: file._id } as Filter<T>, { projection: { _id: 1 } });
        if (!owner) {
          await deleteGridFs(file._id);
          removed += 1;
        }
      }
      return removed;
    },
  };
}

export type BlobStore<T extends BlobMeta> = ReturnType<typeof blobStore<T>>;
