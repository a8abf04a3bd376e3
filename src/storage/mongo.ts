import {
  MongoClient,
  MongoNetworkError,
  MongoServerSelectionError,
  type Collection,
  type Db,
  type Document,
} from 'mongodb';

export interface Database {
  client: MongoClient;
  db: Db;
  close(): Promise<void>;
}

/**
 * One MongoClient per process. Short server-selection timeout so a database outage surfaces as an
 * error quickly (activities retry it; the API reports it on /readyz) instead of hanging requests.
 */
export async function connectDatabase(uri: string, dbName: string): Promise<Database> {
  const client = new MongoClient(uri, {
    serverSelectionTimeoutMS: 5_000,
    connectTimeoutMS: 5_000,
    appName: 'cak-issuer',
  });
  await client.connect();
  return { client, db: client.db(dbName), close: () => client.close() };
}

/** The database is down or unreachable (as opposed to refusing a query): worth a 503 and a retry. */
export function isDatabaseUnavailable(err: unknown): boolean {
  return err instanceof MongoServerSelectionError || err instanceof MongoNetworkError;
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
