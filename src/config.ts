import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { z } from 'zod';
import { keyringSpecError, parseKeyring } from './crypto/keyring';
import { devPartnerJwk } from './platform/partner-keys';

/**
 * Every environment variable the service reads, validated in one place.
 * Defaults are for a local run on one machine (`npm start`); production sets them explicitly.
 * The README's configuration table mirrors this schema: keep the two in step.
 */

const port = z.coerce.number().int().min(1).max(65535);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

const PROXY_NAMES = new Set(['loopback', 'linklocal', 'uniquelocal']);
/** An IPv4/IPv6 address or CIDR, or one of proxy-addr's names (what Express's `trust proxy` takes). */
function isProxyAddress(entry: string): boolean {
  if (PROXY_NAMES.has(entry)) return true;
  const [address = '', prefix, ...rest] = entry.split('/');
  const family = isIP(address);
  if (family === 0 || rest.length > 0) return false;
  if (prefix === undefined) return true;
  return /^\d{1,3}$/.test(prefix) && Number(prefix) <= (family === 4 ? 32 : 128);
}
/** A hop count, or a list of trusted proxy addresses and CIDRs; `true` (trust every hop) is refused. */
const trustProxySetting = z.union([z.number(), z.string()]).transform((value, ctx): number | string[] => {
  const v = String(value).trim().toLowerCase();
  if (v === 'false') return 0;
  if (/^\d{1,2}$/.test(v)) return Number(v);
  if (v === 'true') {
    ctx.addIssue({
      code: 'custom',
      message: "never true (any client could pick its own address): give a hop count (e.g. 1) or the proxies' CIDRs",
    });
    return z.NEVER;
  }
  const entries = v.split(',').map((e) => e.trim());
  const bad = entries.find((e) => !isProxyAddress(e));
  if (bad !== undefined) {
    ctx.addIssue({ code: 'custom', message: `expected a hop count or address[/prefix][,...]; "${bad}" is neither` });
    return z.NEVER;
  }
  return entries;
});

/** Dev-only API key `cak-dev-api-key` for client `dev` (sha256 below). Never valid in production. */
export const DEV_API_KEY = 'cak-dev-api-key';
const DEV_API_KEYS = 'dev:d880a5d41735a8b71aaad13f6f86ed4bf8991424be24f723113b4e2ba8caf18c';
const DEV_ID_HMAC_SECRET = 'cak-dev-id-hmac-secret-not-for-production';
/** Dev-only callback secrets and admin token (`cak-dev-admin-token`, sha256 below). Never valid in production. */
export const DEV_CALLBACK_SECRET = 'whsec_Y2FrLWRldi1jYWxsYmFjay1zZWNyZXQtbm90LWZvci1wcm9k';
export const DEV_ADMIN_TOKEN = 'cak-dev-admin-token';
const DEV_ADMIN_TOKENS = 'dev:6a7ebc936e3d78fd9f6a63de86d962b31ef4e331db440853c26f65d20b4306b6';
const DEV_SIGNED_URL_SECRET = 'cak-dev-signed-url-secret-not-for-production';
const DEV_NOTIFY_SECRET = 'whsec_Y2FrLWRldi1ub3RpZnktc2VjcmV0LW5vdC1mb3ItcHJvZA==';
/** The one issuer DID a development deployment serves, and the dev client's grant to it. */
export const DEV_ISSUER_DID = 'did:air:id:cak-dev-issuer';
const DEV_API_CLIENT_SCOPES = `dev=${DEV_ISSUER_DID}`;
const DEV_PARTNER_ID = 'cak-dev-partner';
const DEV_EMULATOR_MASTER_SECRET = 'cak-emulator-dev-master-secret';
// --- Crypto (issue 3): dev-only keys, public on purpose. Never valid in production.
const DEV_MANAGED_KEYS = 'dev-insecure-1:73pPxgOCHWPQFRa4DiO0svaX3JvZROvvMXkLCEwvlUA=';
const DEV_CODEC_KEYS = 'dev-insecure-1:DS8RQmsrVpBghklk9y/ne+YRdmBqwTbnKavV2jcCI6E=';
const DEV_AUDIT_KEYS = 'dev-insecure-1:4HQazV84DXw+LGDC+rsyhLMXv6jWslMXkp7J/jEa6xE=';
export const DEV_CODEC_AUTH_TOKEN = 'cak-dev-codec-token-not-for-production';
const keyringSpec = z.string().superRefine((spec, ctx) => {
  const error = keyringSpecError(spec);
  if (error !== null) ctx.addIssue({ code: 'custom', message: error });
});
/**
 * Variables production must set explicitly: their dev defaults are public. CALLBACK_SECRETS (for
 * standard-webhooks) or PLATFORM_JWKS_URL (for jws-es256) is required on top, by callback scheme.
 */
