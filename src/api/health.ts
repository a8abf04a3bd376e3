import { Router } from 'express';
import { z } from 'zod';
import type { Logger } from '../observability/logger';
import { route } from './routes';

export interface ReadinessProbes {
  temporal: () => Promise<void>;
  database: () => Promise<void>;
}

type Dependency = keyof ReadinessProbes;
/** Up or down only: why a dependency is down goes to the log, never to this public answer. */
const checkResult = z.object({ status: z.enum(['up', 'down']) });
type CheckResult = z.infer<typeof checkResult>;
const readiness = z.object({
  status: z.enum(['ready', 'not-ready', 'draining']),
  checks: z
    .object({ temporal: checkResult, database: checkResult })
    .optional()
    .meta({ description: 'absent when `draining`' }),
});

export const getHealth = route({
  method: 'get',
  path: '/healthz',
  operationId: 'getHealth',
  summary: 'Liveness: the process is up',
  tag: 'operations',
  auth: 'public',
  responses: { 200: { description: 'up', schema: z.object({ status: z.literal('ok') }) } },
});
export const getReadiness = route({
  method: 'get',
  path: '/readyz',
  operationId: 'getReadiness',
  summary: 'Readiness: Temporal and the database each answer',
  tag: 'operations',
  auth: 'public',
  responses: {
    200: { description: 'both up', schema: readiness, name: 'Readiness' },
    503: {
      description: 'either is down (named in `checks`), or the process is shutting down (`draining`)',
      schema: readiness,
      name: 'Readiness',
    },
  },
});

/**
 * `/healthz`: the process is up. `/readyz`: Temporal and the database each answer (503 when either
 * does not), and the process is not shutting down (503 `draining`, nothing probed).
 *
 * `/readyz` is public (a proxy polls it), so it says only `up` or `down` per dependency; why a
 * dependency is down (an address, a driver message) goes to the log, once per change of state or
 * of reason, not once per poll.
 */
export function healthRoutes(probes: ReadinessProbes, draining: () => boolean = () => false, log?: Logger): Router {
  const router = Router();
  const lastReason = new Map<Dependency, string | undefined>();

  async function check(name: Dependency): Promise<CheckResult> {
    try {
      await probes[name]();
      if (lastReason.get(name) !== undefined) log?.info({ dependency: name }, 'readiness: dependency is up again');
      lastReason.set(name, undefined);
      return { status: 'up' };
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      if (lastReason.get(name) !== reason)
        log?.warn({ dependency: name, err: reason }, 'readiness: dependency is down');
      lastReason.set(name, reason);
      return { status: 'down' };
    }
  }

  getHealth.on(router, (_req, res) => getHealth.send(res, 200, { status: 'ok' }));
  getReadiness.on(router, async (_req, res) => {
    if (draining()) return getReadiness.send(res, 503, { status: 'draining' });
    const [temporal, database] = await Promise.all([check('temporal'), check('database')]);
    const ready = temporal.status === 'up' && database.status === 'up';
    getReadiness.send(res.set('cache-control', 'no-store'), ready ? 200 : 503, {
      status: ready ? 'ready' : 'not-ready',
      checks: { temporal, database },
    });
  });
  return router;
}
