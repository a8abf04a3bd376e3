import { createHash, randomBytes } from 'node:crypto';
import type { Db } from 'mongodb';
import type { Keyring } from '../crypto/keyring';
import { openOuter, outerKeyId, rewrapOuter } from '../crypto/outer-layer';
import { packagesRepository, type PackageDoc, type PackagesRepository } from '../storage/packages';
import { recordsRepository } from '../storage/records';

/**
 * Key rotation helpers for operators (`cak keys ...`): new key material, where stored packages
 * stand per managed key, and the rewrap that moves every stored package's outer layer to the active
 * managed key (docs/crypto.md "Keyrings and rotation").
 */

/**
 * A new keyring entry, `kid:base64(32 random bytes)`. The default kid has a fixed length
 * (`k` + UTC date + 8 hex digits), so a rewrap between two generated keys keeps every package the
 * same size and changes only its first bytes.
 */
export function generateKeyringEntry(kid?: string, now = new Date()): string {
  const id = kid ?? `k${now.toISOString().slice(0, 10).replace(/-/g, '')}-${randomBytes(4).toString('hex')}`;
  return `${id}:${randomBytes(32).toString('base64')}`;
}

/** A new Standard Webhooks secret for CALLBACK_SECRETS / NOTIFY_SECRET. */
export function generateWebhookSecret(): string {
  return `whsec_${randomBytes(32).toString('base64')}`;
}

export interface KidCount {
  committed: number;
  pending: number;
}
export type KeyCounts = Record<string, KidCount>;

const sha256 = (bytes: Uint8Array) => createHash('sha256').update(bytes).digest('hex');
/** Counted under this name: a metadata document whose bytes are missing. */
const MISSING_BYTES = '(bytes missing)';

async function keyIdOf(packages: PackagesRepository, doc: PackageDoc): Promise<string> {
  if (doc.keyId !== undefined) return doc.keyId;
  const sealed = await packages.read(doc._id);
  return sealed ? outerKeyId(sealed) : MISSING_BYTES;
}

async function* walk(packages: PackagesRepository, batchSize: number): AsyncGenerator<PackageDoc> {
  let after: string | undefined;
  for (;;) {
    const page = await packages.page(after, batchSize);
    yield* page;
    if (page.length < batchSize) return;
    after = page[page.length - 1]!._id;
  }
}

/** Stored packages per outer key id, committed and pending (reads the bytes only of unlabelled ones). */
export async function packageKeyCounts(db: Db, thresholdBytes: number, batchSize = 500): Promise<KeyCounts> {
  const packages = packagesRepository(db, thresholdBytes);
  const counts: KeyCounts = {};
  for await (const doc of walk(packages, batchSize)) {
    const kid = await keyIdOf(packages, doc);
    const entry = (counts[kid] ??= { committed: 0, pending: 0 });
    entry[doc.state] += 1;
  }
  return counts;
}

export interface RewrapReport {
  activeKeyId: string;
  dryRun: boolean;
  /** committed packages looked at */
  scanned: number;
  /** rewrapped to the active key (with --dry-run: would be) */
  rewrapped: number;
  alreadyActive: number;
  /** pending packages are left alone: `store` commits them within minutes, or the sweep deletes them */
  pendingSkipped: number;
  /** deleted while the walk ran (superseded by a newer record version) */
  vanished: number;
  failed: { packageId: string; keyId: string; error: string }[];
  before: KeyCounts;
  after: KeyCounts;
}

/**
 * Moves the outer layer of every committed package not under the active managed key to it with
 * `rewrapOuter` (the DEK is re-wrapped; the body, and so the inner CAK layer, is copied unchanged).
 * Each rewrap is checked before it is written (the new bytes open, to the same inner package) and
 * after (the stored bytes read back and open). Idempotent and resumable: a package already under
 * the active key is skipped by its recorded key id, so a second run, or a run after a crash,
 * rewraps only what is left. The record version's manifest entry (key id, size, hash) is updated.
 * Run one rewrap at a time (manifest updates are read-modify-write).
 */
export async function rewrapPackages(
  db: Db,
  keyring: Keyring,
  options: { thresholdBytes: number; batchSize: number; dryRun: boolean; onProgress?: (report: RewrapReport) => void },
): Promise<RewrapReport> {
  const packages = packagesRepository(db, options.thresholdBytes);
  const records = recordsRepository(db);
  const active = keyring.activeKeyId;
  const report: RewrapReport = {
    activeKeyId: active,
    dryRun: options.dryRun,
    scanned: 0,
    rewrapped: 0,
    alreadyActive: 0,
    pendingSkipped: 0,
    vanished: 0,
    failed: [],
    before: await packageKeyCounts(db, options.thresholdBytes, options.batchSize),
    after: {},
  };

  async function rewrapOne(doc: PackageDoc): Promise<void> {
    if (doc.keyId === active) {
      report.alreadyActive += 1;
      return;
    }
    const sealed = await packages.read(doc._id);
    if (!sealed) {
      report.vanished += 1;
      return;
    }
    const kid = outerKeyId(sealed);
    if (kid === active) {
      if (!options.dryRun) await packages.labelKeyId(doc._id, kid);
      report.alreadyActive += 1;
      return;
    }
    const context = { recordId: doc.recordId, itemId: doc._id };
    try {
      const inner = sha256(openOuter(keyring, sealed, context));
      const rewrapped = rewrapOuter(keyring, sealed, context);
      if (outerKeyId(rewrapped) !== active || sha256(openOuter(keyring, rewrapped, context)) !== inner) {
        throw new Error('the rewrapped package does not open to the same inner package');
      }
      if (options.dryRun) {
        report.rewrapped += 1;
        return;
      }
      const stored = await packages.replaceSealed(doc._id, rewrapped, active);
      if (!stored) {
        report.vanished += 1;
        return;
      }
      const readBack = await packages.read(doc._id);
      if (!readBack || sha256(readBack) !== stored.sha256 || sha256(openOuter(keyring, readBack, context)) !== inner) {
        throw new Error('the stored package does not read back as written');
      }
      const version = await records.versionFor(doc.issuanceId);
      if (!version) {
        // superseded and deleted while we rewrote it: do not leave the rewritten copy behind
        await packages.remove(doc._id);
        report.vanished += 1;
        return;
      }
      const manifest = version.manifest.map((entry) =>
        entry.packageId === doc._id
          ? { ...entry, keyId: active, size: stored.size, sha256: stored.sha256, storage: stored.storage }
          : entry,
      );
      await records.versions.updateOne({ _id: version._id }, { $set: { manifest } });
      report.rewrapped += 1;
    } catch (err) {
      report.failed.push({ packageId: doc._id, keyId: kid, error: err instanceof Error ? err.message : String(err) });
    }
  }

  for await (const doc of walk(packages, options.batchSize)) {
    if (doc.state === 'pending') {
      report.pendingSkipped += 1;
      continue;
    }
    report.scanned += 1;
    await rewrapOne(doc);
    if (report.scanned % options.batchSize === 0) options.onProgress?.(report);
  }
  report.after = await packageKeyCounts(db, options.thresholdBytes, options.batchSize);
  return report;
}