const PRODUCTION_REQUIRED = [
  'API_KEYS',
  'ISSUER_DIDS',
  'API_CLIENT_SCOPES',
  'PARTNER_ID',
  'PARTNER_SIGNING_KEYS',
  'ID_HMAC_SECRET',
  'ADMIN_TOKENS',
  'SIGNED_URL_SECRET',
  'NOTIFY_SECRET',
  'CAK_MANAGED_KEYS',
  'CAK_CODEC_KEYS',
  'CAK_AUDIT_KEYS',
  'CODEC_AUTH_TOKENS',
  'AIR_PLATFORM_URL',
] as const;
/** Every dev secret and token, and their sha256 (as API_KEYS / ADMIN_TOKENS hold them): refused anywhere in production. */
const DEV_SECRETS = new Set([
  DEV_API_KEY,
  DEV_ADMIN_TOKEN,
  DEV_ID_HMAC_SECRET,
  DEV_SIGNED_URL_SECRET,
  DEV_CALLBACK_SECRET,
  DEV_NOTIFY_SECRET,
  DEV_CODEC_AUTH_TOKEN,
  DEV_EMULATOR_MASTER_SECRET,
]);
const DEV_SECRET_HASHES = new Set([...DEV_SECRETS].map((s) => createHash('sha256').update(s).digest('hex')));
/**
 * Whether `value` is one of the public development secrets or tokens, or the sha256 hex of one (as
 * API_KEYS and ADMIN_TOKENS hold them): the values production refuses. `npm start` prints only these.
 */
export function isDevelopmentSecret(value: string): boolean {
  return DEV_SECRETS.has(value) || DEV_SECRET_HASHES.has(value);
}
/** The dev keyrings' key bytes: refused under any kid, in any of the keyrings. */
const DEV_KEY_BYTES = [DEV_MANAGED_KEYS, DEV_CODEC_KEYS, DEV_AUDIT_KEYS].flatMap((spec) => [
  ...parseKeyring(spec).keys.values(),
]);

