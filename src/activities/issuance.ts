import { Context, log } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import type { Db } from 'mongodb';
import { eciesEncrypt } from '../crypto/ecies';
import { CryptoError, parsePublicKey, type CakPublicKey } from '../crypto/keys';
import type { Keyring } from '../crypto/keyring';
import { openOuter, outerKeyId, sealOuter } from '../crypto/outer-layer';
import {
  IssuanceFailureType,
  isTransientIssuanceFailure,
  type CakCurve,
  type IssuanceStep,
  type ItemDescriptor,
  type PackageRef,
  type StoredVersion,
  stagingContext,
} from '../domain/issuance';
import type { PartnerTokenMinter } from '../platform/partner-jwt';
import { PlatformError, type PlatformClient } from '../platform/client';
import { cakKeyFingerprint, issuanceWorkflowId, recordIdFor } from '../domain/ids';
import { isDuplicateKey } from '../storage/duplicate-key';
import { issuancesRepository, type IssuanceDoc } from '../storage/issuances';
import { packageIdFor, packagesRepository } from '../storage/packages';
import { recordsRepository, type RecordIdentity } from '../storage/records';
import { STAGING_SUBJECT_ITEM_ID, stagingRepository } from '../storage/staging';

export interface IssuanceActivityDeps {
  db: Db;
  /** ID_HMAC_SECRET: recomputes the record id, workflow id and key fingerprint of every input */
  idSecret: string;
  /** issuer-managed keyring: seals staging entries and the outer layer of packages */
  managedKeyring: Keyring;
  platform: PlatformClient;
  partnerTokens: PartnerTokenMinter;
  settings: {
    gridfsThresholdBytes: number;
    recordVersionsKept: number;
    stagingTtlMs: number;
    /** PLATFORM_RETRY_HORIZON_SECONDS in ms: how long the platform call retries what may be transient */
    platformRetryHorizonMs: number;
  };
  /** test-only seams (the fault tests pause a worker between encrypt and store, then SIGKILL it) */
  hooks?: { beforeStore?: (issuanceId: string) => Promise<void> };
}

const fail = (type: string, message: string) => ApplicationFailure.create({ type, message, nonRetryable: true });

/**
 * What a failed platform call means for the run. An answer that may come from our side being briefly
 * unreachable (401/403, see PlatformError.authRefused) or from a platform outage (5xx, 408, 429,
 * timeouts) is retried with backoff until `horizonMs` after the call's first attempt, then ends the
 * run with a type that keeps the staging for an operator's retry. Any other answer ends it at once.
 */
function platformFailure(err: unknown, elapsedMs: number, horizonMs: number): unknown {
  if (!(err instanceof PlatformError)) return err; // our own failure (database, keys): retried
  if (err.code === 'PLATFORM_RESPONSE_INVALID') return fail(IssuanceFailureType.PlatformResponseInvalid, err.message);
  if (!err.retryable && !err.authRefused) return fail(IssuanceFailureType.PlatformRejected, err.message);
  if (elapsedMs < horizonMs) return err; // retried with backoff
  return fail(
    err.authRefused ? IssuanceFailureType.PlatformAuthRejected : IssuanceFailureType.PlatformUnavailable,
    `${err.message}; retried for ${Math.round(elapsedMs / 1000)} s`,
  );
}

function parseCakKey(key: string, curve: CakCurve): CakPublicKey {
  try {
    return parsePublicKey(key, curve);
  } catch (err) {
    if (err instanceof CryptoError) {
      throw fail(IssuanceFailureType.InvalidCakPublicKey, `cakPublicKey is not a valid ${curve} key (${err.code})`);
    }
    throw err;
  }
}

