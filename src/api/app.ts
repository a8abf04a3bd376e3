import express, { type Express } from 'express';
import helmet from 'helmet';
import type { Logger } from '../observability/logger';
import { errorHandler, notFound } from './errors';
import { healthRoutes, type ReadinessProbes } from './health';

export interface AppDeps {
  log: Logger;
  probes: ReadinessProbes;
  trustProxy?: boolean;
}

export function createApp(deps: AppDeps): Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('trust proxy', deps.trustProxy ?? false);
  app.use(helmet());
  app.use(healthRoutes(deps.probes));
  app.use(notFound);
  app.use(errorHandler(deps.log));
  return app;
}
