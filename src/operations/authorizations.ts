import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import { isAccessAllowed } from '../domain/access';
import {
  AuditEventType,
  REDRIVE_SIGNAL,
  type AuthorizationState,
  type AuthorizationViewState,
} from '../domain/authorization';
import { authorizationWorkflowId } from '../domain/callback';
import type { AuditRepository } from '../storage/audit';
import type { AuthorizationListFilter, AuthorizationsRepository } from '../storage/authorizations';

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
  'expired',
] as const satisfies readonly AuthorizationViewState[];

/** The states whose run waits for an operator's re-drive (docs/callbacks.md). */
const REDRIVABLE_STATES: readonly AuthorizationState[] = ['unrouted', 'no-data'];

interface AuthorizationView {
  authorizationId: string;
  workflowId: string;
  userId: string;
  verifierDid: string;
  schemaId: string;
  /** the routing state, or `revoked` / `expired` where the access rule says so */
  state: AuthorizationViewState;
  accessUntil?: Date;
  handlers: string[];
  deliveries: number;
  redriven: number;
  updatedAt: Date;
}

/**
 * Authorizations (optionally in one state, of one user, Verifier or schema: filtered in the
 * database query), oldest update first, with their delivery counts.
 */
export async function listAuthorizations(
  authorizations: AuthorizationsRepository,
  query: AuthorizationListFilter & { limit: number },
): Promise<AuthorizationView[]> {
  const { limit, ...filter } = query;
  const docs = await authorizations.list(filter, limit);
  const counts = await Promise.all(docs.map((d) => authorizations.countDeliveries(d._id)));
  const revoked = await Promise.all(docs.map((d) => authorizations.isRevoked(d._id)));
  const now = new Date();
  const viewState = (d: (typeof docs)[number], i: number): AuthorizationViewState => {
    if (revoked[i]) return 'revoked';
    const decision = isAccessAllowed(
      { state: d.state, revoked: false, ...(d.accessUntil ? { accessUntil: d.accessUntil } : {}) },
      now,
    );
    return !decision.allowed && decision.code === 'AUTHORIZATION_EXPIRED' ? 'expired' : d.state;
  };
  return docs.map((d, i) => ({
    authorizationId: d._id,
    workflowId: d.workflowId,
    userId: d.userId,
    verifierDid: d.verifierDid,
    schemaId: d.schemaId,
    state: viewState(d, i),
    ...(d.accessUntil ? { accessUntil: d.accessUntil } : {}),
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

type RevocationResult =
  { outcome: 'not-found'; authorizationId: string } | { outcome: 'changed' | 'unchanged'; authorizationId: string };

/**
 * An operator's revocation, or the reinstatement that lifts it, each audited. A revocation stands
 * against every later consent until an operator reinstates; reinstating gives back what the access
 * window still allows (a closed window needs a new consent).
 */
export async function setRevocation(
  authorizations: AuthorizationsRepository,
  audit: AuditRepository,
  authorizationId: string,
  action: 'revoke' | 'reinstate',
  by: string,
): Promise<RevocationResult> {
  const doc = await authorizations.get(authorizationId);
  if (!doc) return { outcome: 'not-found', authorizationId };
  const changed =
    action === 'revoke'
      ? await authorizations.revoke(authorizationId, by)
      : await authorizations.reinstate(authorizationId);
  if (changed) {
    await audit.append(
      `${action}:${authorizationId}:${randomUUID()}`,
      action === 'revoke' ? AuditEventType.AuthorizationRevoked : AuditEventType.AuthorizationReinstated,
      { authorizationId, userId: doc.userId, verifierDid: doc.verifierDid, schemaId: doc.schemaId, by },
    );
  }
  return { outcome: changed ? 'changed' : 'unchanged', authorizationId };
}
