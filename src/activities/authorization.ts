import { ApplicationFailure, Context, log } from '@temporalio/activity';
import type { Db } from 'mongodb';
import {
  AuditEventType,
  AuthorizationFailureType,
  type AuthorizationInput,
  type AuthorizationOutcome,
  type AuthorizationState,
  type CallbackHandlerName,
  type ResolvedRoute,
} from '../domain/authorization';
import { authorizationIdFor, authorizationWorkflowId, deliveryProofFor } from '../domain/callback';
import { recordIdFor } from '../domain/ids';
import { signStandardWebhook } from '../platform/callback-signature';
import { toResolvedRoute } from '../routing/callback-routes';
import type { SchemaRegistry } from '../routing/schema-registry';
import { auditRepository, type AuditKeys } from '../storage/audit';
import { authorizationsRepository } from '../storage/authorizations';
import { recordsRepository } from '../storage/records';

/** What the authorization activities need; the worker wires real ones, tests may pass others. */
export interface AuthorizationActivityDeps {
  db: Db;
  registry: SchemaRegistry;
  /** ID_HMAC_SECRET: recomputes the ids and delivery proofs of every input */
  idSecret: string;
  auditKeys: AuditKeys;
  notify: { defaultUrl?: string; secret: string; timeoutMs: number };
}

interface AuthorizationVerification {
  /** an operator's revocation stands: the outcome is audited as `revoked` (the access rule reads it again on every access) */
  revoked: boolean;
  hasData: boolean;
}

interface SettledAuthorization {
  /** the access window, for the routes that open one (`active`, `routed`) */
  accessUntil?: string;
  /** false when this delivery fell inside a window already open (nothing moved) */
  opened: boolean;
}

interface AuthorizationAuditSummary {
  eventId: string;
}

