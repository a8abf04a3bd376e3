import express, { Router } from 'express';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import { identifierSchema } from '../domain/issuance-request';
import type { PartnerTokenMinter } from '../platform/partner-jwt';
import { clientIdOf } from './auth';
import { FRAMING_400, NO_STORE, refusal, route } from './routes';

const tokenRequest = z.strictObject({
  scope: z.enum(['issue', 'verify']),
  /** pseudonymous user id the token is for (carried as `sub`); optional for the browser SDK */
  userId: identifierSchema.optional(),
});

export const createPartnerToken = route({
  method: 'post',
  path: '/v1/partner-tokens',
  operationId: 'createPartnerToken',
  summary: 'Mint a short-lived Partner JWT for the SDK',
  description:
    "For the issuer's own front end: `issueCredential()` / `verifyCredential()` need a Partner JWT " +
    '(claims `partnerId`, `scope`, `sub` = userId when given).',
  tag: 'issuance',
  auth: 'apiKey',
  body: {
    content: {
      'application/json': {
        name: 'PartnerTokenRequest',
        schema: tokenRequest,
        examples: {
          issue: { summary: 'a token to issue a credential for a user', value: { scope: 'issue', userId: 'user-123' } },
          verify: { summary: 'a token for the browser SDK to verify', value: { scope: 'verify' } },
        },
      },
    },
  },
  responses: {
    201: {
      description: 'the token',
      name: 'PartnerToken',
      schema: z.object({
        token: z.string(),
        tokenType: z.literal('JWT'),
        kid: z.string(),
        expiresAt: z.iso.datetime(),
      }),
      headers: NO_STORE,
    },
  },
  errors: {
    400: refusal('invalid request', 'INVALID_TOKEN_REQUEST', 'MALFORMED_JSON', ...FRAMING_400),
    413: refusal('body over 4 KB', 'BODY_TOO_LARGE'),
    415: refusal(
      'a charset other than UTF-8, or an unknown Content-Encoding',
      'UNSUPPORTED_CHARSET',
      'UNSUPPORTED_ENCODING',
    ),
  },
});

/**
 * `POST /v1/partner-tokens`: the issuer's own front end (an authenticated API client) gets a
 * short-lived Partner JWT for the SDK's `issueCredential()` / `verifyCredential()`.
 */
export function partnerTokenRoutes(minter: PartnerTokenMinter): Router {
  const router = Router();
  createPartnerToken.on(router, express.json({ limit: '4kb' }), async (req, res) => {
    clientIdOf(res.locals);
    const parsed = tokenRequest.safeParse(req.body ?? {});
    if (!parsed.success) {
      const issue = parsed.error.issues[0]!;
      const field = issue.code === 'unrecognized_keys' ? issue.keys[0] : issue.path.join('.');
      throw new AppError('INVALID_TOKEN_REQUEST', `${field}: ${issue.message}`, 400, { field });
    }
    const token = await minter.mint(parsed.data);
    createPartnerToken.send(res.set('Cache-Control', 'no-store'), 201, {
      token: token.token,
      tokenType: 'JWT',
      kid: token.kid,
      expiresAt: token.expiresAt.toISOString(),
    });
  });
  return router;
}