export const configSchema = z.object({
  NODE_ENV: z.enum(['development', 'test', 'production']).default('development'),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),

  // Local services started by `npm run services:up` (ignored when TEMPORAL_ADDRESS / MONGODB_URI are given).
  LOCAL_TEMPORAL_PORT: port.default(7233),
  LOCAL_TEMPORAL_UI_PORT: port.default(8233),
  LOCAL_MONGO_PORT: port.default(27017),
  CAK_DATA_DIR: z.string().min(1).default('.data'),
  CAK_TOOLS_DIR: z.string().min(1).default('.tools'),

  TEMPORAL_ADDRESS: z
    .string()
    .regex(/^[\w.-]+:\d+$/, 'expected host:port')
    .optional(),
  TEMPORAL_NAMESPACE: z.string().min(1).default('default'),
  TEMPORAL_TASK_QUEUE: z.string().min(1).default('cak-issuer'),
  TEMPORAL_UI_URL: z.string().url().optional(),

  MONGODB_URI: z
    .string()
    .regex(/^mongodb(\+srv)?:\/\//, 'expected a mongodb:// or mongodb+srv:// URI')
    .optional(),
  MONGODB_DB: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,63}$/, 'letters, digits, _ and - only')
    .default('cak_issuer'),

  API_HOST: z.string().min(1).default('127.0.0.1'),
  API_PORT: port.default(3000),
  /**
   * Which reverse proxies in front of the API are trusted to say, in `X-Forwarded-For`, who the
   * client is: a hop count (`1`: the one proxy in front; `0` or `false`: none, the socket address is
   * the client) or a comma-separated list of proxy addresses and CIDRs (`10.0.0.0/8,fd00::/8`, also
   * `loopback`, `linklocal`, `uniquelocal`). Never `true`: trusting every hop lets any client write
   * its own address into the header. Only per-address limits (failed authentication, JWKS) use it.
   */
  API_TRUST_PROXY: trustProxySetting.default(0),
  /** The API's Prometheus metrics listener (`/metrics`), apart from the public port; 0 picks a free port. */
  API_METRICS_HOST: z.string().min(1).default('127.0.0.1'),
  API_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(3002),
  /** How often the API refreshes the database gauges it serves on `/metrics` (a scrape reads the cache, never the database). */
  API_METRICS_REFRESH_SECONDS: z.coerce.number().int().min(1).max(3600).default(15),
  /** On SIGTERM/SIGINT, how long requests in flight may finish after the API stops accepting connections; the rest are cut. */
  API_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(10_000),
  /**
   * On SIGTERM/SIGINT, how long the API keeps serving (with /readyz answering 503) before it stops
   * accepting connections: time for a load balancer that cannot retry a refused connection to see it.
   */
  API_SHUTDOWN_DELAY_MS: z.coerce.number().int().min(0).max(60_000).default(0),

  EMULATOR_ENABLED: bool.default(true),
  EMULATOR_HOST: z.string().min(1).default('127.0.0.1'),
  EMULATOR_PORT: port.default(3100),
  AIR_PLATFORM_URL: z.string().url().optional(),

  WORKER_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(30_000),

  // --- Issuance pipeline (issue 4). Dev defaults below; production must set the ones listed in
  // PRODUCTION_REQUIRED explicitly.
  /** API clients, `clientId:sha256hex(apiKey)` comma-separated; callers send the key in `x-api-key`. */
  API_KEYS: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}:[0-9a-f]{64}(,[A-Za-z0-9_-]{1,64}:[0-9a-f]{64})*$/, 'expected clientId:sha256hex,...')
    .default(DEV_API_KEYS),
  /** The issuer DIDs this deployment serves (usually one), comma-separated. */
  ISSUER_DIDS: z
    .string()
    .regex(
      /^did:[a-z0-9]{1,32}:[A-Za-z0-9._:%-]{1,256}(,did:[a-z0-9]{1,32}:[A-Za-z0-9._:%-]{1,256})*$/,
      'expected did[,did...]',
    )
    .default(DEV_ISSUER_DID)
    .transform((v) => [...new Set(v.split(','))]),
  /**
   * What each API client may issue for: `clientId=issuerDid` (every schema of that DID) or
   * `clientId=issuerDid/schemaId`, comma-separated, one grant per entry. A client with no grant can
   * issue nothing.
   */
  API_CLIENT_SCOPES: z
    .string()
    .regex(
      /^[A-Za-z0-9_-]{1,64}=did:[a-z0-9]{1,32}:[A-Za-z0-9._:%-]{1,256}(\/[A-Za-z0-9][A-Za-z0-9._:-]{0,127})?(,[A-Za-z0-9_-]{1,64}=did:[a-z0-9]{1,32}:[A-Za-z0-9._:%-]{1,256}(\/[A-Za-z0-9][A-Za-z0-9._:-]{0,127})?)*$/,
      'expected clientId=issuerDid[/schemaId],...',
    )
    .default(DEV_API_CLIENT_SCOPES),
  /** Requests per minute per API client (its clientId, after authentication) on /v1/issuances and /v1/partner-tokens. */
  API_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  /** Requests per minute per client address (API_TRUST_PROXY decides which) on unauthenticated public routes (JWKS). */
  PUBLIC_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(120),
  /** Requests per minute per Verifier (its verifierDid, after authentication) on /v1/verifier/data and package downloads. */
  VERIFIER_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(300),
  /** Requests per minute per admin credential name on /v1/admin. */
  ADMIN_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(120),
  /** Requests per minute per codec session (or bearer token) on /codec/encode and /codec/decode. */
  CODEC_RATE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(600),
  /**
   * Failed authentications per minute per client address, across every authenticated route (bad API
   * key, admin or codec token, Verifier JWT, package URL). Over it, that address's failures get 429
   * instead of 401; a valid credential from the same address is never refused by it.
   */
  AUTH_FAILURE_LIMIT_PER_MINUTE: z.coerce.number().int().min(1).default(30),
  /** Our Partner ID on the AIR platform (the `partnerId` claim of Partner JWTs). */
  PARTNER_ID: z
    .string()
    .regex(/^[A-Za-z0-9._:-]{1,128}$/)
    .default(DEV_PARTNER_ID),
  /** Partner JWT signing keys: a JSON array of private JWKs (EC P-256 for ES256 or RSA for RS256), each with `kid`. All are published in the JWKS. */
  PARTNER_SIGNING_KEYS: z.string().optional(),
  /** `kid` of the key that signs new tokens (default: the first of PARTNER_SIGNING_KEYS). */
  PARTNER_ACTIVE_KID: z.string().optional(),
  PARTNER_TOKEN_TTL_SECONDS: z.coerce.number().int().min(30).max(900).default(300),
  /** HMAC key for ids derived from client data (issuance ids, workflow ids, record ids). */
  ID_HMAC_SECRET: z.string().min(32).default(DEV_ID_HMAC_SECRET),
  SCHEMA_REGISTRY_PATH: z.string().min(1).default('config/schemas.yaml'),
  /** Raw items are staged (encrypted) this long at most; the sweep schedule deletes what is older. */
  STAGING_TTL_SECONDS: z.coerce.number().int().min(1).default(3600),
  STAGING_SWEEP_INTERVAL_SECONDS: z.coerce.number().int().min(1).default(300),
  /** Encrypted packages (and staged items) at or above this size go to GridFS; smaller ones inline. */
  GRIDFS_THRESHOLD_BYTES: z.coerce
    .number()
    .int()
    .min(1024)
    .max(8 * 1024 * 1024)
    .default(256 * 1024),
  ITEM_MAX_FILE_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(25 * 1024 * 1024),
  ITEM_MAX_TOTAL_BYTES: z.coerce
    .number()
    .int()
    .min(1)
    .default(60 * 1024 * 1024),
  ITEM_MAX_FILES: z.coerce.number().int().min(1).max(32).default(8),
  /** Record versions kept per (issuerDid, userId, schemaId): the current one and N-1 before it. */
  RECORD_VERSIONS_KEPT: z.coerce.number().int().min(1).default(2),
  PLATFORM_TIMEOUT_MS: z.coerce.number().int().min(100).default(10_000),
  /**
   * How long an issuance's platform call retries, with backoff, answers that may pass: 401/403 (the
   * platform could not fetch our JWKS while the API restarted, or keys mid-rotation), 5xx, 408, 429
   * and timeouts. Counted from the call's first attempt; after it the run fails, keeping its staging
   * for `cak issuances retry` (docs/issuance.md).
   */
  PLATFORM_RETRY_HORIZON_SECONDS: z.coerce.number().int().min(1).default(900),
  /** Emulator only: master secret the emulated CAK key pairs derive from. */
  EMULATOR_MASTER_SECRET: z.string().min(16).default(DEV_EMULATOR_MASTER_SECRET),
  /** Emulator only: the Partner JWKS URL it trusts (default: this API's /.well-known/jwks.json). */
  EMULATOR_JWKS_URL: z.string().url().optional(),
  WORKER_HEALTH_HOST: z.string().min(1).default('127.0.0.1'),
  /** The worker's own HTTP port (`/healthz`); 0 picks a free port. */
  WORKER_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(3001),
  /** The Temporal SDK's own Prometheus metrics on WORKER_HEALTH_HOST; 0 turns them off. */
  WORKER_SDK_METRICS_PORT: z.coerce.number().int().min(0).max(65535).default(9464),

  // --- Authorization callbacks and Verifier access (issue 5). Dev defaults below are public;
  // production must set the ones listed in PRODUCTION_REQUIRED (see docs/callbacks.md).
  /** How the platform signs callbacks: `standard-webhooks` (HMAC, CALLBACK_SECRETS) or `jws-es256` (detached JWS, PLATFORM_JWKS_URL). */
  CALLBACK_SIGNATURE_SCHEME: z.enum(['standard-webhooks', 'jws-es256']).default('standard-webhooks'),
  /** Standard Webhooks secrets (`whsec_<base64>`), space- or comma-separated; any one verifies (rotation). */
  CALLBACK_SECRETS: z
    .string()
    .regex(
      /^whsec_[A-Za-z0-9+/=]{16,}([ ,]+whsec_[A-Za-z0-9+/=]{16,})*$/,
      'expected whsec_<base64>[,whsec_<base64>...]',
    )
    .default(DEV_CALLBACK_SECRET),
  /** Accepted clock skew of a callback's signed timestamp, both ways (replay window). */
  CALLBACK_TOLERANCE_SECONDS: z.coerce.number().int().min(1).max(3600).default(300),
  /** JWKS URL of the platform's callback signing keys (jws-es256); default: the emulator's. */
  PLATFORM_JWKS_URL: z.string().url().optional(),
  /** jws-es256: a callback signed with an unknown `kid` refetches the JWKS at most this often. */
  PLATFORM_JWKS_COOLDOWN_SECONDS: z.coerce.number().min(0).max(3600).default(10),
  /** Admin credentials, `name:sha256hex(token)` comma-separated; callers send `Authorization: Bearer <token>`. */
  ADMIN_TOKENS: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,64}:[0-9a-f]{64}(,[A-Za-z0-9_-]{1,64}:[0-9a-f]{64})*$/, 'expected name:sha256hex,...')
    .default(DEV_ADMIN_TOKENS),
  /** HMAC key of the signed, short-lived package URLs handed to Verifiers. */
  SIGNED_URL_SECRET: z.string().min(32).default(DEV_SIGNED_URL_SECRET),
  SIGNED_URL_TTL_SECONDS: z.coerce.number().int().min(10).max(3600).default(300),
  /** Default target of the `notify` callback handler (a route may name its own `notifyUrl`). */
  NOTIFY_URL: z.string().url().optional(),
  /** Standard Webhooks secret (`whsec_<base64>`) that signs our internal `notify` requests. */
  NOTIFY_SECRET: z
    .string()
    .regex(/^whsec_[A-Za-z0-9+/=]{16,}$/, 'expected whsec_<base64>')
    .default(DEV_NOTIFY_SECRET),
  /** An unrouted or no-data authorization waits this long for an operator's re-drive before its run ends. */
  AUTHORIZATION_REDRIVE_WINDOW_HOURS: z.coerce.number().int().min(1).default(720),

  // --- Crypto (issue 3): the outer-layer keyring, the Temporal payload codec keyring and the codec
  // endpoint. Dev defaults are public (kid `dev-insecure-1`); production must set all of them (see
  // PRODUCTION_REQUIRED) and may not use a `dev-insecure` key id nor the dev key bytes. See docs/crypto.md.
  /** Issuer-managed outer layer keys, `kid:base64(32 bytes)` comma-separated; the FIRST is active. */
  CAK_MANAGED_KEYS: keyringSpec.default(DEV_MANAGED_KEYS),
  /** Temporal payload codec keys, same format; the FIRST is active. */
  CAK_CODEC_KEYS: keyringSpec.default(DEV_CODEC_KEYS),
  /** How often the audit sequencer looks for pending events while none are waiting. */
  AUDIT_SEAL_POLL_MS: z.coerce.number().int().min(10).max(60_000).default(250),
  /** Audit chain keys (HMAC of each link), same format; the FIRST signs new links. The database never holds them. */
  CAK_AUDIT_KEYS: keyringSpec.default(DEV_AUDIT_KEYS),
  /** Bearer tokens accepted by the codec endpoint (/codec), comma-separated, 16+ characters each. */
  CODEC_AUTH_TOKENS: z
    .string()
    .regex(
      /^[\x21-\x2b\x2d-\x7e]{16,}(,[\x21-\x2b\x2d-\x7e]{16,})*$/,
      'expected token[,token...], 16+ printable characters each',
    )
    .default(DEV_CODEC_AUTH_TOKEN)
    .transform((v) => v.split(',')),
  /** Browser origins allowed to call the codec endpoint (the Temporal Web UI), comma-separated. */
  CODEC_ALLOWED_ORIGINS: z
    .string()
    .regex(/^https?:\/\/[^\s,/]+(,https?:\/\/[^\s,/]+)*$/, 'expected scheme://host[:port][,...]')
    .default('http://127.0.0.1:8233,http://localhost:8233')
    .transform((v) => v.split(',')),
});

