import { createHash, randomBytes } from 'node:crypto';
import { Binary, type AnyBulkWriteOperation, type Db, type Filter } from 'mongodb';
import { DUPLICATE_KEY_CODE, isDuplicateKey } from './duplicate-key';

/**
 * Byte storage of the packages collection (`blobStore`), and the GridFS bucket it shares with staging
 * (`gridFsBucket`). Each blob has a small metadata document in `collection` (queried by field:
 * issuance, state, age) and its bytes elsewhere,
 * addressed only by `_id`: below `thresholdBytes` one document in `<collection>Data`, at or above it
 * a GridFS bucket (`<bucket>.files` + `<bucket>.chunks`, the standard layout, readable by GridFS
 * tools). Chunks get deterministic ids (`<fileId>#<n>`) and are read and deleted by `_id`, never by
 * a `files_id` query: FerretDB v1 pushes only `_id` equality down to its backend and scans every
 * document (bytes included) for any other filter, which made `files_id` lookups grow with the bucket.
 *
 * Writes are idempotent and ordered so a crash leaves nothing a reader can see half-written: the
 * GridFS files document first (so every chunk is reachable for cleanup), then the chunks, then the
 * metadata document last. A repeat overwrites the same ids and trims what the earlier write had more.
 *
 * Round trips: `putMany` writes any number of blobs with one insert per collection (files, chunks,
 * inline rows, metadata; a blob written before falls back to the one-by-one `put`); a blob whose
 * metadata is at hand is read with one `find` per inline row or GridFS chunk (the chunk count comes
 * from its size, not from its files document); `deleteWhere` deletes with one multi-statement
 * `delete` command per collection, each statement an `_id` equality (no `$in`, which FerretDB v1
 * answers by scanning the collection, bytes included).
 */

export interface BlobMeta {
  _id: string;
  size: number;
  /** sha256 (hex) of the bytes */
  sha256: string;
  storage: 'inline' | 'gridfs';
}

/** One blob of a `putMany`. */
export interface BlobWrite<T extends BlobMeta> {
  id: string;
  bytes: Uint8Array;
  fields: Omit<T, keyof BlobMeta>;
}

/** What a metadata document says about where its bytes are (enough to read or delete them). */
export type BlobLocation = Pick<BlobMeta, '_id' | 'size' | 'storage'>;

/** Every write of a batch was refused as a duplicate key (unordered, or the first of an ordered one). */
function isDuplicateWrite(err: unknown): boolean {
  if (isDuplicateKey(err)) return true;
  const writeErrors = (err as { writeErrors?: { code?: unknown }[] }).writeErrors;
  return !!writeErrors?.length && writeErrors.every((e) => e.code === DUPLICATE_KEY_CODE);
}

/** A write streamed into GridFS whose first bytes come last (see `openStream`). */
export interface BlobStream {
  readonly bytesId: string;
  write(bytes: Uint8Array): Promise<void>;
  /** writes `head` over the reserved start, then reads the bytes back to hash them (and prove they all landed) */
  finish(head: Uint8Array): Promise<{ size: number; sha256: string }>;
  /** deletes whatever was written */
  abort(): Promise<void>;
}

/** Bytes of a streamed write get an id of their own, derived from the entry they are meant for. */
export const streamedBytesId = (id: string) => `${id}~${randomBytes(12).toString('base64url')}`;

export interface BlobStoreOptions {
  collection: string;
  bucket: string;
  thresholdBytes: number;
}

interface GridFile {
  _id: string;
  length: number;
  chunkSize: number;
  uploadDate: Date;
  filename: string;
}

interface Chunk {
  _id: string;
  files_id: string;
  n: number;
  data: Binary;
}

const CHUNK_BYTES = 1024 * 1024;

/** One `deleteOne` statement per id, each an `_id` equality: a single multi-statement `delete` command. */
const deletesById = <D extends { _id: string }>(ids: string[]): AnyBulkWriteOperation<D>[] =>
  [...new Set(ids)].map((_id) => ({ deleteOne: { filter: { _id } as Filter<D> } }));
const chunkId = (fileId: string, n: number) => `${fileId}#${n}`;
const chunkCount = (length: number, chunkSize: number) => Math.ceil(length / chunkSize);

/** Bytes to write into a GridFS bucket under `id`. */
export interface GridFsWrite {
  id: string;
  bytes: Uint8Array;
}

