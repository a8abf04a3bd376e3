import type { Client } from '@temporalio/client';
import { REDRIVE_SIGNAL, type AuthorizationState } from '../domain/authorization';
import { authorizationWorkflowId } from '../domain/callback';
import type { AuthorizationsRepository } from '../storage/authorizations';

/**
 * Operator actions on authorizations, shared by the admin API (src/api/admin.ts) and the CLI
 * (`cak authorizations ...`), so both list and re-drive the same way.
 */

export const AUTHORIZATION_STATES = [
  'received',
  'no-data',
  'unrouted',
  'active',
  'routed',
  'revoked',
] as const satisfies readonly AuthorizationState[];

/** The states whose run waits for an operator's re-drive (docs/callbacks.md). */
export const REDRIVABLE_STATES: readonly AuthorizationState[] = ['unrouted', 'no-data'];

export interface AuthorizationView {
  authorizationId: string;
  workflowId: string;
  userId: string;
  verifierDid: string;
  schemaId: string;
  state: AuthorizationState;
  handlers: string[];
  deliveries: number;
  redriven: number;
  updatedAt: Date;
}

/** Authorizations (optionally in one state), oldest update first, with their delivery counts. */
export async function listAuthorizations(
  authorizations: AuthorizationsRepository,
  query: { state?: AuthorizationState; limit: number },
): Promise<AuthorizationView[]> {
  const docs = await authorizations.list(query.state ? { state: query.state } : {}, query.limit);
  const counts = await Promise.all(docs.map((d) => authorizations.countDeliveries(d._id)));
  return docs.map((d, i) => ({
    authorizationId: d._id,
    workflowId: d.workflowId,
    userId: d.userId,
    verifierDid: d.verifierDid,
    schemaId: d.schemaId,
    state: d.state,
    handlers: d.handlers,
    deliveries: counts[i]!,
    redriven: d.redriven,
    updatedAt: d.updatedAt,
  }));
}

/** Signals a run to re-drive; false when no run is waiting for one (closed, or unknown). */
export type Redriver = (workflowId: string) => Promise<boolean>;

export function temporalRedriver(temporal: Client): Redriver {
  return async (workflowId) => {
    try {
      const handle = temporal.workflow.getHandle(workflowId);
      const { status } = await handle.describe();
      if (status.name !== 'RUNNING') return false;
      await handle.signal(REDRIVE_SIGNAL);
      return true;
    } catch {
      return false;
    }
  };
}

export type RedriveResult =
  | { outcome: 'signalled'; authorizationId: string; workflowId: string }
  | { outcome: 'not-found'; authorizationId: string }
  | { outcome: 'not-redrivable'; authorizationId: string; state: AuthorizationState }
  | { outcome: 'run-closed'; authorizationId: string; workflowId: string };

/**
 * Re-drives one authorization: only `unrouted` and `no-data` ones, and only while their run still
 * waits (AUTHORIZATION_REDRIVE_WINDOW_HOURS). The run goes round verify -> route -> audit again.
 * Signalling twice is harmless: the run takes one pass per signal it sees while waiting.
 */
export async function redriveAuthorization(
  authorizations: AuthorizationsRepository,
  redrive: Redriver,
  authorizationId: string,
): Promise<RedriveResult> {
  const workflowId = authorizationWorkflowId(authorizationId);
  const doc = await authorizations.get(authorizationId);
  if (!doc) return { outcome: 'not-found', authorizationId };
  if (!REDRIVABLE_STATES.includes(doc.state)) return { outcome: 'not-redrivable', authorizationId, state: doc.state };
  if (!(await redrive(workflowId))) return { outcome: 'run-closed', authorizationId, workflowId };
  return { outcome: 'signalled', authorizationId, workflowId };
}
