import {
  MongoClient,
  MongoNetworkError,
  MongoServerError,
  MongoServerSelectionError,
  type Collection,
  type Db,
  type Document,
} from 'mongodb';

interface Database {
  client: MongoClient;
  db: Db;
  close(): Promise<void>;
}

/**
 * One MongoClient per process. Short server-selection timeout so a database outage surfaces as an
 * error quickly (activities retry it; the API reports it on /readyz) instead of hanging requests.
 * `lazy` does not connect up front (the API starts while the database is down: the first operation
 * connects); `onMonitorStall` is called once when the client's server monitor goes silent.
 */
export async function connectDatabase(
  uri: string,
  dbName: string,
  options: { onMonitorStall?: (silentMs: number) => void; appName?: string; lazy?: boolean } = {},
): Promise<Database> {
  const appName = options.appName ?? 'cak-issuer';
  const client = new MongoClient(
    uri,
    options.lazy
      ? { serverSelectionTimeoutMS: 2_000, appName }
      : { serverSelectionTimeoutMS: 5_000, connectTimeoutMS: 5_000, appName },
  );
  if (!options.lazy) await client.connect();
  const onStall = options.onMonitorStall;
  const watchdog = onStall
    ? watchMonitor(client, (silentMs) => {
        clearInterval(watchdog);
        onStall(silentMs);
      })
    : undefined;
  return {
    client,
    db: client.db(dbName),
    close: () => {
      if (watchdog) clearInterval(watchdog);
      return client.close();
    },
  };
}

/** How long the driver's server monitor may stay silent (it reports every 10 s, up or down). */
export const MONITOR_STALL_MS = 60_000;

/**
 * The driver checks the server every 10 s (sooner while an operation waits for it) and reports each
 * check, whether the server answered or not. Once, after a database restart, a worker's monitor
 * stopped checking for good: every query failed server selection while the database was back (a
 * fresh client connected at once: the monitor's check was waiting on a connection already closed).
 * Silence for MONITOR_STALL_MS is that state; `onStall` decides.
 */
export function watchMonitor(client: MongoClient, onStall: (silentMs: number) => void): NodeJS.Timeout {
  let lastReport: number | undefined; // a lazy client's monitor starts with its first operation
  const heard = () => (lastReport = Date.now());
  client.on('serverHeartbeatStarted', heard);
  client.on('serverHeartbeatSucceeded', heard);
  client.on('serverHeartbeatFailed', heard);
  const timer = setInterval(() => {
    const silentMs = lastReport === undefined ? 0 : Date.now() - lastReport;
    if (silentMs >= MONITOR_STALL_MS) onStall(silentMs);
  }, 5_000);
  timer.unref();
  return timer;
}

/**
 * The database is down, unreachable or momentarily busy (as opposed to refusing a query): worth a
 * 503 and a retry. FerretDB on SQLite answers a write that waited too long for the file lock with
 * `database is locked (SQLITE_BUSY)`.
 */
export function isDatabaseUnavailable(err: unknown): boolean {
  return (
    err instanceof MongoServerSelectionError ||
    err instanceof MongoNetworkError ||
    (err instanceof MongoServerError && /\(SQLITE_BUSY\)/.test(err.message))
  );
}

export async function pingDatabase(db: Db, timeoutMs = 2_000): Promise<void> {
  await db.command({ ping: 1 }, { timeoutMS: timeoutMs });
}

/** How many documents hold each value of `field` (for gauges such as issuances by status). */
export async function countByField<T extends Document>(
  collection: Collection<T>,
  field: string,
): Promise<{ value: string; count: number }[]> {
  const rows = await collection
    .aggregate<{ _id: unknown; count: number }>([{ $group: { _id: `$${field}`, count: { $sum: 1 } } }])
    .toArray();
  return rows.map((row) => ({ value: String(row._id), count: row.count }));
}
