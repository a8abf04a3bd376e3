import {
  ActivityFailure,
  condition,
  continueAsNew,
  defineSignal,
  proxyActivities,
  setHandler,
  sleep,
} from '@temporalio/workflow';
import type { Activities } from '../activities';
import {
  AuthorizationFailureType,
  DELIVERY_SIGNAL,
  REDRIVE_SIGNAL,
  type DeliverySignal,
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
  expireAuthorization,
  countAuthorizationRedrive,
} = proxyActivities<Activities>(storageOptions);
const { notifyAuthorization } = proxyActivities<Activities>(notifyOptions);

const redriveSignal = defineSignal(REDRIVE_SIGNAL);
/** How long a run whose window closed still takes a signalled delivery (the API's start timeout is 3 s). */
const LATE_DELIVERY_GRACE = '10 seconds';
const deliverySignal = defineSignal<[DeliverySignal]>(DELIVERY_SIGNAL);

interface RouteResult {
  outcome: AuthorizationOutcome;
  handlers: CallbackHandlerName[];
  failedHandlers: CallbackHandlerName[];
  accessUntil?: string;
}

/**
 * One run per consent of (userId, verifierDid, schemaId): verify -> route -> audit, then the run
 * holds the key for the access window, so duplicate deliveries collapse onto it. When the window
 * closes the expiry is audited; a delivery that arrived after the close is a new consent and the
 * run continues as new from it. An authorization left `unrouted` or `no-data` waits (up to
 * `redriveWindowMs`) for an operator's re-drive signal, then goes round again; each pass writes
 * its own audit event.
 */
export async function authorizationWorkflow(input: AuthorizationInput): Promise<AuthorizationResult> {
  let redriveRequested = false;
  let latest: DeliverySignal | undefined;
  setHandler(redriveSignal, () => void (redriveRequested = true));
  setHandler(deliverySignal, (delivery) => {
    if (!latest || delivery.receivedAt > latest.receivedAt) latest = delivery;
  });

  for (let redrive = 0; ; redrive += 1) {
    const result = await verifyAndRoute(input);
    await auditAuthorization(input, result, redrive);
    const waitsForOperator = result.outcome === 'unrouted' || result.outcome === 'no-data';
    if (waitsForOperator && (await condition(() => redriveRequested, input.redriveWindowMs))) {
      redriveRequested = false;
      await countAuthorizationRedrive(input.authorizationId);
      continue;
    }
    if (result.accessUntil !== undefined) {
      const accessUntil = result.accessUntil;
      await sleep(Math.max(1, Date.parse(accessUntil) - Date.now()));
      await expireAuthorization(input, accessUntil);
      // A consent that came after the window closed opens the next one. One whose start found this
      // run still open is signalled to it a moment later: wait for that before the run closes.
      const lateConsent = () => latest !== undefined && latest.receivedAt >= accessUntil;
      if (lateConsent() || (await condition(lateConsent, LATE_DELIVERY_GRACE))) {
        return continueAsNew<typeof authorizationWorkflow>({ ...input, ...latest!, firstDelivery: undefined });
      }
    }
    return {
      authorizationId: input.authorizationId,
      outcome: result.outcome,
      handlers: result.handlers,
      redriven: redrive,
      ...(result.accessUntil !== undefined ? { accessUntil: result.accessUntil } : {}),
    };
  }
}

async function verifyAndRoute(input: AuthorizationInput): Promise<RouteResult> {
  const verified = await verifyAuthorization(input);
  const route = await resolveAuthorizationRoute(input.schemaId);
  if (!route) return settled(input, 'unrouted', [], verified.revoked);
  if (!verified.hasData) return settled(input, 'no-data', [], verified.revoked);

  const failedHandlers: CallbackHandlerName[] = [];
  // A consent under an operator's revocation is recorded (its window opens, and an operator's
  // reinstatement gives it effect) but notifies nobody while the revocation stands.
  if (route.handlers.includes('notify') && !verified.revoked) {
    try {
      await notifyAuthorization(input);
    } catch (err) {
      if (!(err instanceof ActivityFailure)) throw err;
      failedHandlers.push('notify'); // recorded in the audit event; access is not held back by it
    }
  }
  const state = route.handlers.includes('grant-access') ? 'active' : 'routed';
  return { ...(await settled(input, state, route.handlers, verified.revoked)), failedHandlers };
}

async function settled(
  input: AuthorizationInput,
  state: 'active' | 'routed' | 'unrouted' | 'no-data',
  handlers: CallbackHandlerName[],
  revoked: boolean,
): Promise<RouteResult> {
  const final = await settleAuthorization(input, state, handlers);
  return {
    outcome: revoked ? 'revoked' : state,
    handlers,
    failedHandlers: [],
    ...(final.accessUntil !== undefined ? { accessUntil: final.accessUntil } : {}),
  };
}
