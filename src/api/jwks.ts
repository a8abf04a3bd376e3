import { Router } from 'express';
import type { PartnerKeys } from '../platform/partner-keys';
import { perMinuteLimit } from './auth';

/**
 * `GET /.well-known/jwks.json`: the public halves of every configured Partner JWT signing key, so
 * the platform can verify our tokens (and a new key is published before it starts signing).
 */
export function jwksRoutes(keys: PartnerKeys, rateLimitPerMinute: number): Router {
  const router = Router();
  const body = JSON.stringify(keys.jwks);
  router.get('/.well-known/jwks.json', perMinuteLimit(rateLimitPerMinute), (_req, res) => {
    res.set('Cache-Control', 'public, max-age=3600').type('application/json').send(body);
  });
  return router;
}