/**
 * A GridFS bucket (`<bucket>.files` + `<bucket>.chunks`) whose files are read, written and deleted
 * by `_id` only (see the module comment). Shared by `blobStore` and the staging repository.
 */
export function gridFsBucket(db: Db, bucket: string) {
  const files = db.collection<GridFile>(`${bucket}.files`);
  const chunks = db.collection<Chunk>(`${bucket}.chunks`);

  /** Deletes chunks `from`.. of a file: up to `until` when known, else until the first missing one. */
  async function deleteChunks(fileId: string, from: number, until?: number): Promise<void> {
    for (let n = from; until === undefined || n < until; n += 1) {
      const { deletedCount } = await chunks.deleteOne({ _id: chunkId(fileId, n) });
      if (deletedCount === 0 && until === undefined) return;
    }
  }

  async function deleteGridFs(fileId: string): Promise<void> {
    const file = await files.findOne({ _id: fileId });
    await deleteChunks(fileId, 0, file ? chunkCount(file.length, file.chunkSize) : undefined);
    if (file) await deleteChunks(fileId, chunkCount(file.length, file.chunkSize)); // leftovers of a longer earlier write
    await files.deleteOne({ _id: fileId });
  }

  async function writeGridFs(fileId: string, bytes: Uint8Array): Promise<void> {
    const previous = await files.findOne({ _id: fileId });
    const count = chunkCount(bytes.length, CHUNK_BYTES);
    const file: GridFile = {
      _id: fileId,
      length: bytes.length,
      chunkSize: CHUNK_BYTES,
      uploadDate: new Date(),
      filename: fileId,
    };
    await files.replaceOne({ _id: fileId }, file, { upsert: true });
    for (let n = 0; n < count; n += 1) {
      const data = new Binary(bytes.subarray(n * CHUNK_BYTES, (n + 1) * CHUNK_BYTES));
      await chunks.replaceOne({ _id: chunkId(fileId, n) }, { files_id: fileId, n, data }, { upsert: true });
    }
    if (previous) await deleteChunks(fileId, count, chunkCount(previous.length, previous.chunkSize));
  }

  /**
   * The bytes of GridFS file `fileId` of `length` bytes (from the blob's metadata: every file here
   * has CHUNK_BYTES chunks), read by chunk id only. Undefined when its first chunk is gone.
   */
  async function readGridFs(fileId: string, length: number): Promise<Buffer | undefined> {
    const parts: Buffer[] = [];
    for (let n = 0; n < chunkCount(length, CHUNK_BYTES); n += 1) {
      const chunk = await chunks.findOne({ _id: chunkId(fileId, n) });
      if (!chunk) {
        if (n === 0) return undefined;
        throw new Error(`blob ${fileId}: chunk ${n} missing`);
      }
      parts.push(Buffer.from(chunk.data.buffer));
    }
    const bytes = Buffer.concat(parts);
    if (bytes.length !== length) throw new Error(`blob ${fileId}: ${bytes.length} bytes, not ${length}`);
    return bytes;
  }

  /**
   * GridFS bytes streamed in pieces, the first `headLength` bytes given only at the end (a sealed
   * stream's head). Memory: chunk 0 and the chunk being filled. The files document comes first and
   * its length covers every chunk written so far (and its upload date is renewed), so a crash mid-
   * stream leaves bytes the orphan sweep finds and deletes whole.
   */
  async function openStream(bytesId: string, headLength: number): Promise<BlobStream> {
    const first = Buffer.alloc(CHUNK_BYTES);
    const current = Buffer.alloc(CHUNK_BYTES);
    let firstFill = headLength;
    let fill = 0;
    let n = 1; // index of the chunk `current` fills
    const fileDoc = (length: number): GridFile => ({
      _id: bytesId,
      length,
      chunkSize: CHUNK_BYTES,
      uploadDate: new Date(),
      filename: bytesId,
    });
    const writeChunk = (index: number, data: Uint8Array) =>
      chunks.replaceOne(
        { _id: chunkId(bytesId, index) },
        { files_id: bytesId, n: index, data: new Binary(data) },
        { upsert: true },
      );
    await files.replaceOne({ _id: bytesId }, fileDoc(CHUNK_BYTES), { upsert: true });
    return {
      bytesId,
      async write(bytes) {
        const source = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
        let at = 0;
        if (firstFill < CHUNK_BYTES) {
          const taken = source.copy(first, firstFill, at);
          firstFill += taken;
          at += taken;
        }
        while (at < source.length) {
          const taken = source.copy(current, fill, at);
          fill += taken;
          at += taken;
          if (fill === CHUNK_BYTES) {
            await files.replaceOne({ _id: bytesId }, fileDoc((n + 1) * CHUNK_BYTES));
            await writeChunk(n, current);
            n += 1;
            fill = 0;
          }
        }
      },
      async finish(head) {
        if (head.length !== headLength)
          throw new Error(`blob ${bytesId}: head is ${head.length} bytes, not ${headLength}`);
        Buffer.from(head.buffer, head.byteOffset, head.length).copy(first);
        const length = firstFill < CHUNK_BYTES ? firstFill : n * CHUNK_BYTES + fill;
        if (fill > 0) await writeChunk(n, current.subarray(0, fill));
        await writeChunk(0, first.subarray(0, Math.min(firstFill, CHUNK_BYTES)));
        await files.replaceOne({ _id: bytesId }, fileDoc(length));
        const hash = createHash('sha256');
        for (let i = 0; i < chunkCount(length, CHUNK_BYTES); i += 1) {
          const chunk = await chunks.findOne({ _id: chunkId(bytesId, i) });
          if (!chunk) throw new Error(`blob ${bytesId}: chunk ${i} missing`);
          hash.update(chunk.data.buffer);
        }
        return { size: length, sha256: hash.digest('hex') };
      },
      abort: () => deleteGridFs(bytesId),
    };
  }

  return {
    files,
    write: writeGridFs,
    read: readGridFs,
    remove: deleteGridFs,
    openStream,

    /**
     * Writes files none of which exists yet with one insert per collection (files documents first,
     * so every chunk is reachable for cleanup); when one exists (a retry), all are written again one
     * by one, overwriting and trimming.
     */
    async writeMany(writes: GridFsWrite[]): Promise<void> {
      if (writes.length === 0) return;
      try {
        const uploadDate = new Date();
        await files.insertMany(
          writes.map(({ id, bytes }) => ({
            _id: id,
            length: bytes.length,
            chunkSize: CHUNK_BYTES,
            uploadDate,
            filename: id,
          })),
        );
        await chunks.insertMany(
          writes.flatMap(({ id, bytes }) =>
            Array.from({ length: chunkCount(bytes.length, CHUNK_BYTES) }, (_, n) => ({
              _id: chunkId(id, n),
              files_id: id,
              n,
              data: new Binary(bytes.subarray(n * CHUNK_BYTES, (n + 1) * CHUNK_BYTES)),
            })),
          ),
        );
      } catch (err) {
        if (!isDuplicateWrite(err)) throw err;
        for (const { id, bytes } of writes) await writeGridFs(id, bytes);
      }
    },

    /** Deletes files whose lengths are known: one multi-statement `delete` per collection, chunks first. */
    async removeMany(located: { id: string; size: number }[]): Promise<void> {
      if (located.length === 0) return;
      const chunkIds = located.flatMap(({ id, size }) =>
        Array.from({ length: chunkCount(size, CHUNK_BYTES) }, (_, n) => chunkId(id, n)),
      );
      await chunks.bulkWrite(deletesById(chunkIds), { ordered: false });
      await files.bulkWrite(deletesById(located.map(({ id }) => id)), { ordered: false });
    },

    /** Ids of files uploaded (or last written to) before `before`: candidates for an orphan sweep. */
    async uploadedBefore(before: Date): Promise<string[]> {
      return (await files.find({ uploadDate: { $lt: before } }, { projection: { _id: 1 } }).toArray()).map(
        (f) => f._id,
      );
    },
  };
}

