import type { Db } from 'mongodb';
import { createMetrics, databaseGauges, type DatabaseGauges, type Metrics } from '../observability/metrics';
import { auditRepository, type AuditKeys } from '../storage/audit';
import { authorizationsRepository } from '../storage/authorizations';
import { inboxRepository } from '../storage/inbox';
import { issuancesRepository } from '../storage/issuances';

/** The API's metrics, and the interval refresh of its database gauges (stopped when the API stops). */
interface ApiMetrics extends Metrics {
  gauges: DatabaseGauges;
}

/**
 * The API's metrics: request counters from the middleware, callback outcomes from the callback
 * route, Verifier denials, and gauges read from the database every `refreshMs` into a cache that
 * scrapes read (a gauge whose last read failed, the database being down, is left out).
 */
export function apiMetrics(db: Db, auditKeys: AuditKeys, options: { refreshMs: number }): ApiMetrics {
  const metrics = createMetrics('api');
  const issuances = issuancesRepository(db);
  const authorizations = authorizationsRepository(db);
  const audit = auditRepository(db, auditKeys);
  const inbox = inboxRepository(db);
  const gauges = databaseGauges(
    metrics,
    [
      {
        name: 'cak_issuances',
        help: 'Issuances by status',
        labelNames: ['status'],
        read: async () =>
          (await issuances.countByStatus()).map(({ value, count }) => ({ labels: { status: value }, value: count })),
      },
      {
        name: 'cak_authorizations',
        help: 'Authorizations by state (received, active, unrouted, no-data, revoked, ...)',
        labelNames: ['state'],
        read: async () =>
          (await authorizations.countByState()).map(({ value, count }) => ({ labels: { state: value }, value: count })),
      },
      {
        name: 'cak_audit_chain_length',
        help: 'Events in the hash-chained audit trail',
        labelNames: [],
        read: async () => [{ labels: {}, value: await audit.length() }],
      },
      {
        name: 'cak_callback_inbox_pending',
        help: 'Acknowledged callbacks waiting for the relay to start their run (Temporal was unavailable)',
        labelNames: [],
        read: async () => [{ labels: {}, value: await inbox.pending() }],
      },
    ],
    options,
  );
  return { ...metrics, gauges };
}
