import { Router } from 'express';
import type { Logger } from '../observability/logger';

export interface ReadinessProbes {
  temporal: () => Promise<void>;
  database: () => Promise<void>;
}

type Dependency = keyof ReadinessProbes;
type CheckResult = { status: 'up' } | { status: 'down' };

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

  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    if (draining()) {
      res.status(503).json({ status: 'draining' });
      return;
    }
    const [temporal, database] = await Promise.all([check('temporal'), check('database')]);
    const ready = temporal.status === 'up' && database.status === 'up';
    res
      .status(ready ? 200 : 503)
      .set('cache-control', 'no-store')
      .json({ status: ready ? 'ready' : 'not-ready', checks: { temporal, database } });
  });
  return router;
}
