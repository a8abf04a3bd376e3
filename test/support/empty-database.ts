import type { Client } from '@temporalio/client';
import type { Db } from 'mongodb';

/**
 * Stand-ins for the database and Temporal in unit tests of the whole app: the database answers
 * every read with nothing (no such document) and refuses every write; Temporal refuses every call.
 * Each write or Temporal call is recorded, so a test can say that nothing would have been recorded,
 * staged or started. A request that reaches a write gets a 5xx, which no refusal table expects.
 */
export interface EmptyDatabase {
  db: Db;
  temporal: Client;
  /** `collection.method` of every write attempted, `temporal.<path>` of every Temporal call */
  writes: string[];
  /** `collection.method` of every read */
  reads: string[];
}

const READS = new Set(['findOne', 'find', 'aggregate', 'countDocuments', 'estimatedDocumentCount', 'distinct']);

function emptyCursor(): unknown {
  const cursor: Record<string | symbol, unknown> = {
    toArray: () => Promise.resolve([]),
    next: () => Promise.resolve(null),
    tryNext: () => Promise.resolve(null),
    hasNext: () => Promise.resolve(false),
    close: () => Promise.resolve(),
    [Symbol.asyncIterator]: async function* () {
      /* nothing */
    },
  };
  for (const chain of ['sort', 'limit', 'skip', 'project', 'batchSize', 'maxTimeMS', 'hint', 'comment'])
    cursor[chain] = () => cursor;
  return cursor;
}

function readAnswer(method: string): unknown {
  switch (method) {
    case 'findOne':
      return Promise.resolve(null);
    case 'countDocuments':
    case 'estimatedDocumentCount':
      return Promise.resolve(0);
    case 'distinct':
      return Promise.resolve([]);
    default:
      return emptyCursor();
  }
}

export function emptyDatabase(): EmptyDatabase {
  const writes: string[] = [];
  const reads: string[] = [];
  const refuse = (what: string) => {
    writes.push(what);
    return Promise.reject(new Error(`${what}: no database in a unit test`));
  };
  const collection = (name: string) =>
    new Proxy(
      {},
      {
        get(_target, prop) {
          if (prop === 'collectionName') return name;
          if (typeof prop !== 'string' || prop === 'then') return undefined;
          if (READS.has(prop))
            return () => {
              reads.push(`${name}.${prop}`);
              return readAnswer(prop);
            };
          return () => refuse(`${name}.${prop}`);
        },
      },
    );
  const db = new Proxy(
    {},
    {
      get(_target, prop) {
        if (prop === 'collection') return collection;
        if (prop === 'databaseName') return 'unit';
        if (prop === 'command' || prop === 'dropDatabase' || prop === 'createCollection')
          return () => refuse(`db.${prop}`);
        return undefined;
      },
    },
  ) as Db;
  const refusing = (path: string): unknown =>
    new Proxy(() => undefined, {
      get(_target, prop) {
        if (typeof prop !== 'string' || prop === 'then') return undefined;
        return refusing(`${path}.${prop}`);
      },
      apply: () => refuse(path),
    });
  return { db, temporal: refusing('temporal') as Client, writes, reads };
}