type RawConfig = z.infer<typeof configSchema>;

export type Config = Omit<
  RawConfig,
  | 'TEMPORAL_ADDRESS'
  | 'MONGODB_URI'
  | 'AIR_PLATFORM_URL'
  | 'TEMPORAL_UI_URL'
  | 'EMULATOR_JWKS_URL'
  | 'PLATFORM_JWKS_URL'
> & {
  /** The platform's callback-signing JWKS (jws-es256): given, or the emulator's. */
  PLATFORM_JWKS_URL: string;
  TEMPORAL_ADDRESS: string;
  MONGODB_URI: string;
  TEMPORAL_UI_URL: string;
  /** Where the platform client sends requests: the real AIR platform, or the embedded emulator. */
  AIR_PLATFORM_URL: string;
  /** The JWKS URL the emulator verifies Partner JWTs against. */
  EMULATOR_JWKS_URL: string;
  /** Which of the addresses above were given explicitly (and so must not be started locally). */
  explicit: { temporal: boolean; mongo: boolean; platform: boolean };
};

export class ConfigError extends Error {
  readonly code = 'CONFIG_INVALID';
  constructor(readonly issues: { variable: string; message: string }[]) {
    super(`Invalid configuration: ${issues.map((i) => `${i.variable}: ${i.message}`).join('; ')}`);
    this.name = 'ConfigError';
    Object.setPrototypeOf(this, ConfigError.prototype);
  }
}

