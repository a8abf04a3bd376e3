import { randomUUID } from 'node:crypto';
import { createServer, request, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { appLimitsOf, createApp } from '../../src/api/app';
import { authorizationApiDeps } from '../../src/api/authorization-wiring';
import { answerClientErrors } from '../../src/api/errors';
import { issuanceApiDeps } from '../../src/api/issuance-wiring';
import {
  DEV_ADMIN_TOKEN,
  DEV_API_KEY,
  DEV_CALLBACK_SECRET,
  DEV_CODEC_AUTH_TOKEN,
  DEV_ISSUER_DID,
  loadConfig,
  type Config,
} from '../../src/config';
import { parseKeyring } from '../../src/crypto/keyring';
import { createLogger } from '../../src/observability/logger';
import { signStandardWebhook } from '../../src/platform/callback-signature';
import { emptyDatabase, type EmptyDatabase } from './empty-database';
import { markedPng } from './scans';

/**
 * Hostile requests as data: what is sent, and the fixtures the tables build them from. The tables
 * run as unit tests against the whole app on an empty, write-refusing database (`startUnitApi`);
 * the integration tests send a representative set to the real API and check nothing was recorded.
 */

export interface Sent {
  method?: string;
  path: string;
  headers?: Record<string, string>;
  body?: string | Buffer;
}
export type Case = [group: string, name: string, make: () => Sent | Promise<Sent>, status: number, code: string | null];

/** Sends exactly `s` (no client-side rewriting of bodies or headers); the status and the error code. */
export function send(base: string, s: Sent): Promise<{ status: number; code: string | null }> {
  return new Promise((resolve, reject) => {
    const url = new URL(s.path, base);
    const req = request(url, { method: s.method ?? 'GET', headers: s.headers ?? {} }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        let code: string | null = null;
        try {
          code =
            (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { error?: { code?: string } }).error?.code ?? null;
        } catch {
          /* not JSON */
        }
        resolve({ status: res.statusCode ?? 0, code });
      });
    });
    req.on('error', reject);
    req.end(s.body);
  });
}

export const run = randomUUID().slice(0, 8);
export const userId = `hostile-${run}`;
export const json = { 'content-type': 'application/json' };
export const apiKey = { 'x-api-key': DEV_API_KEY };
export const admin = { authorization: `Bearer ${DEV_ADMIN_TOKEN}` };
export const codec = { authorization: `Bearer ${DEV_CODEC_AUTH_TOKEN}` };
export const png = markedPng(`HOSTILE-${run}`, 2048).toString('base64');
export const issuance = (patch: Record<string, unknown> = {}) => ({
  userId,
  issuerDid: DEV_ISSUER_DID,
  credentialId: 'prog-kyc-basic',
  schemaId: 'kyc-basic',
  credentialSubject: { kycLevel: 1 },
  fields: { fullName: 'x' },
  files: [{ kind: 'id-front', contentType: 'image/png', data: png }],
  ...patch,
});
export const postIssuance = (body: unknown, headers: Record<string, string> = {}): Sent => ({
  method: 'POST',
  path: '/v1/issuances',
  headers: { ...json, ...apiKey, ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
export const callbackPayload = { userId, verifierDid: `did:air:id:hostile-verifier-${run}`, schemaId: 'kyc-basic' };
export const signedCallback = (
  body: string | Buffer,
  options: { secret?: string; timestamp?: Date; id?: string } = {},
): Record<string, string> => ({
  ...json,
  ...signStandardWebhook(options.secret ?? DEV_CALLBACK_SECRET, body, {
    id: options.id ?? `msg_${randomUUID()}`,
    ...(options.timestamp ? { timestamp: options.timestamp } : {}),
  }),
});
export const postCallback = (body: string | Buffer, headers?: Record<string, string>): Sent => ({
  method: 'POST',
  path: '/v1/cak/callbacks',
  headers: headers ?? signedCallback(body),
  body,
});
export const adminPost = (path: string, body: unknown, headers: Record<string, string> = {}): Sent => ({
  method: 'POST',
  path,
  headers: { ...json, ...admin, ...headers },
  body: typeof body === 'string' ? body : JSON.stringify(body),
});
export const codecPost = (path: string, body: string, headers: Record<string, string> = {}): Sent => ({
  method: 'POST',
  path,
  headers: { ...json, ...codec, ...headers },
  body,
});
export const deep = (n: number): unknown => (n === 0 ? 1 : { a: deep(n - 1) });
export const minutes = (n: number) => new Date(Date.now() + n * 60_000);

/** The limits the hostile tables are written against (small files, no rate limiting in the way). */
export const HOSTILE_ENV = {
  ITEM_MAX_FILE_BYTES: String(64 * 1024),
  ITEM_MAX_TOTAL_BYTES: String(100 * 1024),
  ITEM_MAX_FILES: '3',
  API_RATE_LIMIT_PER_MINUTE: '100000',
  AUTH_FAILURE_LIMIT_PER_MINUTE: '100000',
  VERIFIER_RATE_LIMIT_PER_MINUTE: '100000',
  ADMIN_RATE_LIMIT_PER_MINUTE: '100000',
};

export interface UnitApi extends EmptyDatabase {
  config: Config;
  url: string;
  /** Verifier denials recorded (the real API audits them in aggregate) */
  denied: { verifierDid: string; reason: string }[];
  close(): Promise<void>;
}

/**
 * The whole app as `startApi` wires it from `env` (the real parsers, verifiers, registry and
 * limits), on a real loopback listener, with no database and no Temporal behind it (`emptyDatabase`).
 */
export async function startUnitApi(env: NodeJS.ProcessEnv = {}): Promise<UnitApi> {
  const config = loadConfig({ LOG_LEVEL: 'silent', ...env });
  const log = createLogger({ level: 'silent', name: 'api' });
  const empty = emptyDatabase();
  const authorization = authorizationApiDeps(config, empty.db, empty.temporal, log);
  const denied: UnitApi['denied'] = [];
  const app = createApp({
    log,
    trustProxy: config.API_TRUST_PROXY,
    limits: appLimitsOf(config),
    probes: { temporal: () => Promise.resolve(), database: () => Promise.resolve() },
    issuance: issuanceApiDeps(config, empty.db, empty.temporal),
    authorization,
    denials: {
      record: (verifierDid, reason) => void denied.push({ verifierDid, reason }),
      flush: () => Promise.resolve(),
      close: () => Promise.resolve(),
    },
    codec: {
      keyring: parseKeyring(config.CAK_CODEC_KEYS),
      bearerTokens: config.CODEC_AUTH_TOKENS,
      allowedOrigins: config.CODEC_ALLOWED_ORIGINS,
    },
  });
  const server: Server = createServer(app);
  answerClientErrors(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    ...empty,
    config,
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    denied,
    async close() {
      await authorization.close();
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      });
    },
  };
}
