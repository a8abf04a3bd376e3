import type { Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { BSON, type Db } from 'mongodb';

/**
 * Plaintext scans shared by the e2e tests and the soak (`scripts/soak.ts`): look for distinctive
 * markers, raw or base64-encoded, in every document of a database (GridFS included) and in the full
 * Temporal history of workflow runs.
 */

export const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/** A PNG-signed file of `size` bytes with a distinctive marker repeated through it. */
export function markedPng(marker: string, size: number): Buffer {
  const body = Buffer.alloc(size - PNG_SIGNATURE.length);
  const m = Buffer.from(marker);
  for (let i = 0; i + m.length <= body.length; i += m.length * 7) m.copy(body, i);
  return Buffer.concat([PNG_SIGNATURE, body]);
}

/** The byte patterns a marker could hide as: itself, and its base64 at each of the three alignments. */
function patternsOf(marker: string): Buffer[] {
  const raw = Buffer.from(marker);
  const patterns = [raw];
  for (let shift = 0; shift < 3; shift += 1) {
    const b64 = Buffer.concat([Buffer.alloc(shift, 0x20), raw]).toString('base64');
    patterns.push(Buffer.from(b64.slice(Math.ceil((shift * 4) / 3) + 1, -4)));
  }
  return patterns;
}

export function findMarkers(bytes: Buffer, markers: string[]): string[] {
  return markers.filter((m) => patternsOf(m).some((p) => p.length >= 8 && bytes.includes(p)));
}

/** Every document of every collection (GridFS buckets included), as BSON bytes. */
export async function scanDatabase(db: Db, markers: string[]): Promise<string[]> {
  const hits: string[] = [];
  for (const { name } of await db.listCollections({}, { nameOnly: true }).toArray()) {
    for await (const doc of db.collection(name).find({})) {
      for (const m of findMarkers(Buffer.from(BSON.serialize(doc)), markers)) hits.push(`${name}: ${m}`);
    }
  }
  return hits;
}

/** The full history of every run a visibility query lists ('' lists every run), fetched from the server. */
export async function scanHistoriesWhere(
  client: Client,
  query: string,
  markers: string[],
): Promise<{ hits: string[]; runs: number }> {
  const hits: string[] = [];
  let runs = 0;
  for await (const wf of client.workflow.list(query ? { query } : {})) {
    runs += 1;
    const history = await client.workflow.getHandle(wf.workflowId, wf.runId).fetchHistory();
    const bytes = Buffer.from(temporal.api.history.v1.History.encode(history).finish());
    for (const m of findMarkers(bytes, markers)) hits.push(`${wf.workflowId}: ${m}`);
  }
  return { hits, runs };
}

/** The full history of every run with one of these CakUserId values, fetched from the server. */
export async function scanHistories(
  client: Client,
  userIds: string[],
  markers: string[],
): Promise<{ hits: string[]; runs: number }> {
  const hits: string[] = [];
  let runs = 0;
  for (const userId of userIds) {
    const found = await scanHistoriesWhere(client, `CakUserId = "${userId}"`, markers);
    hits.push(...found.hits);
    runs += found.runs;
  }
  return { hits, runs };
}

export async function countWorkflows(client: Client, userId: string): Promise<number> {
  const { count } = await client.workflow.count(`CakUserId = "${userId}"`);
  return count;
}
