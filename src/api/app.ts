import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Config } from '../config';
import type { IssuanceLimits } from '../domain/issuance-request';
import { codecRouter, type CodecRouterOptions } from '../crypto/codec-server';
import type { Logger } from '../observability/logger';
import { callbackMetrics, httpMetrics, type Metrics } from '../observability/metrics';
import type { PartnerTokenMinter } from '../platform/partner-jwt';
import type { PartnerKeys } from '../platform/partner-keys';
import type { RecordsRepository } from '../storage/records';
import { authFailureThrottle, perIdentityLimit, requireClient, type ApiClients } from './auth';
import { adminRoutes } from './admin';
import type { AuthorizationApiDeps } from './authorization-wiring';
import { callbackRoutes } from './callbacks';
import { errorHandler, notFound } from './errors';
import { healthRoutes, type ReadinessProbes } from './health';
import type { DrainState } from './lifecycle';
import type { IssuanceIntake } from './issuance-intake';
import { issuanceRoutes, type WebUiLink } from './issuances';
import { jwksRoutes } from './jwks';
import { openapiRoutes } from './openapi';
import { partnerTokenRoutes } from './partner-tokens';
import { verifierRoutes, type DeniedAccessLog } from './verifier';

/** The issuance pipeline's routes: client-authenticated issuances and partner tokens, and the public JWKS. */
export interface IssuanceApiDeps {
  clients: ApiClients;
  partnerKeys: PartnerKeys;
  partnerTokens: PartnerTokenMinter;
  intake: IssuanceIntake;
  records: RecordsRepository;
  limits: IssuanceLimits;
  rateLimits: { apiPerMinute: number; publicPerMinute: number };
  /** the Temporal Web UI the status answer links each run to (TEMPORAL_UI_URL, TEMPORAL_NAMESPACE) */
  webUi?: WebUiLink;
}

/** Rate limits beyond the issuance routes' (per minute); defaults are src/config.ts's. */
export interface AppLimits {
  verifierPerMinute: number;
  adminPerMinute: number;
  codecPerMinute: number;
  /** failed authentications per client address, across every route */
  authFailuresPerMinute: number;
}

const DEFAULT_LIMITS: AppLimits = {
  verifierPerMinute: 300,
  adminPerMinute: 120,
  codecPerMinute: 600,
  authFailuresPerMinute: 30,
};

/** The limits the configuration sets (the API server and the unit tests' app wire the same). */
export function appLimitsOf(config: Config): AppLimits {
  return {
    verifierPerMinute: config.VERIFIER_RATE_LIMIT_PER_MINUTE,
    adminPerMinute: config.ADMIN_RATE_LIMIT_PER_MINUTE,
    codecPerMinute: config.CODEC_RATE_LIMIT_PER_MINUTE,
    authFailuresPerMinute: config.AUTH_FAILURE_LIMIT_PER_MINUTE,
  };
}

export interface AppDeps {
  log: Logger;
  probes: ReadinessProbes;
  /** Express's `trust proxy`: a hop count or trusted proxy addresses/CIDRs (API_TRUST_PROXY); never `true` */
  trustProxy?: number | string[];
  limits?: Partial<AppLimits>;
  issuance?: IssuanceApiDeps;
  /** the authorization pipeline: platform callbacks, Verifier access, operator routes */
  authorization?: Pick<AuthorizationApiDeps, 'callbacks' | 'verifier' | 'admin'>;
  /** Verifier denials, counted and audited in aggregate (startApi gives one it closes on shutdown) */
  denials?: DeniedAccessLog;
  /** the Temporal Web UI's remote codec (decodes payloads for authenticated operators) */
  codec?: CodecRouterOptions;
  /** Prometheus metrics: counted here, served by a listener of their own (`metricsServer`) */
  metrics?: Metrics;
  /** shutting down: /readyz answers 503 and responses close their connections */
  drain?: DrainState;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  const trustProxy: unknown = deps.trustProxy ?? 0;
  if (trustProxy === true) throw new Error('trust proxy must be a hop count or a list of addresses, never true');
  app.set('trust proxy', trustProxy);
  const limits = { ...DEFAULT_LIMITS, ...deps.limits };
  // One budget of failed authentications per address, shared by every authenticated route.
  const failures = authFailureThrottle(limits.authFailuresPerMinute);
  if (deps.drain) app.use(deps.drain.middleware);
  if (deps.metrics) {
    app.use(httpMetrics(deps.metrics));
    app.use('/v1/cak/callbacks', callbackMetrics(deps.metrics));
  }
  if (deps.codec) {
    // Called cross-origin by the Web UI; the router's CORS allow-list and bearer token are the gate.
    // Its sign-in form posts to itself over the scheme it was served on (no upgrade to https), and
    // with a same-origin referrer policy so the browser sends a real Origin (no-referrer sends "null").
    const codecHeaders = helmet({
      crossOriginResourcePolicy: { policy: 'cross-origin' },
      contentSecurityPolicy: { directives: { upgradeInsecureRequests: null } },
      referrerPolicy: { policy: 'same-origin' },
    });
    const codec: CodecRouterOptions = {
      throttle: { perSessionPerMinute: limits.codecPerMinute, authFailed: (req, res) => failures.failed(req, res) },
      ...deps.codec,
    };
    app.use('/codec', codecHeaders, codecRouter(codec));
  }
  app.use(helmet());
  app.use(healthRoutes(deps.probes, deps.drain?.isDraining, deps.log));
  app.use(openapiRoutes());
  if (deps.issuance) {
    const d = deps.issuance;
    app.use(jwksRoutes(d.partnerKeys, d.rateLimits.publicPerMinute));
    // Authenticate first, then count against the client's own budget (one limiter: both route groups).
    const perClient = perIdentityLimit('client', d.rateLimits.apiPerMinute, (_req, res) =>
      typeof res.locals.clientId === 'string' ? res.locals.clientId : undefined,
    );
    const clientRoutes = [requireClient(d.clients, failures), perClient];
    app.use('/v1/issuances', ...clientRoutes);
    app.use('/v1/partner-tokens', ...clientRoutes);
    app.use(
      issuanceRoutes({
        intake: d.intake,
        records: d.records,
        limits: d.limits,
        ...(d.webUi ? { webUi: d.webUi } : {}),
      }),
    );
    app.use(partnerTokenRoutes(d.partnerTokens));
  }
  if (deps.authorization) {
    const a = deps.authorization;
    const locals = (name: string) => (_req: unknown, res: { locals: Record<string, unknown> }) => {
      const value = res.locals[name];
      return typeof value === 'string' ? value : undefined;
    };
    // The callback route reads its own raw body (signature first); no JSON parser may run before it.
    app.use(callbackRoutes(a.callbacks));
    app.use(
      verifierRoutes({
        ...a.verifier,
        ...(deps.denials ? { denials: deps.denials } : {}),
        throttle: {
          perVerifier: perIdentityLimit('verifier', limits.verifierPerMinute, locals('verifierDid')),
          failures,
        },
      }),
    );
    app.use(
      adminRoutes({
        ...a.admin,
        throttle: { perAdmin: perIdentityLimit('admin', limits.adminPerMinute, locals('admin')), failures },
      }),
    );
  }
  app.use(notFound);
  app.use(errorHandler(deps.log));
  return app;
}
