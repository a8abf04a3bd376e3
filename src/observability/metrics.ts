import { createServer, type Server } from 'node:http';
import type { RequestHandler } from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics, one registry per process (API or worker). Metric names are listed in the
 * README ("Metrics"); labels carry only route templates, codes and states, never identifiers.
 */
export interface Metrics {
  registry: Registry;
  httpRequests: Counter<'method' | 'route' | 'status'>;
  httpDuration: Histogram<'method' | 'route' | 'status'>;
  callbacks: Counter<'outcome' | 'code'>;
  activityFailures: Counter<'activity' | 'type'>;
  verifierDenied: Counter<'reason'>;
}

export function createMetrics(component: 'api' | 'worker'): Metrics {
  const registry = new Registry();
  registry.setDefaultLabels({ component });
  collectDefaultMetrics({ register: registry, prefix: 'cak_' });
  return {
    registry,
    httpRequests: new Counter({
      name: 'cak_http_requests_total',
      help: 'HTTP requests by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      registers: [registry],
    }),
    httpDuration: new Histogram({
      name: 'cak_http_request_duration_seconds',
      help: 'HTTP request latency by method, route template and status',
      labelNames: ['method', 'route', 'status'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: [registry],
    }),
    callbacks: new Counter({
      name: 'cak_callbacks_total',
      help: 'Authorization callbacks by outcome (started, duplicate, inboxed, rejected, unavailable) and error code',
      labelNames: ['outcome', 'code'],
      registers: [registry],
    }),
    activityFailures: new Counter({
      name: 'cak_activity_failures_total',
      help: 'Failed activity attempts by activity type and error type',
      labelNames: ['activity', 'type'],
      registers: [registry],
    }),
    verifierDenied: new Counter({
      name: 'cak_verifier_denied_total',
      help: 'Verifier requests denied by the access rule, by reason (AUTHORIZATION_REQUIRED, _REVOKED, _EXPIRED)',
      labelNames: ['reason'],
      registers: [registry],
    }),
  };
}

interface DatabaseGaugeSpec<L extends string> {
  name: string;
  help: string;
  labelNames: L[];
  read: () => Promise<{ labels: Record<L, string>; value: number }[]>;
}

/**
 * Gauges read from the database on an interval, never at scrape time: a scrape (however often, by
 * however many scrapers) serves the last values read and costs the database nothing. A gauge whose
 * last read failed (database down) is left out of scrapes until a read succeeds again.
 */
export interface DatabaseGauges {
  /** reads every gauge once now (the interval does the same) */
  refresh(): Promise<void>;
  stop(): void;
}

export function databaseGauges(
  metrics: Metrics,
  specs: DatabaseGaugeSpec<string>[],
  options: { refreshMs: number },
): DatabaseGauges {
  const cache = new Map<string, { labels: Record<string, string>; value: number }[] | undefined>();
  for (const spec of specs) {
    new Gauge<string>({
      name: spec.name,
      help: spec.help,
      labelNames: spec.labelNames,
      registers: [metrics.registry],
      collect() {
        this.reset();
        for (const { labels, value } of cache.get(spec.name) ?? []) this.set(labels, value);
      },
    });
  }
  let running: Promise<void> | undefined;
  const refresh = () =>
    (running ??= (async () => {
      for (const spec of specs) {
        try {
          cache.set(spec.name, await spec.read());
        } catch {
          cache.set(spec.name, undefined); // database unreachable: left out, not stale
        }
      }
    })().finally(() => (running = undefined)));
  void refresh();
  const timer = setInterval(() => void refresh(), options.refreshMs);
  timer.unref();
  return { refresh, stop: () => clearInterval(timer) };
}

type CallbackOutcome = 'started' | 'duplicate' | 'inboxed' | 'rejected' | 'unavailable';

/**
 * Counts platform callbacks by outcome. The route records what it did in `res.locals.callbackOutcome`;
 * the error handler records the code of a refusal in `res.locals.errorCode`.
 */
export function callbackMetrics(metrics: Metrics): RequestHandler {
  return (_req, res, next) => {
    res.once('finish', () => {
      const accepted = res.locals.callbackOutcome as CallbackOutcome | undefined;
      const code = typeof res.locals.errorCode === 'string' ? res.locals.errorCode : '';
      const outcome: CallbackOutcome = accepted ?? (res.statusCode === 503 ? 'unavailable' : 'rejected');
      metrics.callbacks.inc({ outcome, code });
    });
    next();
  };
}

/** Counts and times every request by its route template (`/v1/issuances/:id`), not its raw path. */
export function httpMetrics(metrics: Metrics): RequestHandler {
  return (req, res, next) => {
    const stop = metrics.httpDuration.startTimer();
    res.once('finish', () => {
      const template = (req.route as { path?: unknown } | undefined)?.path;
      const route = typeof template === 'string' ? `${req.baseUrl}${template}` : 'unmatched';
      const labels = { method: req.method, route, status: String(res.statusCode) };
      metrics.httpRequests.inc(labels);
      stop(labels);
    });
    next();
  };
}

/**
 * A listener of its own for `GET /metrics` (like the worker's health port): never on the public
 * port, so the proxy in front of the API cannot expose it, and the scraper reaches it directly.
 */
export function metricsServer(metrics: Metrics): Server {
  return createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      () => res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics unavailable\n'),
    );
  });
}
