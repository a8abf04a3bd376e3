import { WorkflowExecutionAlreadyStartedError, WorkflowNotFoundError, type Client } from '@temporalio/client';
import { WorkflowIdReusePolicy } from '@temporalio/common';
import type { Db } from 'mongodb';
import { CryptoError, parsePublicKey } from '../crypto/keys';
import type { Keyring } from '../crypto/keyring';
import { createOuterSealer, sealOuter } from '../crypto/outer-layer';
import { AppError } from '../domain/errors';
import { cakKeyFingerprint, issuanceIdFor, issuanceWorkflowId, recordIdFor } from '../domain/ids';
import { FIELDS_ITEM_KIND, stagingContext, type IssuanceInput, type ItemDescriptor } from '../domain/issuance';
import { canonicalJson } from '../domain/safe-json';
import { requestFingerprint, type IssuanceRequest, type StagedFile } from '../domain/issuance-request';
import type { ClientScope } from '../config';
import type { SchemaRegistry } from '../routing/schema-registry';
import { recordsRepository } from '../storage/records';
import { issuancesRepository, type IssuanceDoc } from '../storage/issuances';
import { STAGING_SUBJECT_ITEM_ID, stagingRepository } from '../storage/staging';
import { startIssuanceRun } from '../temporal/issuance-start';

/**
 * The start request of an issuance run: its id and the searchable (pseudonymous) ids. The first
 * start rejects any earlier run of the id; an operator's retry (src/operations) allows only a failed one.
 */
export interface IntakeDeps {
  db: Db;
  /** the issuer DIDs this deployment serves (ISSUER_DIDS) */
  issuerDids: readonly string[];
  /** what each API client may issue for (API_CLIENT_SCOPES) */
  scopes: readonly ClientScope[];
  temporal: Client;
  taskQueue: string;
  registry: SchemaRegistry;
  managedKeyring: Keyring;
  idSecret: string;
  stagingTtlMs: number;
  gridfsThresholdBytes: number;
}

/**
 * Tenancy: the deployment serves its issuer DIDs, and each client only the DIDs (and optionally
 * schemas) granted to it. Anything else is a 403 before anything is recorded.
 */
export function assertClientMayIssue(
  deps: Pick<IntakeDeps, 'issuerDids' | 'scopes'>,
  clientId: string,
  request: { issuerDid: string; schemaId: string },
): void {
  if (!deps.issuerDids.includes(request.issuerDid)) {
    throw new AppError('ISSUER_NOT_SERVED', `this deployment does not issue for ${request.issuerDid}`, 403, {
      field: 'issuerDid',
    });
  }
  const granted = deps.scopes.some(
    (s) =>
      s.clientId === clientId &&
      s.issuerDid === request.issuerDid &&
      (s.schemaId === undefined || s.schemaId === request.schemaId),
  );
  if (!granted) {
    throw new AppError(
      'CLIENT_NOT_PERMITTED',
      `API client "${clientId}" may not issue ${request.schemaId} for ${request.issuerDid}`,
      403,
      { field: 'issuerDid' },
    );
  }
}

/**
 * Accepting an issuance: check tenancy, what the registry allows and the client's key, record the issuance
 * (its id is the dedup key), stage the raw items encrypted, start the workflow. Every check comes
 * before the first write, so a bad request leaves nothing behind. A repeat with the same
 * Idempotency-Key and the same request returns the first issuance; with another request, 409.
 */
/** A file part being sealed into staging as it streams (see `IssuanceIntake.upload`). */
export interface StagingSink {
  write(plaintext: Buffer): Promise<void>;
  finish(): Promise<StagedFile['sealed']>;
}

export interface Upload {
  readonly issuanceId: string;
  /** refuses what can be refused before the files (`kinds`: the items so far) */
  precheck(request: IssuanceRequest, kinds: readonly string[]): Promise<void>;
  open(itemId: string): Promise<StagingSink>;
  /** the request's staged files are now entries: `discard` leaves them */
  linked(request: IssuanceRequest): void;
  discard(): Promise<void>;
}

