import { ApplicationFailure, log } from '@temporalio/activity';
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
import { signStandardWebhook } from '../platform/callback-signature';
import { toResolvedRoute } from '../routing/callback-routes';
import type { SchemaRegistry } from '../routing/schema-registry';
import { auditRepository } from '../storage/audit';
import { authorizationsRepository } from '../storage/authorizations';
import { recordsRepository } from '../storage/records';

/** What the authorization activities need; the worker wires real ones, tests may pass others. */
export interface AuthorizationActivityDeps {
  db: Db;
  registry: SchemaRegistry;
  notify: { defaultUrl?: string; secret: string; timeoutMs: number };
}

export interface AuthorizationVerification {
  state: AuthorizationState;
  hasData: boolean;
}

export interface AuthorizationAuditSummary {
  eventId: string;
  seq: number;
}

export function createAuthorizationActivities(deps: AuthorizationActivityDeps) {
  const authorizations = authorizationsRepository(deps.db);
  const audit = auditRepository(deps.db);
  const records = recordsRepository(deps.db);

  return {
    /** `verify`: records the authorization (idempotent) and checks we hold data for (user, schema). */
    async verifyAuthorization(input: AuthorizationInput): Promise<AuthorizationVerification> {
      const doc = await authorizations.record(input.authorizationId, input, `authorization-${input.authorizationId}`);
      if (input.firstDelivery) {
        await authorizations.logFirstDelivery(
          input.authorizationId,
          input.firstDelivery.messageId,
          new Date(input.receivedAt),
        );
      }
      const held = await records.records.findOne(
        { userId: input.userId, schemaId: input.schemaId, currentVersion: { $gte: 1 } },
        { projection: { _id: 1 } },
      );
      return { state: doc.state, hasData: held !== null };
    },

    /** The route registered for the schema, or null (unrouted). */
    resolveAuthorizationRoute(schemaId: string): Promise<ResolvedRoute | null> {
      return Promise.resolve(toResolvedRoute(deps.registry.get(schemaId)?.callback));
    },

    /** Moves the record to its routed state (never out of `revoked`); returns the state it ends in. */
    async settleAuthorization(
      authorizationId: string,
      state: Exclude<AuthorizationState, 'revoked' | 'received'>,
      handlers: CallbackHandlerName[],
    ): Promise<AuthorizationState> {
      const final = await authorizations.settle(authorizationId, state, handlers);
      if (final === 'no-data' || final === 'unrouted') {
        // surfaced: operators list these (GET /v1/admin/authorizations?state=...) and re-drive them
        log.warn('authorization needs attention', { authorizationId, state: final });
      }
      return final ?? state;
    },

    /** `notify`: POSTs a signed notification (Standard Webhooks, NOTIFY_SECRET) to the route's URL. */
    async notifyAuthorization(input: AuthorizationInput): Promise<void> {
      const route = deps.registry.get(input.schemaId)?.callback;
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

    /** `audit`: the one hash-chained event per authorization (per re-drive), idempotent on its key. */
    async auditAuthorization(
      input: AuthorizationInput,
      result: { outcome: AuthorizationOutcome; handlers: CallbackHandlerName[]; failedHandlers: CallbackHandlerName[] },
      redrive: number,
    ): Promise<AuthorizationAuditSummary> {
      const first = redrive === 0;
      const key = first
        ? `authorization:${input.authorizationId}`
        : `authorization:${input.authorizationId}:redrive:${redrive}`;
      const event = await audit.append(
        key,
        first ? AuditEventType.Authorization : AuditEventType.AuthorizationRedriven,
        {
          authorizationId: input.authorizationId,
          userId: input.userId,
          verifierDid: input.verifierDid,
          schemaId: input.schemaId,
          outcome: result.outcome,
          handlers: result.handlers.join(','),
          failedHandlers: result.failedHandlers.join(','),
          receivedAt: input.receivedAt,
          deliveries: await authorizations.countDeliveries(input.authorizationId),
        },
      );
      return { eventId: event._id, seq: event.seq };
    },

    async countAuthorizationRedrive(authorizationId: string): Promise<void> {
      await authorizations.countRedrive(authorizationId);
    },
  };
}

export type AuthorizationActivities = ReturnType<typeof createAuthorizationActivities>;