export function blobStore<T extends BlobMeta>(db: Db, options: BlobStoreOptions) {
  const meta = db.collection<T>(options.collection);
  const inline = db.collection<{ _id: string; data: Binary }>(`${options.collection}Data`);
  const gridfs = gridFsBucket(db, options.bucket);

  async function readAt(doc: BlobLocation): Promise<Buffer | undefined> {
    if (doc.storage === 'gridfs') return gridfs.read(doc._id, doc.size);
    const row = await inline.findOne({ _id: doc._id });
    return row ? Buffer.from(row.data.buffer) : undefined;
  }

  /**
   * Deletes the bytes of each blob where its metadata says they are (one multi-statement `delete`
   * per collection, every statement an `_id` equality), then the metadata documents. (A `put` that
   * crashed between writing a blob in its new form and deleting the old form leaves the old bytes
   * behind; such a rewrite happens only when a retry crosses the threshold.)
   */
  async function deleteAt(docs: BlobLocation[]): Promise<void> {
    if (docs.length === 0) return;
    const small = docs.filter((d) => d.storage !== 'gridfs');
    if (small.length > 0) await inline.bulkWrite(deletesById(small.map((d) => d._id)), { ordered: false });
    await gridfs.removeMany(docs.filter((d) => d.storage === 'gridfs').map((d) => ({ id: d._id, size: d.size })));
    await meta.bulkWrite(deletesById<T>(docs.map((d) => d._id)), { ordered: false });
  }

  /** Writes (or rewrites) the bytes and their metadata document; returns what was recorded. */
  async function put(id: string, bytes: Uint8Array, fields: Omit<T, keyof BlobMeta>): Promise<BlobMeta> {
    const sha256 = createHash('sha256').update(bytes).digest('hex');
    const big = bytes.length >= options.thresholdBytes;
    if (big) await gridfs.write(id, bytes);
    else await inline.replaceOne({ _id: id }, { data: new Binary(bytes) }, { upsert: true });
    const record: BlobMeta = { _id: id, size: bytes.length, sha256, storage: big ? 'gridfs' : 'inline' };
    await meta.replaceOne({ _id: id } as Filter<T>, { ...fields, ...record } as unknown as T, { upsert: true });
    // a retry may have crossed the threshold the other way
    if (big) await inline.deleteOne({ _id: id });
    else if (await gridfs.files.findOne({ _id: id }, { projection: { _id: 1 } })) await gridfs.remove(id);
    return record;
  }

  return {
    collection: meta,

    put,

    /**
     * Writes blobs none of which exists yet with one insert per collection: GridFS files documents,
     * then their chunks, then inline rows, then the metadata documents (last, as in `put`). When one
     * of them exists already (a retry, a re-staged request), every blob is written again one by one
     * with `put`, which overwrites and trims what is there.
     */
    async putMany(entries: BlobWrite<T>[]): Promise<BlobMeta[]> {
      const planned = entries.map((e) => {
        const record: BlobMeta = {
          _id: e.id,
          size: e.bytes.length,
          sha256: createHash('sha256').update(e.bytes).digest('hex'),
          storage: e.bytes.length >= options.thresholdBytes ? 'gridfs' : 'inline',
        };
        return { e, record };
      });
      const small = planned.filter((p) => p.record.storage === 'inline');
      try {
        await gridfs.writeMany(
          planned.filter((p) => p.record.storage === 'gridfs').map(({ e }) => ({ id: e.id, bytes: e.bytes })),
        );
        if (small.length > 0) await inline.insertMany(small.map(({ e }) => ({ _id: e.id, data: new Binary(e.bytes) })));
        if (planned.length > 0)
          await meta.insertMany(planned.map(({ e, record }) => ({ ...e.fields, ...record }) as unknown as T) as never);
        return planned.map((p) => p.record);
      } catch (err) {
        if (!isDuplicateWrite(err)) throw err;
        const written: BlobMeta[] = [];
        for (const { e } of planned) written.push(await put(e.id, e.bytes, e.fields));
        return written;
      }
    },

    async read(id: string): Promise<Buffer | undefined> {
      const doc = (await meta.findOne({ _id: id } as Filter<T>)) as BlobMeta | null;
      return doc ? readAt(doc) : undefined;
    },

    /** Reads a blob whose metadata document is at hand (e.g. from `find`), without reading it again. */
    readAt,

    /** Deletes every blob matching the filter, bytes first; returns how many metadata documents went. */
    async deleteWhere(filter: Filter<T>): Promise<number> {
      const docs = (await meta
        .find(filter, { projection: { _id: 1, storage: 1, size: 1 } })
        .toArray()) as unknown as BlobLocation[];
      await deleteAt(docs);
      return docs.length;
    },

    /** Deletes blobs whose metadata documents are at hand (e.g. from `find`), bytes first. */
    deleteAt,

    /** Bytes whose metadata document was never written (a crash mid-put), older than `before`. */
    async deleteOrphans(before: Date): Promise<number> {
      let removed = 0;
      for (const _id of await gridfs.uploadedBefore(before)) {
        if (!(await meta.findOne({ _id } as Filter<T>, { projection: { _id: 1 } }))) {
          await gridfs.remove(_id);
          removed += 1;
        }
      }
      return removed;
    },
  };
}

export type BlobStore<T extends BlobMeta> = ReturnType<typeof blobStore<T>>;
