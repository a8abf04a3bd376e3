import express, { type Express } from 'express';
import helmet from 'helmet';
import type { IssuanceLimits } from '../domain/issuance-request';
import { codecRouter, type CodecRouterOptions } from '../crypto/codec-server';
import type { Logger } from '../observability/logger';
import { callbackMetrics, httpMetrics, metricsRoute, type Metrics } from '../observability/metrics';
import type { PartnerTokenMinter } from '../platform/partner-jwt';
import type { PartnerKeys } from '../platform/partner-keys';
import type { RecordsRepository } from '../storage/records';
import { perMinuteLimit, requireClient, type ApiClients } from './auth';
import { adminRoutes } from './admin';
import type { AuthorizationApiDeps } from './authorization-wiring';
import { callbackRoutes } from './callbacks';
import { errorHandler, notFound } from './errors';
import { healthRoutes, type ReadinessProbes } from './health';
import type { DrainState } from './lifecycle';
import type { IssuanceIntake } from './issuance-intake';
import { issuanceRoutes } from './issuances';
import { jwksRoutes } from './jwks';
import { openapiRoutes } from './openapi';
import { partnerTokenRoutes } from './partner-tokens';
import { verifierRoutes } from './verifier';

/** The issuance pipeline's routes: client-authenticated issuances and partner tokens, and the public JWKS. */
export interface IssuanceApiDeps {
  clients: ApiClients;
  partnerKeys: PartnerKeys;
  partnerTokens: PartnerTokenMinter;
  intake: IssuanceIntake;
  records: RecordsRepository;
  limits: IssuanceLimits;
  rateLimits: { apiPerMinute: number; publicPerMinute: number };
}

export interface AppDeps {
  log: Logger;
  probes: ReadinessProbes;
  trustProxy?: boolean;
  issuance?: IssuanceApiDeps;
  /** the authorization pipeline: platform callbacks, Verifier access, operator routes */
  authorization?: Pick<AuthorizationApiDeps, 'callbacks' | 'verifier' | 'admin'>;
  /** the Temporal Web UI's remote codec (decodes payloads for authenticated operators) */
  codec?: CodecRouterOptions;
  /** Prometheus metrics, served at /metrics */
  metrics?: Metrics;
  /** shutting down: /readyz answers 503 and responses close their connections */
  drain?: DrainState;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.trustProxy ?? false);
  if (deps.drain) app.use(deps.drain.middleware);
  if (deps.metrics) {
    app.use(httpMetrics(deps.metrics));
    app.get('/metrics', metricsRoute(deps.metrics));
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
    app.use('/codec', codecHeaders, codecRouter(deps.codec));
  }
  app.use(helmet());
  app.use(healthRoutes(deps.probes, deps.drain?.isDraining));
  app.use(openapiRoutes());
  if (deps.issuance) {
    const d = deps.issuance;
    app.use(jwksRoutes(d.partnerKeys, d.rateLimits.publicPerMinute));
    const clientRoutes = [perMinuteLimit(d.rateLimits.apiPerMinute), requireClient(d.clients)];
    app.use('/v1/issuances', ...clientRoutes);
    app.use('/v1/partner-tokens', ...clientRoutes);
    app.use(issuanceRoutes({ intake: d.intake, records: d.records, limits: d.limits }));
    app.use(partnerTokenRoutes(d.partnerTokens));
  }
  if (deps.authorization) {
    // The callback route reads its own raw body (signature first); no JSON parser may run before it.
    app.use(callbackRoutes(deps.authorization.callbacks));
    app.use(verifierRoutes(deps.authorization.verifier));
    app.use(adminRoutes(deps.authorization.admin));
  }
  app.use(notFound);
  app.use(errorHandler(deps.log));
  return app;
}