/** Each API_CLIENT_SCOPES entry must name a client of API_KEYS and a DID of ISSUER_DIDS. */
function clientScopeIssues(c: RawConfig): { variable: string; message: string }[] {
  const clients = new Set(c.API_KEYS.split(',').map((entry) => entry.split(':')[0]));
  return parseClientScopes(c.API_CLIENT_SCOPES).flatMap(({ clientId, issuerDid }) => [
    ...(clients.has(clientId)
      ? []
      : [{ variable: 'API_CLIENT_SCOPES', message: `client "${clientId}" is not in API_KEYS` }]),
    ...(c.ISSUER_DIDS.includes(issuerDid)
      ? []
      : [{ variable: 'API_CLIENT_SCOPES', message: `${issuerDid} is not one of ISSUER_DIDS` }]),
  ]);
}

export interface ClientScope {
  clientId: string;
  issuerDid: string;
  /** absent: every schema of the issuer DID */
  schemaId?: string;
}

/** `clientId=issuerDid[/schemaId],...` (already shape-checked by the schema above). */
export function parseClientScopes(spec: string): ClientScope[] {
  return spec.split(',').map((entry) => {
    const [clientId, grant] = entry.split('=') as [string, string];
    const [issuerDid, schemaId] = grant.split('/') as [string, string | undefined];
    return { clientId, issuerDid, ...(schemaId ? { schemaId } : {}) };
  });
}

