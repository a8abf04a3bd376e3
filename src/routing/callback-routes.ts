import { z } from 'zod';
import { CALLBACK_HANDLERS, type ResolvedRoute } from '../domain/authorization';

/**
 * The `callback` entry of a schema in config/schemas.yaml: which built-in handlers an authorization
 * callback for that schema runs, in order.
 *
 *   callback:
 *     handlers: [grant-access, notify]     # grant-access | notify | log-only
 *     notifyUrl: https://hooks.example/x  # optional; `notify` falls back to NOTIFY_URL
 *
 * A schema without `callback` (or not in the registry at all) is unrouted: its authorizations are
 * recorded as `unrouted`, listed for operators, and re-driven once a route exists.
 */
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
  })
  .refine((r) => !r.handlers.includes('log-only') || r.handlers.length === 1, 'log-only stands alone');

export type CallbackRoute = z.infer<typeof callbackRouteSchema>;

/** What the workflow needs from a route (the notify target stays on the activity side). */
export function toResolvedRoute(route: CallbackRoute | undefined): ResolvedRoute | null {
  return route ? { handlers: [...route.handlers] } : null;
}
