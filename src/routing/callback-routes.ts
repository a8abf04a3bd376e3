import { z } from 'zod';
import { CALLBACK_HANDLERS, type ResolvedRoute } from '../domain/authorization';

/**
 * The `callback` entry of a schema in config/schemas.yaml: which built-in handlers an authorization
 * callback for that schema runs, in order.
 *
 *   callback:
 *     handlers: [grant-access, notify]     # grant-access | notify | log-only
 *     notifyUrl: https://hooks.example/x  # optional; `notify` falls back to NOTIFY_URL
 *     accessWindow: 30d                    # optional (default 30d): how long one consent opens access
 *
 * A schema without `callback` (or not in the registry at all) is unrouted: its authorizations are
 * recorded as `unrouted`, listed for operators, and re-driven once a route exists.
 */
const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;
const DEFAULT_ACCESS_WINDOW = '30d';

/** `90s`, `15m`, `24h`, `30d` -> milliseconds. */
function durationMs(value: string): number {
  const match = /^(\d{1,6})([smhd])$/.exec(value);
  if (!match) throw new Error(`not a duration: ${value}`);
  return Number(match[1]) * UNIT_MS[match[2] as keyof typeof UNIT_MS];
}

export const callbackRouteSchema = z
  .strictObject({
    handlers: z
      .array(z.enum(CALLBACK_HANDLERS))
      .min(1)
      .refine((h) => new Set(h).size === h.length, 'a handler may appear once'),
    notifyUrl: z
      .string()
      .url()
      .refine((u) => /^https?:\/\//.test(u), 'notifyUrl must be http(s)')
      .optional(),
    accessWindow: z
      .string()
      .regex(/^[1-9]\d{0,5}[smhd]$/, 'a duration such as 90s, 15m, 24h or 30d')
      .default(DEFAULT_ACCESS_WINDOW),
  })
  .refine((r) => !r.handlers.includes('log-only') || r.handlers.length === 1, 'log-only stands alone');

export type CallbackRoute = z.infer<typeof callbackRouteSchema>;

/** What the workflow needs from a route (the notify target stays on the activity side). */
export function toResolvedRoute(route: CallbackRoute | undefined): ResolvedRoute | null {
  return route ? { handlers: [...route.handlers], accessWindowMs: durationMs(route.accessWindow) } : null;
}