export function createAuthorizationActivities(deps: AuthorizationActivityDeps) {
  const authorizations = authorizationsRepository(deps.db);
  const audit = auditRepository(deps.db, deps.auditKeys);
  const records = recordsRepository(deps.db);

  /**
   * Nothing from Temporal is trusted: the authorization id is recomputed from the payload, the
   * delivery proof from (id, receivedAt), and the run must be the one that id names. A mismatch is
   * a forged or corrupted start, and fails the run without retrying.
   */
  function assertGenuine(input: AuthorizationInput): void {
    const expectedId = authorizationIdFor(deps.idSecret, input);
    const problem =
      input.authorizationId !== expectedId
        ? 'authorizationId does not derive from (userId, verifierDid, schemaId)'
        : input.deliveryProof !== deliveryProofFor(deps.idSecret, expectedId, input.receivedAt)
          ? 'deliveryProof does not match (authorizationId, receivedAt)'
          : Context.current().info.workflowExecution?.workflowId !== authorizationWorkflowId(expectedId)
            ? 'the run is not the one this authorization id names'
            : undefined;
    if (problem)
      throw ApplicationFailure.create({
        type: AuthorizationFailureType.ForgedInput,
        message: problem,
        nonRetryable: true,
      });
  }

  return {
    /** `verify`: checks the input, records the authorization (idempotent) and whether we hold data for it. */
    async verifyAuthorization(input: AuthorizationInput): Promise<AuthorizationVerification> {
      assertGenuine(input);
      const workflowId = authorizationWorkflowId(input.authorizationId);
      await authorizations.record(input.authorizationId, input, workflowId);
      if (input.firstDelivery) {
        await authorizations.logFirstDelivery(
          input.authorizationId,
          input.firstDelivery.messageId,
          new Date(input.receivedAt),
        );
      }
      const issuerDid = deps.registry.get(input.schemaId)?.issuerDid;
      const [held, revoked] = await Promise.all([
        issuerDid === undefined
          ? Promise.resolve(null)
          : records.records.findOne(
              { _id: recordIdFor(deps.idSecret, issuerDid, input.userId, input.schemaId), currentVersion: { $gte: 1 } },
              { projection: { _id: 1 } },
            ),
        authorizations.isRevoked(input.authorizationId),
      ]);
      return { revoked, hasData: held !== null };
    },

    /** The route registered for the schema, or null (unrouted). */
    resolveAuthorizationRoute(schemaId: string): Promise<ResolvedRoute | null> {
      return Promise.resolve(toResolvedRoute(deps.registry.route(schemaId)));
    },

    /**
     * Records the route's outcome and, for a routed one, opens the access window of this delivery
     * (the window length comes from the registry, never from the input; a delivery inside an open
     * window moves nothing).
     */
    async settleAuthorization(
      input: AuthorizationInput,
      state: Exclude<AuthorizationState, 'received'>,
      handlers: CallbackHandlerName[],
    ): Promise<SettledAuthorization> {
      assertGenuine(input);
      const route = toResolvedRoute(deps.registry.route(input.schemaId));
      const opens = (state === 'active' || state === 'routed') && route !== null;
      const window = await authorizations.settle(
        input.authorizationId,
        state,
        handlers,
        opens ? { receivedAt: new Date(input.receivedAt), windowMs: route.accessWindowMs } : undefined,
      );
      if (!opens) {
        // surfaced: operators list these (GET /v1/admin/authorizations?state=...) and re-drive them
        log.warn('authorization needs attention', { authorizationId: input.authorizationId, state });
      }
      return window ? { accessUntil: window.accessUntil.toISOString(), opened: window.opened } : { opened: false };
    },

    /** `notify`: POSTs a signed notification (Standard Webhooks, NOTIFY_SECRET) to the route's URL. */
    async notifyAuthorization(input: AuthorizationInput): Promise<void> {
      assertGenuine(input);
      const route = deps.registry.route(input.schemaId);
      const url = route?.notifyUrl ?? deps.notify.defaultUrl;
      if (!url) {
        throw ApplicationFailure.create({
          type: AuthorizationFailureType.NotifyTargetMissing,
          message: `schema ${input.schemaId} routes to notify but neither notifyUrl nor NOTIFY_URL is set`,
          nonRetryable: true,
        });
      }
      const body = JSON.stringify({
        type: 'cak.authorization',
        authorizationId: input.authorizationId,
        userId: input.userId,
        verifierDid: input.verifierDid,
        schemaId: input.schemaId,
      });
      // webhook-id is the authorization id: the same across our retries, so the receiver can dedup.
      const headers = signStandardWebhook(deps.notify.secret, body, { id: input.authorizationId });
      const res = await fetch(url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', ...headers },
        body,
        signal: AbortSignal.timeout(deps.notify.timeoutMs),
      });
      await res.body?.cancel();
      if (res.ok) return;
      const transient = res.status >= 500 || res.status === 408 || res.status === 429;
      if (transient) throw new Error(`notify target answered ${res.status}`);
      throw ApplicationFailure.create({
        type: AuthorizationFailureType.NotifyRejected,
        message: `notify target answered ${res.status}`,
        nonRetryable: true,
      });
    },

    /**
     * `audit`: one keyed-chain event per consent (per re-drive), idempotent on its key,
     * `authorization:<id>:<receivedAt>[:redrive:<n>]`: one insert, sealed into the chain later.
     */
    async auditAuthorization(
      input: AuthorizationInput,
      result: {
        outcome: AuthorizationOutcome;
        handlers: CallbackHandlerName[];
        failedHandlers: CallbackHandlerName[];
        accessUntil?: string;
      },
      redrive: number,
    ): Promise<AuthorizationAuditSummary> {
      const consentKey = `authorization:${input.authorizationId}:${input.receivedAt}`;
      const key = redrive === 0 ? consentKey : `${consentKey}:redrive:${redrive}`;
      const event = await audit.append(
        key,
        redrive === 0 ? AuditEventType.Authorization : AuditEventType.AuthorizationRedriven,
        {
          authorizationId: input.authorizationId,
          userId: input.userId,
          verifierDid: input.verifierDid,
          schemaId: input.schemaId,
          outcome: result.outcome,
          handlers: result.handlers.join(','),
          failedHandlers: result.failedHandlers.join(','),
          receivedAt: input.receivedAt,
          accessUntil: result.accessUntil ?? null,
        },
      );
      return { eventId: event._id };
    },

    /** The access window opened at `accessFrom` has closed: audited once (the access rule already denies). */
    async expireAuthorization(input: AuthorizationInput, accessUntil: string): Promise<AuthorizationAuditSummary> {
      assertGenuine(input);
      const event = await audit.append(
        `authorization:${input.authorizationId}:expired:${accessUntil}`,
        AuditEventType.AuthorizationExpired,
        {
          authorizationId: input.authorizationId,
          userId: input.userId,
          verifierDid: input.verifierDid,
          schemaId: input.schemaId,
          openedBy: input.receivedAt,
          accessUntil,
        },
      );
      return { eventId: event._id };
    },

    /**
     * The audit sequencer: seals pending audit events into the keyed chain for about `forMs`,
     * polling while nothing is pending. Run by the audit-seal schedule, one at a time.
     */
    async sealAuditTrail(input: { forMs: number; pollMs: number }): Promise<{ sealed: number }> {
      const until = Date.now() + input.forMs;
      let sealed = 0;
      // a worker shutting down cancels the activity: stop at once, the schedule's next run goes on
      while (Date.now() < until && !Context.current().cancellationSignal.aborted) {
        const n = await audit.seal();
        sealed += n;
        Context.current().heartbeat(sealed);
        if (n === 0) await Context.current().sleep(input.pollMs);
      }
      return { sealed };
    },

    async countAuthorizationRedrive(authorizationId: string): Promise<void> {
      await authorizations.countRedrive(authorizationId);
    },
  };
}
