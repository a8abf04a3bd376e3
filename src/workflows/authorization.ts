import { ActivityFailure, condition, defineSignal, proxyActivities, setHandler } from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  AuthorizationFailureType,
  REDRIVE_SIGNAL,
  type AuthorizationInput,
  type AuthorizationOutcome,
  type AuthorizationResult,
  type CallbackHandlerName,
} from '../domain/authorization';

/** Database steps: quick, retried until the database answers (an outage must not lose a callback). */
const storageOptions = {
  startToCloseTimeout: '15 seconds',
  retry: { initialInterval: '500 milliseconds', backoffCoefficient: 2, maximumInterval: '30 seconds' },
} as const;

/** The `notify` handler: an HTTP call to an internal service, retried with backoff for about an hour. */
const notifyOptions = {
  startToCloseTimeout: '20 seconds',
  retry: {
    initialInterval: '1 second',
    backoffCoefficient: 2,
    maximumInterval: '5 minutes',
    maximumAttempts: 20,
    nonRetryableErrorTypes: Object.values(AuthorizationFailureType),
  },
} as const;

const {
  verifyAuthorization,
  resolveAuthorizationRoute,
  settleAuthorization,
  auditAuthorization,
  countAuthorizationRedrive,
} = proxyActivities<Activities>(storageOptions);
const { notifyAuthorization } = proxyActivities<Activities>(notifyOptions);

export const redriveSignal = defineSignal(REDRIVE_SIGNAL);

interface RouteResult {
  outcome: AuthorizationOutcome;
  handlers: CallbackHandlerName[];
  failedHandlers: CallbackHandlerName[];
}

/**
 * One run per (userId, verifierDid, schemaId): verify -> route -> audit. An authorization left
 * `unrouted` or `no-data` waits (up to `redriveWindowMs`) for an operator's re-drive signal, then
 * goes round again; each pass writes its own audit event.
 */
export async function authorizationWorkflow(input: AuthorizationInput): Promise<AuthorizationResult> {
  let redriveRequested = false;
  setHandler(redriveSignal, () => void (redriveRequested = true));

  for (let redrive = 0; ; redrive += 1) {
    const result = await verifyAndRoute(input);
    await auditAuthorization(input, result, redrive);
    const waitsForOperator = result.outcome === 'unrouted' || result.outcome === 'no-data';
    if (!waitsForOperator || !(await condition(() => redriveRequested, input.redriveWindowMs))) {
      return {
        authorizationId: input.authorizationId,
        outcome: result.outcome,
        handlers: result.handlers,
        redriven: redrive,
      };
    }
    redriveRequested = false;
    await countAuthorizationRedrive(input.authorizationId);
  }
}

async function verifyAndRoute(input: AuthorizationInput): Promise<RouteResult> {
  const verified = await verifyAuthorization(input);
  if (verified.state === 'revoked') return { outcome: 'revoked', handlers: [], failedHandlers: [] };

  const route = await resolveAuthorizationRoute(input.schemaId);
  if (!route) return settled(input, 'unrouted', []);
  if (!verified.hasData) return settled(input, 'no-data', []);

  const failedHandlers: CallbackHandlerName[] = [];
  if (route.handlers.includes('notify')) {
    try {
      await notifyAuthorization(input);
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      failedHandlers.push('notify'); // recorded in the audit event; access is not held back by it
    }
  }
  const state = route.handlers.includes('grant-access') ? 'active' : 'routed';
  return { ...(await settled(input, state, route.handlers)), failedHandlers };
}

async function settled(
  input: AuthorizationInput,
  state: 'active' | 'routed' | 'unrouted' | 'no-data',
  handlers: CallbackHandlerName[],
): Promise<RouteResult> {
  const final = await settleAuthorization(input.authorizationId, state, handlers);
  return { outcome: final === 'revoked' ? 'revoked' : state, handlers, failedHandlers: [] };
}