/**
 * Production brings its own secrets and keys: every development default is public. So each variable
 * with a dev default must be set, and to none of the dev values (dev key bytes under any kid, a dev
 * secret in any list), and the emulator, whose CAK keys derive from a public secret, must be off.
 * One issue per variable.
 */
function productionIssues(c: RawConfig, present: Record<string, unknown>): { variable: string; message: string }[] {
  const hasDevKey = (spec: string) =>
    [...parseKeyring(spec).keys].some(
      ([kid, key]) => kid.includes('dev-insecure') || DEV_KEY_BYTES.some((dev) => dev.equals(key)),
    );
  const hasDevHash = (spec: string) => spec.split(',').some((entry) => DEV_SECRET_HASHES.has(entry.split(':')[1]!));
  const devValue: Record<string, boolean> = {
    API_KEYS: hasDevHash(c.API_KEYS),
    ADMIN_TOKENS: hasDevHash(c.ADMIN_TOKENS),
    ISSUER_DIDS: c.ISSUER_DIDS.includes(DEV_ISSUER_DID),
    API_CLIENT_SCOPES: parseClientScopes(c.API_CLIENT_SCOPES).some((scope) => scope.issuerDid === DEV_ISSUER_DID),
    PARTNER_ID: c.PARTNER_ID === DEV_PARTNER_ID,
    PARTNER_SIGNING_KEYS:
      c.PARTNER_SIGNING_KEYS !== undefined && hasDevPartnerKey(c.PARTNER_SIGNING_KEYS, c.PARTNER_ID),
    ID_HMAC_SECRET: DEV_SECRETS.has(c.ID_HMAC_SECRET),
    CALLBACK_SECRETS: c.CALLBACK_SECRETS.split(/[ ,]+/).some((secret) => DEV_SECRETS.has(secret)),
    SIGNED_URL_SECRET: DEV_SECRETS.has(c.SIGNED_URL_SECRET),
    NOTIFY_SECRET: DEV_SECRETS.has(c.NOTIFY_SECRET),
    CODEC_AUTH_TOKENS: c.CODEC_AUTH_TOKENS.some((token) => DEV_SECRETS.has(token)),
    EMULATOR_MASTER_SECRET: DEV_SECRETS.has(c.EMULATOR_MASTER_SECRET),
    CAK_MANAGED_KEYS: hasDevKey(c.CAK_MANAGED_KEYS),
    CAK_CODEC_KEYS: hasDevKey(c.CAK_CODEC_KEYS),
    CAK_AUDIT_KEYS: hasDevKey(c.CAK_AUDIT_KEYS),
  };
  const required = new Set<string>([
    ...PRODUCTION_REQUIRED,
    c.CALLBACK_SIGNATURE_SCHEME === 'standard-webhooks' ? 'CALLBACK_SECRETS' : 'PLATFORM_JWKS_URL',
  ]);
  const issues: { variable: string; message: string }[] = [];
  for (const variable of new Set([...required, ...Object.keys(devValue)])) {
    if (present[variable] === undefined) {
      if (required.has(variable)) issues.push({ variable, message: 'required in production' });
    } else if (devValue[variable]) {
      issues.push({ variable, message: 'a development value (public) is not allowed in production' });
    }
  }
  if (c.EMULATOR_ENABLED) {
    issues.push({
      variable: 'EMULATOR_ENABLED',
      message: 'the emulator is not allowed in production: set EMULATOR_ENABLED=false',
    });
  }
  return issues;
}

