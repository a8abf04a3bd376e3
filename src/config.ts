import { z } from 'zod';

/**
 * Every environment variable the service reads, validated in one place.
 * Defaults are for a local run on one machine (`npm start`); production sets them explicitly.
 * The README's configuration table mirrors this schema: keep the two in step.
 */

const port = z.coerce.number().int().min(1).max(65535);
const bool = z.enum(['true', 'false', '1', '0']).transform((v) => v === 'true' || v === '1');

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
  API_TRUST_PROXY: bool.default(false),

  EMULATOR_ENABLED: bool.default(true),
  EMULATOR_HOST: z.string().min(1).default('127.0.0.1'),
  EMULATOR_PORT: port.default(3100),
  AIR_PLATFORM_URL: z.string().url().optional(),

  WORKER_SHUTDOWN_GRACE_MS: z.coerce.number().int().min(0).default(30_000),
  WORKER_HEALTH_HOST: z.string().min(1).default('127.0.0.1'),
  /** The worker's own HTTP port (`/healthz`); 0 picks a free port. */
  WORKER_HEALTH_PORT: z.coerce.number().int().min(0).max(65535).default(3001),
});

type RawConfig = z.infer<typeof configSchema>;

export type Config = Omit<RawConfig, 'TEMPORAL_ADDRESS' | 'MONGODB_URI' | 'AIR_PLATFORM_URL' | 'TEMPORAL_UI_URL'> & {
  TEMPORAL_ADDRESS: string;
  MONGODB_URI: string;
  TEMPORAL_UI_URL: string;
  /** Where the platform client sends requests: the real AIR platform, or the embedded emulator. */
  AIR_PLATFORM_URL: string;
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
  return {
    ...c,
    TEMPORAL_ADDRESS: c.TEMPORAL_ADDRESS ?? `127.0.0.1:${c.LOCAL_TEMPORAL_PORT}`,
    MONGODB_URI: c.MONGODB_URI ?? `mongodb://127.0.0.1:${c.LOCAL_MONGO_PORT}/`,
    TEMPORAL_UI_URL: c.TEMPORAL_UI_URL ?? `http://127.0.0.1:${c.LOCAL_TEMPORAL_UI_PORT}`,
    AIR_PLATFORM_URL: c.AIR_PLATFORM_URL ?? `http://${c.EMULATOR_HOST}:${c.EMULATOR_PORT}`,
    explicit: {
      temporal: c.TEMPORAL_ADDRESS !== undefined,
      mongo: c.MONGODB_URI !== undefined,
      platform: c.AIR_PLATFORM_URL !== undefined,
    },
  };
}
