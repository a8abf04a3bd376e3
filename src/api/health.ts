import { Router } from 'express';

export interface ReadinessProbes {
  temporal: () => Promise<void>;
  database: () => Promise<void>;
}

type CheckResult = { status: 'up' } | { status: 'down'; error: string };

async function check(probe: () => Promise<void>): Promise<CheckResult> {
  try {
    await probe();
    return { status: 'up' };
  } catch (err) {
    return { status: 'down', error: err instanceof Error ? err.message : String(err) };
  }
}

/**
 * `/healthz`: the process is up. `/readyz`: Temporal and the database each answer (503 when either
 * does not), and the process is not shutting down (503 `draining`, nothing probed).
 */
export function healthRoutes(probes: ReadinessProbes, draining: () => boolean = () => false): Router {
  const router = Router();
  router.get('/healthz', (_req, res) => {
    res.json({ status: 'ok' });
  });
  router.get('/readyz', async (_req, res) => {
    if (draining()) {
      res.status(503).json({ status: 'draining' });
      return;
    }
    const [temporal, database] = await Promise.all([check(probes.temporal), check(probes.database)]);
    const ready = temporal.status === 'up' && database.status === 'up';
    res.status(ready ? 200 : 503).json({ status: ready ? 'ready' : 'not-ready', checks: { temporal, database } });
  });
  return router;
}
