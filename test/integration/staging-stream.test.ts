import { createHash, randomBytes } from 'node:crypto';
import type { Db } from 'mongodb';
import { stagingContext } from '../../src/domain/issuance';
import { parseKeyring } from '../../src/crypto/keyring';
import { createOuterSealer, openOuter, sealOuter } from '../../src/crypto/outer-layer';
import { stagingRepository } from '../../src/storage/staging';
import { openDb, uniqueDbName } from '../support/system';
import { testConfig } from '../support/temporal';

const config = testConfig({ MONGODB_DB: uniqueDbName('stream') });
const keyring = parseKeyring(config.CAK_MANAGED_KEYS);
const HEAD = createOuterSealer(keyring, stagingContext('iss_x', 'x')).headLength;

/**
 * Streamed staging (multipart uploads): an item sealed piece by piece into GridFS, its head written
 * last, opens like one sealed whole; its bytes stay invisible until linked, and every way out
 * (abort, shred, the orphan sweep) leaves no chunk behind.
 */
describe('streamed staging', () => {
  let database: { db: Db; close(): Promise<void> };
  let db: Db;
  const sha256 = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
  const counts = async () => ({
    entries: await db.collection('staging').countDocuments({}),
    files: await db.collection('stagingBlobs.files').countDocuments({}),
    chunks: await db.collection('stagingBlobs.chunks').countDocuments({}),
  });

  beforeAll(async () => {
    database = await openDb(config);
    db = database.db;
  });
  afterAll(async () => {
    await db?.dropDatabase().catch(() => undefined);
    await database?.close();
  });

  /** Streams `plain` in pieces of `piece` bytes, as an upload would. */
  async function stream(issuanceId: string, itemId: string, plain: Buffer, piece: number) {
    const staging = stagingRepository(db, 64 * 1024);
    const sealer = createOuterSealer(keyring, stagingContext(issuanceId, itemId));
    const blob = await staging.openStream(issuanceId, itemId, sealer.headLength);
    for (let at = 0; at < plain.length; at += piece) await blob.write(sealer.update(plain.subarray(at, at + piece)));
    return { staging, blob, sealer };
  }

  it.each([
    ['within the first chunk', 10_000, 4096],
    ['ending exactly at a chunk end', 2 * 1024 * 1024 - HEAD, 65_536],
    ['over several chunks, odd pieces', 3 * 1024 * 1024 + 12_345, 65_537],
  ])('%s: links and reads back what sealOuter would open', async (_name, size, piece) => {
    const issuanceId = `iss_${randomBytes(6).toString('hex')}`;
    const plain = randomBytes(size);
    const { staging, blob, sealer } = await stream(issuanceId, 'id-front', plain, piece);
    const finished = await blob.finish(sealer.final());
    expect(await staging.read(issuanceId, 'id-front')).toBeUndefined(); // not an entry until linked
    await staging.stage(
      issuanceId,
      [{ itemId: 'id-front', role: 'item', streamed: { bytesId: blob.bytesId, ...finished } }],
      60_000,
    );
    const sealed = (await staging.read(issuanceId, 'id-front'))!;
    expect(sealed.length).toBe(sealOuter(keyring, plain, stagingContext(issuanceId, 'id-front')).length);
    expect({ size: sealed.length, sha256: sha256(sealed) }).toEqual(finished);
    expect(openOuter(keyring, sealed, stagingContext(issuanceId, 'id-front')).equals(plain)).toBe(true);
    await staging.shred(issuanceId);
    expect(await counts()).toEqual({ entries: 0, files: 0, chunks: 0 });
  });

  it('keeps at most 8 MiB inline in one staging document: larger stagings spill into GridFS, and read back whole', async () => {
    const staging = stagingRepository(db, 256 * 1024);
    const entries = Array.from({ length: 36 }, (_, i) => ({
      itemId: `item-${i}`,
      role: 'item' as const,
      sealed: randomBytes(250_000),
    }));
    await staging.stage('iss_budget', entries, 60_000);
    const doc = (await staging.get('iss_budget'))!;
    expect(doc.entries.filter((e) => e.storage === 'inline')).toHaveLength(Math.floor((8 * 1024 * 1024) / 250_000));
    expect(doc.entries.filter((e) => e.storage === 'gridfs')).toHaveLength(36 - 33);
    for (const [i, e] of doc.entries.entries())
      expect((await staging.readEntry(e))!.equals(entries[i]!.sealed)).toBe(true);
    expect(await staging.shred('iss_budget')).toBe(36);
    expect(await counts()).toEqual({ entries: 0, files: 0, chunks: 0 });
  });

  it('abort deletes a stream mid-way; the sweep deletes unlinked bytes once a minute old, never linked ones', async () => {
    const plain = randomBytes(2 * 1024 * 1024 + 5);
    const aborted = await stream('iss_abort', 'id-front', plain, 100_000);
    await aborted.blob.abort();
    expect(await counts()).toEqual({ entries: 0, files: 0, chunks: 0 });

    const orphan = await stream('iss_orphan', 'id-front', plain, 100_000); // a crash: never finished
    const kept = await stream('iss_kept', 'id-front', plain, 100_000);
    const finished = await kept.blob.finish(kept.sealer.final());
    await kept.staging.stage(
      'iss_kept',
      [{ itemId: 'id-front', role: 'item', streamed: { bytesId: kept.blob.bytesId, ...finished } }],
      3_600_000,
    );
    expect(await orphan.staging.sweepExpired()).toBe(0);
    expect((await counts()).files).toBe(2); // the orphan is younger than a minute
    await db.collection('stagingBlobs.files').updateMany({}, { $set: { uploadDate: new Date(Date.now() - 120_000) } });
    await orphan.staging.sweepExpired();
    expect(await counts()).toEqual({ entries: 1, files: 1, chunks: 3 });
    expect(
      openOuter(keyring, (await kept.staging.read('iss_kept', 'id-front'))!, stagingContext('iss_kept', 'id-front')),
    ).toEqual(plain);
  });
});
