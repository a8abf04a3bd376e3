import { WorkflowExecutionAlreadyStartedError, type Client } from '@temporalio/client';
import { TypedSearchAttributes, WorkflowIdReusePolicy } from '@temporalio/common';
import type { Db } from 'mongodb';
import { CryptoError, parsePublicKey } from '../crypto/keys';
import type { Keyring } from '../crypto/keyring';
import { sealOuter } from '../crypto/outer-layer';
import { stagingContext } from '../activities/issuance';
import { AppError } from '../domain/errors';
import { cakKeyFingerprint, issuanceIdFor, issuanceWorkflowId, recordIdFor } from '../domain/ids';
import { FIELDS_ITEM_KIND, type IssuanceInput, type ItemDescriptor } from '../domain/issuance';
import { canonicalJson } from '../domain/safe-json';
import { requestFingerprint, type IssuanceRequest } from '../domain/issuance-request';
import type { ClientScope } from '../config';
import type { SchemaRegistry } from '../routing/schema-registry';
import { recordsRepository } from '../storage/records';
import { issuancesRepository, type IssuanceDoc } from '../storage/issuances';
import { STAGING_SUBJECT_ITEM_ID, stagingRepository } from '../storage/staging';
import { CakIssuerDid, CakSchemaId, CakUserId } from '../temporal/search-attributes';
import { issuanceWorkflow } from '../workflows/issuance';

/**
 * The start request of an issuance run: its id and the searchable (pseudonymous) ids. The first
 * start rejects any earlier run of the id; an operator's retry (src/operations) allows only a failed one.
 */
export function issuanceStartOptions(
  doc: IssuanceDoc,
  taskQueue: string,
  input: IssuanceInput,
  workflowIdReusePolicy: WorkflowIdReusePolicy,
) {
  return {
    taskQueue,
    workflowId: doc.workflowId,
    args: [input] as [IssuanceInput],
    workflowIdReusePolicy,
    typedSearchAttributes: new TypedSearchAttributes([
      { key: CakUserId, value: doc.userId },
      { key: CakSchemaId, value: doc.schemaId },
      { key: CakIssuerDid, value: doc.issuerDid },
    ]),
  };
}

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

  function itemsOf(request: IssuanceRequest): { descriptor: ItemDescriptor; bytes: Buffer }[] {
    const items = request.files.map((f) => ({
      descriptor: { itemId: f.kind, kind: f.kind, contentType: f.contentType, size: f.data.length },
      bytes: f.data,
    }));
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

  async function stage(
    issuanceId: string,
    request: IssuanceRequest,
    items: { descriptor: ItemDescriptor; bytes: Buffer }[],
  ) {
    const put = (itemId: string, role: 'item' | 'subject', bytes: Uint8Array) =>
      staging.put(
        issuanceId,
        itemId,
        role,
        sealOuter(deps.managedKeyring, bytes, stagingContext(issuanceId, itemId)),
        deps.stagingTtlMs,
      );
    await put(STAGING_SUBJECT_ITEM_ID, 'subject', Buffer.from(JSON.stringify(request.credentialSubject), 'utf8'));
    for (const item of items) await put(item.descriptor.itemId, 'item', item.bytes);
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
      await deps.temporal.workflow.start(
        issuanceWorkflow,
        issuanceStartOptions(doc, deps.taskQueue, input, WorkflowIdReusePolicy.REJECT_DUPLICATE),
      );
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
    ): Promise<{ doc: IssuanceDoc; replayed: boolean }> {
      const items = itemsOf(request);
      assertClientMayIssue(deps, clientId, request);
      deps.registry.assertIssuable(
        request,
        items.map((i) => i.descriptor.kind),
      );
      checkKey(request);
      const recordId = recordIdFor(deps.idSecret, request.issuerDid, request.userId, request.schemaId);
      const owner = await records.ownerOf(recordId);
      if (owner !== undefined && owner !== clientId) {
        throw new AppError(
          'RECORD_OWNED_BY_ANOTHER_CLIENT',
          "another API client holds this user's data for this schema",
          403,
        );
      }
      const issuanceId = issuanceIdFor(deps.idSecret, clientId, idempotencyKey);
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
        intake: 'received',
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
        if (doc.intake === 'started') return { doc, replayed: true };
        // An earlier attempt with this key stopped before the workflow start was acknowledged: finish it.
      }
      try {
        await stage(issuanceId, request, items);
        await start(doc, request);
      } catch (err) {
        await staging.shred(issuanceId).catch(() => undefined);
        throw new AppError(
          'UNAVAILABLE',
          'the issuance could not be started; retry with the same Idempotency-Key',
          503,
          {
            cause: err instanceof Error ? err.name : 'unknown',
          },
        );
      }
      await issuances.markStarted(issuanceId);
      return { doc: { ...doc, intake: 'started' }, replayed: !created };
    },
    get: (issuanceId: string) => issuances.get(issuanceId),
  };
}

export type IssuanceIntake = ReturnType<typeof issuanceIntake>;
