import express, { Router } from 'express';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import type { PartnerTokenMinter } from '../platform/partner-jwt';
import { clientIdOf } from './auth';

export const tokenRequest = z.strictObject({
  scope: z.enum(['issue', 'verify']),
  /** pseudonymous user id the token is for (carried as `sub`); optional for the browser SDK */
  userId: z
    .string()
    .regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/)
    .optional(),
});

/**
 * `POST /v1/partner-tokens`: the issuer's own front end (an authenticated API client) gets a
 * short-lived Partner JWT for the SDK's `issueCredential()` / `verifyCredential()`.
 */
export function partnerTokenRoutes(minter: PartnerTokenMinter): Router {
  const router = Router();
  router.post('/v1/partner-tokens', express.json({ limit: '4kb' }), async (req, res) => {
    clientIdOf(res.locals);
    const parsed = tokenRequest.safeParse(req.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.');
      throw new AppError('INVALID_TOKEN_REQUEST', `${field}: ${issue.message}`, 400, { field });
    }
    const token = await minter.mint(parsed.data);
    res
      .status(201)
      .set('Cache-Control', 'no-store')
      .json({ token: token.token, tokenType: 'JWT', kid: token.kid, expiresAt: token.expiresAt.toISOString() });
  });
  return router;
}