/** Whether PARTNER_SIGNING_KEYS holds the dev key of PARTNER_ID or of the dev partner, whatever its kid. */
function hasDevPartnerKey(spec: string, partnerId: string): boolean {
  const devScalars = new Set([partnerId, DEV_PARTNER_ID].map((id) => devPartnerJwk(id).d));
  let keys: unknown;
  try {
    keys = JSON.parse(spec);
  } catch {
    return false; // loadPartnerKeys reports the malformed value
  }
  return Array.isArray(keys) && keys.some((key: unknown) => devScalars.has((key as { d?: string } | null)?.d ?? ''));
}

/** Parses the environment; throws ConfigError naming every bad variable. Empty strings count as unset. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ''));
  const parsed = configSchema.safeParse(present);
  if (!parsed.success) {
    throw new ConfigError(
      parsed.error.issues.map((issue) => ({ variable: String(issue.path[0] ?? '(root)'), message: issue.message })),
    );
  }
  const c = parsed.data;
  if (c.NODE_ENV === 'production') {
    const issues = productionIssues(c, present);
    if (issues.length > 0) throw new ConfigError(issues);
  }
  const scopeIssues = clientScopeIssues(c);
  if (scopeIssues.length > 0) throw new ConfigError(scopeIssues);
  return {
    ...c,
    TEMPORAL_ADDRESS: c.TEMPORAL_ADDRESS ?? `127.0.0.1:${c.LOCAL_TEMPORAL_PORT}`,
    MONGODB_URI: c.MONGODB_URI ?? `mongodb://127.0.0.1:${c.LOCAL_MONGO_PORT}/`,
    TEMPORAL_UI_URL: c.TEMPORAL_UI_URL ?? `http://127.0.0.1:${c.LOCAL_TEMPORAL_UI_PORT}`,
    AIR_PLATFORM_URL: c.AIR_PLATFORM_URL ?? `http://${c.EMULATOR_HOST}:${c.EMULATOR_PORT}`,
    EMULATOR_JWKS_URL: c.EMULATOR_JWKS_URL ?? `http://${c.API_HOST}:${c.API_PORT}/.well-known/jwks.json`,
    PLATFORM_JWKS_URL:
      c.PLATFORM_JWKS_URL ??
      `${c.AIR_PLATFORM_URL ?? `http://${c.EMULATOR_HOST}:${c.EMULATOR_PORT}`}/.well-known/callback-jwks.json`,
    explicit: {
      temporal: c.TEMPORAL_ADDRESS !== undefined,
      mongo: c.MONGODB_URI !== undefined,
      platform: c.AIR_PLATFORM_URL !== undefined,
    },
  };
}
