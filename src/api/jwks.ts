import { Router } from 'express';
import { z } from 'zod';
import type { PartnerKeys } from '../platform/partner-keys';
import { perMinuteLimit } from './auth';
import { cacheFor, RATE_LIMITED, route } from './routes';

export const getPartnerJwks = route({
  method: 'get',
  path: '/.well-known/jwks.json',
  operationId: 'getPartnerJwks',
  summary: 'Public halves of every Partner JWT signing key',
  description: 'The AIR platform verifies our Partner JWTs with these keys. Rate-limited per IP.',
  tag: 'issuance',
  auth: 'public',
  responses: {
    200: {
      description: 'a JWK Set',
      schema: z.object({ keys: z.array(z.record(z.string(), z.unknown())) }),
      headers: cacheFor(3600),
    },
  },
  errors: { 429: RATE_LIMITED },
});

/**
 * `GET /.well-known/jwks.json`: the public halves of every configured Partner JWT signing key, so
 * the platform can verify our tokens (and a new key is published before it starts signing).
 */
export function jwksRoutes(keys: PartnerKeys, rateLimitPerMinute: number): Router {
  const router = Router();
  const body = JSON.stringify(keys.jwks);
  getPartnerJwks.on(router, perMinuteLimit(rateLimitPerMinute), (_req, res) => {
    res.set('Cache-Control', 'public, max-age=3600').type('application/json').send(body);
  });
  return router;
}
