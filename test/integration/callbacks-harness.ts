import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Db } from 'mongodb';
import { DEV_CALLBACK_SECRET, DEV_ISSUER_DID } from '../../src/config';
import { recordIdFor } from '../../src/domain/ids';
import type { AuditEventTypeName, CallbackPayload } from '../../src/domain/authorization';
import { signStandardWebhook } from '../../src/platform/callback-signature';
import { connectClient, testConfig } from '../support/temporal';

/** Helpers of the callback tests; their system is test/support/system.ts. */

/** Marks (userId, schemaId) as data we hold, as a stored issuance would (the record document only). */
export async function seedRecord(db: Db, payload: Pick<CallbackPayload, 'userId' | 'schemaId'>): Promise<void> {
  const now = new Date();
  await db.collection<{ _id: string }>('records').updateOne(
    { _id: recordIdFor(testConfig().ID_HMAC_SECRET, DEV_ISSUER_DID, payload.userId, payload.schemaId) },
    {
      $set: {
        clientId: 'dev',
        issuerDid: DEV_ISSUER_DID,
        userId: payload.userId,
        schemaId: payload.schemaId,
        currentVersion: 1,
        updatedAt: now,
      },
      $setOnInsert: { createdAt: now },
    },
    { upsert: true },
  );
}

export function signedCallback(
  payload: unknown,
  options: { secret?: string; id?: string; timestamp?: Date; body?: string } = {},
): { body: string; headers: Record<string, string> } {
  const body = options.body ?? JSON.stringify(payload);
  const headers = signStandardWebhook(options.secret ?? DEV_CALLBACK_SECRET, body, {
    id: options.id ?? `msg_${randomUUID()}`,
    ...(options.timestamp ? { timestamp: options.timestamp } : {}),
  });
  return { body, headers: { 'content-type': 'application/json', ...headers } };
}

export async function postCallback(
  apiUrl: string,
  payload: unknown,
  options: Parameters<typeof signedCallback>[1] = {},
): Promise<{ status: number; body: Record<string, unknown> }> {
  const { body, headers } = signedCallback(payload, options);
  const res = await fetch(`${apiUrl}/v1/cak/callbacks`, { method: 'POST', headers, body });
  return { status: res.status, body: (await res.json().catch(() => ({}))) as Record<string, unknown> };
}

/** A durable acknowledgement: 200 (Temporal has the run) or 202 (the inbox has the delivery). */
export const ACKED = [200, 202];

/** Runs `tasks` with at most `limit` in flight. */
export async function inParallel<T>(limit: number, tasks: (() => Promise<T>)[]): Promise<T[]> {
  const results: T[] = new Array<T>(tasks.length);
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(limit, tasks.length) }, async () => {
      while (next < tasks.length) {
        const i = next++;
        results[i] = await tasks[i]!();
      }
    }),
  );
  return results;
}

/** The one polling helper (test/support/eventually.ts), re-exported for the callback tests' imports. */
export { eventually } from '../support/eventually';

/** Workflow runs of a task queue, by status (Temporal visibility). */
export async function countRuns(client: Client, taskQueue: string, extra = ''): Promise<number> {
  const { count } = await client.workflow.count(
    `TaskQueue = '${taskQueue}' AND WorkflowType = 'authorizationWorkflow'${extra}`,
  );
  return count;
}

export { connectClient };

/** An authorization's audit event of a type (sealed or still pending), or null. */
export async function auditEventOf(
  db: Db,
  authorizationId: string,
  type: AuditEventTypeName = 'authorization',
): Promise<{ _id: string; type: string; data: Record<string, unknown> } | null> {
  const filter = { type, 'data.authorizationId': authorizationId };
  return (
    (await db
      .collection<{ _id: string; type: string; data: Record<string, unknown> }>('audit_events')
      .findOne(filter)) ??
    (await db.collection<{ _id: string; type: string; data: Record<string, unknown> }>('audit_pending').findOne(filter))
  );
}