export function createIssuanceActivities(deps: IssuanceActivityDeps) {
  const { db, managedKeyring, settings } = deps;
  const staging = stagingRepository(db, settings.gridfsThresholdBytes);
  const packages = packagesRepository(db, settings.gridfsThresholdBytes);
  const records = recordsRepository(db);
  const issuances = issuancesRepository(db);

  /**
   * Nothing from Temporal is trusted: the issuance the API recorded is the truth, and the input
   * must match it, with the record id and workflow id recomputed from it. A mismatch is a forged or
   * corrupted start and fails the run without retrying.
   */
  async function genuineIssuance(
    input: {
      issuanceId: string;
      userId: string;
      issuerDid: string;
      schemaId?: string;
      recordId?: string;
      credentialId?: string;
      curve?: CakCurve;
      cakPublicKey?: string;
    },
    checkKey = true,
  ): Promise<IssuanceDoc> {
    const doc = await issuances.get(input.issuanceId);
    const problem = !doc
      ? 'no such issuance was accepted'
      : doc.userId !== input.userId ||
          doc.issuerDid !== input.issuerDid ||
          (input.curve !== undefined && doc.curve !== input.curve) ||
          (input.schemaId !== undefined && doc.schemaId !== input.schemaId) ||
          (input.credentialId !== undefined && doc.credentialId !== input.credentialId)
        ? 'the input does not match the accepted issuance'
        : doc.recordId !== recordIdFor(deps.idSecret, doc.issuerDid, doc.userId, doc.schemaId) ||
            (input.recordId !== undefined && input.recordId !== doc.recordId)
          ? 'recordId does not derive from (issuerDid, userId, schemaId)'
          : Context.current().info.workflowExecution?.workflowId !== issuanceWorkflowId(deps.idSecret, doc._id)
            ? 'the run is not the one this issuance id names'
            : checkKey && cakKeyFingerprint(deps.idSecret, input.cakPublicKey) !== doc.cakKeyFingerprint
              ? 'cakPublicKey is not the one the client sent'
              : undefined;
    if (problem) throw fail(IssuanceFailureType.ForgedInput, problem);
    return doc!;
  }

  const stagingGone = (itemId: string) =>
    fail(IssuanceFailureType.StagingMissing, `staged item ${itemId} is gone (expired or shredded)`);

  async function readSubject(issuanceId: string): Promise<Record<string, unknown>> {
    const sealed = await staging.readSubject(issuanceId);
    if (!sealed) throw stagingGone(STAGING_SUBJECT_ITEM_ID);
    const plaintext = openOuter(managedKeyring, sealed, stagingContext(issuanceId, STAGING_SUBJECT_ITEM_ID));
    return JSON.parse(plaintext.toString('utf8')) as Record<string, unknown>;
  }

  /** Sealed packages are written in batches of about this many bytes (one insert per collection each). */
  const PACKAGE_BATCH_BYTES = 16 * 1024 * 1024;

  return {
    /** `issue`: validate the client's key for its curve, or get one from the platform's issueCredential. */
    async obtainCakPublicKey(input: {
      issuanceId: string;
      userId: string;
      issuerDid: string;
      credentialId: string;
      curve: CakCurve;
      cakPublicKey?: string;
    }): Promise<{ cakPublicKey: string }> {
      await genuineIssuance(input);
      let cakPublicKey = input.cakPublicKey;
      if (cakPublicKey === undefined) {
        const subject = await readSubject(input.issuanceId);
        const { token } = await deps.partnerTokens.mint({ scope: 'issue', userId: input.userId });
        try {
          ({ cakPublicKey } = await deps.platform.issueCredential({
            authToken: token,
            issuerDid: input.issuerDid,
            credentialId: input.credentialId,
            credentialSubject: subject,
            curve: input.curve,
          }));
        } catch (err) {
          // from the first attempt's scheduling (Temporal's, the same on every attempt and every worker)
          const elapsedMs = Date.now() - Context.current().info.scheduledTimestampMs;
          throw platformFailure(err, elapsedMs, settings.platformRetryHorizonMs);
        }
      }
      parseCakKey(cakPublicKey, input.curve);
      await issuances.completeStep(input.issuanceId, 'issue');
      return { cakPublicKey };
    },

    /**
     * `encrypt`: each staged item is ECIES-encrypted to the CAK key (inner layer), sealed under the
     * issuer-managed key (outer layer), and written as a pending package. Returns references only.
     */
    async encryptItems(input: {
      issuanceId: string;
      recordId: string;
      curve: CakCurve;
      cakPublicKey: string;
      items: ItemDescriptor[];
    }): Promise<PackageRef[]> {
      const publicKey = parseCakKey(input.cakPublicKey, input.curve);
      // one read of the issuance's staging (inline bytes included), then one per GridFS chunk
      const entries = new Map((await staging.get(input.issuanceId))?.entries.map((e) => [e.itemId, e]));
      const refs: PackageRef[] = [];
      let batch: { item: ItemDescriptor; sealed: Buffer }[] = [];
      let batchBytes = 0;
      const flush = async () => {
        if (batch.length === 0) return;
        const stored = await packages.putPendingMany(
          input.issuanceId,
          input.recordId,
          batch.map(({ item, sealed }) => ({ itemId: item.itemId, sealed, keyId: outerKeyId(sealed) })),
        );
        batch.forEach(({ item, sealed }, i) =>
          refs.push({
            itemId: item.itemId,
            kind: item.kind,
            contentType: item.contentType,
            packageId: packageIdFor(input.issuanceId, item.itemId),
            size: stored[i]!.size,
            sha256: stored[i]!.sha256,
            curve: input.curve,
            keyId: outerKeyId(sealed),
            storage: stored[i]!.storage,
          }),
        );
        batch = [];
        batchBytes = 0;
        Context.current().heartbeat(refs.length);
      };
      for (const item of input.items) {
        const entry = entries.get(item.itemId);
        const staged = entry && (await staging.readEntry(entry));
        if (!staged) throw stagingGone(item.itemId);
        const plaintext = openOuter(managedKeyring, staged, stagingContext(input.issuanceId, item.itemId));
        const inner = eciesEncrypt(publicKey, plaintext);
        plaintext.fill(0);
        const packageId = packageIdFor(input.issuanceId, item.itemId);
        const sealed = sealOuter(managedKeyring, inner, { recordId: input.recordId, itemId: packageId });
        if (batchBytes > 0 && batchBytes + sealed.length > PACKAGE_BATCH_BYTES) await flush();
        batch.push({ item, sealed });
        batchBytes += sealed.length;
        Context.current().heartbeat(item.itemId);
      }
      await flush();
      return refs; // its completion is recorded with `shred`'s (src/storage/issuances.ts)
    },

    /** `store`: one new record version pointing at the packages; a retry finds the version it wrote. */
    async storeRecord(input: {
      issuanceId: string;
      identity: Omit<RecordIdentity, 'clientId'>;
      packages: PackageRef[];
    }): Promise<StoredVersion> {
      await deps.hooks?.beforeStore?.(input.issuanceId);
      const accepted = await genuineIssuance({ issuanceId: input.issuanceId, ...input.identity }, false);
      const expected = accepted.items.map((item) => packageIdFor(input.issuanceId, item.itemId)).sort();
      const given = input.packages.map((p) => p.packageId).sort();
      if (given.length !== expected.length || given.some((id, i) => id !== expected[i])) {
        throw fail(IssuanceFailureType.ForgedInput, "the packages are not the accepted issuance's items");
      }
      // The record belongs to the client that sent the issuance (as the API recorded it). The API
      // refused the issuance if another client held the record then; one that took it since is
      // found by `promote`, whose filter names the owner, and everything this store wrote is undone.
      const identity: RecordIdentity = { ...input.identity, clientId: accepted.clientId };
      const heartbeat = () => Context.current().heartbeat();
      heartbeat();
      const version = await records.addVersion(identity, input.issuanceId, input.packages);
      heartbeat();
      // Committing counts the packages: fewer than the run encrypted means the sweep took some (the
      // run outlived the staging TTL). The version must not stay pointing at them.
      const itemIds = accepted.items.map((item) => item.itemId);
      const present = await packages.commit(input.issuanceId, itemIds);
      if (present < itemIds.length) {
        await records.deleteVersions([input.issuanceId]);
        await packages.deleteForIssuances([input.issuanceId]);
        throw fail(IssuanceFailureType.StagingMissing, 'encrypted packages are gone (swept after the staging TTL)');
      }
      try {
        await records.promote(identity, version.version);
      } catch (err) {
        if (!isDuplicateKey(err)) throw err;
        // Two upserts of a new record collided. When the record is ours (another attempt of this
        // issuance, or another issuance of this client, created it) promoting again matches it;
        // only when another client created it in the meantime is this issuance refused.
        if ((await records.ownerOf(identity.recordId)) === identity.clientId) {
          await records.promote(identity, version.version);
        } else {
          await records.deleteVersions([input.issuanceId]);
          await packages.deleteForIssuances([input.issuanceId]);
          throw fail(IssuanceFailureType.RecordOwnedElsewhere, 'another API client holds this record');
        }
      }
      heartbeat();
      // A version takes the number after the newest one there, so while this one's number is at most
      // `kept` there are at most `kept` versions up to it; a higher-numbered issuance trims when it stores.
      if (version.version > settings.recordVersionsKept) {
        const superseded = await records.versionsBeyond(input.identity.recordId, settings.recordVersionsKept);
        if (superseded.length > 0) {
          await packages.deleteForIssuances(superseded);
          await records.deleteVersions(superseded);
        }
      }
      // its completion is recorded with `shred`'s (src/storage/issuances.ts)
      return { recordId: input.identity.recordId, version: version.version, issuanceId: input.issuanceId };
    },

    /** `shred staging`: the raw items are no longer needed once the record version exists. */
    async shredStaging(issuanceId: string): Promise<void> {
      await staging.shred(issuanceId);
      await issuances.completeStep(issuanceId, 'shred');
    },

    /**
     * A run that cannot finish: drop its uncommitted packages and record why. Its staging is shredded
     * now only when the failure is permanent; after one that was or could have been transient
     * (`isTransientIssuanceFailure`: the platform unavailable or refusing our Partner JWT for the whole
     * retry horizon, or an error of unknown type) the sealed staging stays until its expiry
     * (STAGING_TTL_SECONDS, then the sweep) so an operator can retry the issuance (`cak issuances
     * retry`) without the client resubmitting.
     */
    async abandonIssuance(input: {
      issuanceId: string;
      step: IssuanceStep;
      failure: { type: string; message: string };
    }): Promise<void> {
      // A forged run names an issuance that is not its own: it may touch nothing of that issuance.
      if (input.failure.type === IssuanceFailureType.ForgedInput) {
        log.warn('forged issuance run refused', { issuanceId: input.issuanceId });
        return;
      }
      if (!isTransientIssuanceFailure(input.failure.type)) await staging.shred(input.issuanceId);
      await packages.discardPending(input.issuanceId);
      await issuances.markFailed(input.issuanceId, input.step, input.failure);
    },

    /** The sweep: staging past its expiry, and pending packages older than the staging TTL. */
    async sweepStaging(): Promise<{ staging: number; packages: number }> {
      const now = Date.now();
      const stagingRemoved = await staging.sweepExpired(new Date(now));
      const packagesRemoved = await packages.sweepAbandoned(new Date(now - settings.stagingTtlMs));
      return { staging: stagingRemoved, packages: packagesRemoved };
    },
  };
}