export function issuanceIntake(deps: IntakeDeps) {
  const issuances = issuancesRepository(deps.db);
  const staging = stagingRepository(deps.db, deps.gridfsThresholdBytes);
  const records = recordsRepository(deps.db);

  function checkKey(request: IssuanceRequest): void {
    if (request.cakPublicKey === undefined) return;
    try {
      parsePublicKey(request.cakPublicKey, request.curve);
    } catch (err) {
      if (!(err instanceof CryptoError)) throw err;
      throw new AppError('INVALID_CAK_PUBLIC_KEY', `cakPublicKey is not a valid ${request.curve} public key`, 400, {
        field: 'cakPublicKey',
        reason: err.code,
      });
    }
  }

  type Item = { descriptor: ItemDescriptor; bytes: Buffer } | { descriptor: ItemDescriptor; staged: StagedFile };

  function itemsOf(request: IssuanceRequest): Item[] {
    const items: Item[] = [
      ...request.files.map((f) => ({
        descriptor: { itemId: f.kind, kind: f.kind, contentType: f.contentType, size: f.data.length },
        bytes: f.data,
      })),
      ...(request.stagedFiles ?? []).map((f) => ({
        descriptor: { itemId: f.kind, kind: f.kind, contentType: f.contentType, size: f.size },
        staged: f,
      })),
    ];
    if (request.fields && Object.keys(request.fields).length > 0) {
      const bytes = Buffer.from(canonicalJson(request.fields), 'utf8');
      items.unshift({
        descriptor: {
          itemId: FIELDS_ITEM_KIND,
          kind: FIELDS_ITEM_KIND,
          contentType: 'application/json',
          size: bytes.length,
        },
        bytes,
      });
    }
    return items;
  }

  /** Stages the subject and the items (bytes the request carries, files it streamed) in one document. */
  async function stage(issuanceId: string, request: IssuanceRequest, items: Item[]) {
    const seal = (itemId: string, bytes: Uint8Array) =>
      sealOuter(deps.managedKeyring, bytes, stagingContext(issuanceId, itemId));
    const subject = Buffer.from(JSON.stringify(request.credentialSubject), 'utf8');
    await staging.stage(
      issuanceId,
      [
        { itemId: STAGING_SUBJECT_ITEM_ID, role: 'subject', sealed: seal(STAGING_SUBJECT_ITEM_ID, subject) },
        ...items.map((item) =>
          'bytes' in item
            ? {
                itemId: item.descriptor.itemId,
                role: 'item' as const,
                sealed: seal(item.descriptor.itemId, item.bytes),
              }
            : { itemId: item.descriptor.itemId, role: 'item' as const, streamed: item.staged.sealed },
        ),
      ],
      deps.stagingTtlMs,
    );
  }

  /** What the request can be refused for before its files: tenancy, program and items, key, record owner. */
  async function precheck(clientId: string, request: IssuanceRequest, kinds: readonly string[]): Promise<void> {
    assertClientMayIssue(deps, clientId, request);
    deps.registry.assertIssuable(request, kinds);
    checkKey(request);
    await assertOwner(clientId, request);
  }

  async function assertOwner(clientId: string, request: IssuanceRequest): Promise<string> {
    const recordId = recordIdFor(deps.idSecret, request.issuerDid, request.userId, request.schemaId);
    const owner = await records.ownerOf(recordId);
    if (owner !== undefined && owner !== clientId) {
      throw new AppError(
        'RECORD_OWNED_BY_ANOTHER_CLIENT',
        "another API client holds this user's data for this schema",
        403,
      );
    }
    return recordId;
  }

  /**
   * A multipart upload: its issuance id is fixed before the body (the staging seal binds it), and
   * each file part is sealed into staging as it streams, under bytes ids no reader sees. `accept`
   * links them as the issuance's entries; `discard` deletes every one it did not link (a refusal,
   * a replay, a broken body), so a refused upload leaves nothing behind.
   */
  function upload(clientId: string, idempotencyKey: string | undefined): Upload {
    const issuanceId = issuanceIdFor(deps.idSecret, clientId, idempotencyKey);
    const unlinked = new Map<string, () => Promise<void>>();
    return {
      issuanceId,
      precheck: (request: IssuanceRequest, kinds: readonly string[]) => precheck(clientId, request, kinds),
      async open(itemId: string): Promise<StagingSink> {
        const sealer = createOuterSealer(deps.managedKeyring, stagingContext(issuanceId, itemId));
        const stream = await staging.openStream(issuanceId, itemId, sealer.headLength);
        unlinked.set(stream.bytesId, () => stream.abort());
        return {
          write: (plaintext) => stream.write(sealer.update(plaintext)),
          async finish() {
            return { bytesId: stream.bytesId, ...(await stream.finish(sealer.final())) };
          },
        };
      },
      linked(request: IssuanceRequest): void {
        for (const file of request.stagedFiles ?? []) unlinked.delete(file.sealed.bytesId);
      },
      async discard(): Promise<void> {
        for (const [bytesId, abort] of unlinked) {
          await abort();
          unlinked.delete(bytesId);
        }
      },
    };
  }

  /**
   * Whether the run of an issuance still `accepted` exists. Asked of Temporal, not recorded by the API:
   * the worker's activities write the issuance document from the run's first step on, and FerretDB
   * applies an update as an unisolated read-modify-write, so a second writer could undo theirs.
   */
  async function runExists(workflowId: string): Promise<boolean> {
    try {
      await deps.temporal.workflow.getHandle(workflowId).describe();
      return true;
    } catch (err) {
      if (err instanceof WorkflowNotFoundError) return false;
      throw new AppError('UNAVAILABLE', 'the issuance could not be checked; retry with the same Idempotency-Key', 503, {
        cause: err instanceof Error ? err.name : 'unknown',
      });
    }
  }

  async function start(doc: IssuanceDoc, request: IssuanceRequest): Promise<void> {
    const input: IssuanceInput = {
      issuanceId: doc._id,
      recordId: doc.recordId,
      userId: doc.userId,
      issuerDid: doc.issuerDid,
      schemaId: doc.schemaId,
      credentialId: doc.credentialId,
      curve: doc.curve,
      ...(request.cakPublicKey !== undefined ? { cakPublicKey: request.cakPublicKey } : {}),
      items: doc.items,
    };
    try {
      await startIssuanceRun(deps.temporal, doc, deps.taskQueue, input, WorkflowIdReusePolicy.REJECT_DUPLICATE);
    } catch (err) {
      if (err instanceof WorkflowExecutionAlreadyStartedError) return; // an earlier attempt started it
      throw err;
    }
  }

  return {
    async accept(
      clientId: string,
      idempotencyKey: string | undefined,
      request: IssuanceRequest,
      upload?: Upload,
    ): Promise<{ doc: IssuanceDoc; replayed: boolean }> {
      const items = itemsOf(request);
      assertClientMayIssue(deps, clientId, request);
      deps.registry.assertIssuable(
        request,
        items.map((i) => i.descriptor.kind),
      );
      checkKey(request);
      const recordId = await assertOwner(clientId, request);
      const issuanceId = upload?.issuanceId ?? issuanceIdFor(deps.idSecret, clientId, idempotencyKey);
      const now = new Date();
      const candidate: IssuanceDoc = {
        _id: issuanceId,
        clientId,
        fingerprint: requestFingerprint(request, deps.idSecret),
        workflowId: issuanceWorkflowId(deps.idSecret, issuanceId),
        recordId,
        userId: request.userId,
        issuerDid: request.issuerDid,
        schemaId: request.schemaId,
        credentialId: request.credentialId,
        curve: request.curve,
        keySource: request.cakPublicKey === undefined ? 'platform' : 'client',
        ...(request.cakPublicKey !== undefined
          ? { cakKeyFingerprint: cakKeyFingerprint(deps.idSecret, request.cakPublicKey) }
          : {}),
        items: items.map((i) => i.descriptor),
        status: 'accepted',
        steps: {
          issue: { state: 'pending' },
          encrypt: { state: 'pending' },
          store: { state: 'pending' },
          shred: { state: 'pending' },
        },
        createdAt: now,
        updatedAt: now,
      };
      const { created, doc } = await issuances.create(candidate);
      if (!created) {
        if (doc.fingerprint !== candidate.fingerprint) {
          throw new AppError('IDEMPOTENCY_KEY_REUSED', 'this Idempotency-Key was used with a different request', 409);
        }
        if (doc.status !== 'accepted' || (await runExists(doc.workflowId))) return { doc, replayed: true };
        // An earlier attempt with this key stopped before its run started: finish it.
      }
      try {
        await stage(issuanceId, request, items);
        upload?.linked(request);
        await start(doc, request);
      } catch (err) {
        // The staging stays: a start that timed out may have started the run, which reads it, and a
        // retry with the same key re-stages over it. An abandoned attempt's staging expires with its TTL.
        throw new AppError(
          'UNAVAILABLE',
          'the issuance could not be started; retry with the same Idempotency-Key',
          503,
          {
            cause: err instanceof Error ? err.name : 'unknown',
          },
        );
      }
      return { doc, replayed: !created };
    },
    upload,
    get: (issuanceId: string) => issuances.get(issuanceId),
  };
}

export type IssuanceIntake = ReturnType<typeof issuanceIntake>;
