import { timingSafeEqual, createHash } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Payload } from '@temporalio/common';
import { z } from 'zod';
import { type Keyring } from './keyring';
import { payloadCodecFor } from './payload-codec';

/**
 * The codec endpoint for the Temporal Web UI ("Codec Server" setting): POST /encode and /decode
 * with {payloads: [{metadata: {k: base64}, data: base64}]}, the protobuf JSON form of payloads.
 * Behind a bearer token; CORS only for the allow-listed UI origins; errors are generic.
 */

export interface CodecRouterOptions {
  keyring: Keyring;
  bearerTokens: string[];
  allowedOrigins: string[];
}

const ALLOW_HEADERS = 'content-type, x-namespace, authorization';
const BASE64 = z.string().regex(/^[A-Za-z0-9+/]*={0,2}$/, 'base64');
const bodySchema = z.object({
  payloads: z
    .array(z.object({ metadata: z.record(z.string(), BASE64).optional(), data: BASE64.optional() }))
    .max(10_000),
});
type JsonPayload = z.infer<typeof bodySchema>['payloads'][number];

export function codecRouter(options: CodecRouterOptions): Router {
  if (options.bearerTokens.length === 0) throw new Error('codecRouter needs at least one bearer token');
  const codec = payloadCodecFor(options.keyring);
  const origins = new Set(options.allowedOrigins);
  const tokenDigests = options.bearerTokens.map(digest);
  const router = express.Router();

  router.use((req: Request, res: Response, next: NextFunction) => {
    const origin = req.headers.origin;
    if (origin !== undefined) {
      if (!origins.has(origin)) {
        res.status(403).json({ error: 'origin not allowed' });
        return;
      }
      res.setHeader('Access-Control-Allow-Origin', origin);
      res.setHeader('Access-Control-Allow-Credentials', 'true');
      res.setHeader('Vary', 'Origin');
    }
    if (req.method === 'OPTIONS') {
      res.setHeader('Access-Control-Allow-Methods', 'POST, OPTIONS');
      res.setHeader('Access-Control-Allow-Headers', ALLOW_HEADERS);
      res.setHeader('Access-Control-Max-Age', '600');
      res.status(204).end();
      return;
    }
    next();
  });

  router.use((req: Request, res: Response, next: NextFunction) => {
    const match = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '');
    const presented = match?.[1] ? digest(match[1]) : undefined;
    // Compare digests in constant time against every token, without stopping at the first match.
    const ok = presented !== undefined && tokenDigests.reduce((hit, d) => timingSafeEqual(d, presented) || hit, false);
    if (!ok) {
      res.status(401).json({ error: 'unauthorized' });
      return;
    }
    next();
  });

  router.use(express.json({ limit: '8mb' }));

  const handle = (direction: 'encode' | 'decode') => async (req: Request, res: Response) => {
    const parsed = bodySchema.safeParse(req.body);
    if (!parsed.success) {
      res.status(400).json({ error: 'expected {payloads: [{metadata, data}]}' });
      return;
    }
    try {
      const payloads = parsed.data.payloads.map(fromJson);
      const result = direction === 'encode' ? await codec.encode(payloads) : await codec.decode(payloads);
      res.json({ payloads: result.map(toJson) });
    } catch {
      res.status(500).json({ error: 'internal error' });
    }
  };
  router.post('/encode', handle('encode'));
  router.post('/decode', handle('decode'));

  router.use((err: unknown, _req: Request, res: Response, _next: NextFunction) => {
    // body-parser marks unreadable bodies (bad JSON, too large) with a 4xx status
    const status = (err as { status?: unknown } | null)?.status;
    if (typeof status === 'number' && status >= 400 && status < 500) {
      res.status(status).json({ error: 'bad request' });
      return;
    }
    res.status(500).json({ error: 'internal error' });
  });
  return router;
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token, 'utf8').digest();
}

function fromJson(p: JsonPayload): Payload {
  return {
    metadata: Object.fromEntries(Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])),
    data: Buffer.from(p.data ?? '', 'base64'),
  };
}

function toJson(p: Payload): JsonPayload {
  return {
    metadata: Object.fromEntries(
      Object.entries(p.metadata ?? {}).map(([k, v]) => [k, Buffer.from(v ?? new Uint8Array()).toString('base64')]),
    ),
    data: Buffer.from(p.data ?? new Uint8Array()).toString('base64'),
  };
}
