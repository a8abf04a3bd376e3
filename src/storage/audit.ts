import { createHmac } from 'node:crypto';
import type { Db } from 'mongodb';
import type { AuditEventTypeName } from '../domain/authorization';
import { canonicalJson } from '../domain/safe-json';
import { isDuplicateKey } from './duplicate-key';

/**
 * The append-only, hash-chained audit trail (`audit_events`). Each event carries `seq` (0, 1, 2,
 * ...), the link of its predecessor and its own link: an HMAC-SHA256 over (seq, prevHash, key,
 * type, at, data) under the audit keyring (CAK_AUDIT_KEYS), whose key id the event names. The
 * database never holds the keys, so whoever can write to it but lacks them cannot forge a chain
 * that verifies: editing an event and recomputing every link with a plain hash still fails at
 * the edited event.
 *
 * FerretDB has no transactions, so appends are made safe by unique indexes instead:
 * - `_id` is the event's idempotency key (e.g. `authorization:<authorizationId>`): a retried
 *   activity or a second run finds its event already there and appends nothing;
 * - `seq` is unique: of two appenders that read the same tip, one insert wins and the other gets
 *   E11000 and retries on the new tip, so the chain never forks.
 * A tip document (`audit_tip`) makes "read the tip" one point read; it is only a hint, advanced by
 * compare-and-set after each insert, and repaired by whoever finds it behind (a crash between the
 * insert and the tip update).
 */

export type AuditData = Record<string, string | number | boolean | null>;

/** The audit keyring, as the composition root parses it (a structural subset of crypto's Keyring). */
export interface AuditKeys {
  activeKeyId: string;
  keys: ReadonlyMap<string, Uint8Array>;
}

export interface AuditEvent {
  _id: string;
  seq: number;
  prevHash: string;
  /** HMAC-SHA256 (hex) under the audit key `kid` */
  hash: string;
  kid: string;
  type: AuditEventTypeName;
  /** ISO-8601, part of the hashed content */
  at: string;
  data: AuditData;
}

interface TipDoc {
  _id: 'tip';
  seq: number;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);
const MAX_APPEND_ATTEMPTS = 1_000;

/** The event's link, or undefined when its key id is not in the keyring. */
export function auditHash(keys: AuditKeys, event: Omit<AuditEvent, 'hash'>): string | undefined {
  const key = keys.keys.get(event.kid);
  if (!key) return undefined;
  const content = canonicalJson({
    seq: event.seq,
    prevHash: event.prevHash,
    kid: event.kid,
    key: event._id,
    type: event.type,
    at: event.at,
    data: event.data,
  });
  return createHmac('sha256', key).update(content).digest('hex');
}

export type ChainBreak = { seq: number; eventId: string; reason: string };
export type ChainReport = { ok: true; events: number; tipHash: string } | ({ ok: false; events: number } & ChainBreak);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `seq` is unique: of two appenders that read the same tip, one insert wins. */
export function ensureAuditIndexes(db: Db): Promise<string> {
  return db.collection<AuditEvent>('audit_events').createIndex({ seq: 1 }, { unique: true, name: 'seq_unique' });
}

export function auditRepository(db: Db, keys: AuditKeys) {
  const events = db.collection<AuditEvent>('audit_events');
  const tips = db.collection<TipDoc>('audit_tip');
  let indexes: Promise<unknown> | undefined;
  const ensureIndexes = () =>
    (indexes ??= ensureAuditIndexes(db).catch((err) => {
      indexes = undefined;
      throw err;
    }));

  async function readTip(): Promise<{ seq: number; hash: string }> {
    const tip = await tips.findOne({ _id: 'tip' });
    let seq = tip?.seq ?? -1;
    let hash = tip?.hash ?? GENESIS_HASH;
    // The hint may lag (crash after insert, before the tip update): walk forward to the real tip.
    for (;;) {
      const next = await events.findOne({ seq: seq + 1 }, { projection: { seq: 1, hash: 1 } });
      if (!next) return { seq, hash };
      seq = next.seq;
      hash = next.hash;
    }
  }

  async function advanceTip(to: { seq: number; hash: string }): Promise<void> {
    try {
      // Compare-and-set: only ever forward. When the tip is already at or past `to`, the filter
      // misses, the upsert tries to insert a second `tip` and E11000 says "nothing to do".
      await tips.updateOne(
        { _id: 'tip', seq: { $lt: to.seq } },
        { $set: { seq: to.seq, hash: to.hash } },
        { upsert: true },
      );
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  return {
    events,
    ensureIndexes,

    /** Events in the chain (the tip's seq + 1). */
    length: async () => (await readTip()).seq + 1,

    /** Appends the event unless one with this key exists; returns the stored event either way. */
    async append(key: string, type: AuditEventTypeName, data: AuditData, now = new Date()): Promise<AuditEvent> {
      await ensureIndexes();
      for (let attempt = 0; attempt < MAX_APPEND_ATTEMPTS; attempt += 1) {
        const existing = await events.findOne({ _id: key });
        if (existing) return existing;
        const tip = await readTip();
        const base = {
          _id: key,
          seq: tip.seq + 1,
          prevHash: tip.hash,
          kid: keys.activeKeyId,
          type,
          at: now.toISOString(),
          data,
        };
        const event: AuditEvent = { ...base, hash: auditHash(keys, base)! };
        try {
          await events.insertOne(event);
          await advanceTip(event);
          return event;
        } catch (err) {
          if (!isDuplicateKey(err)) throw err;
          // Lost the race for this seq (or for the key): back off a little, with jitter, and retry.
          await sleep(Math.random() * Math.min(50, 2 + attempt * 2));
        }
      }
      throw new Error(`audit append for ${key} did not win a slot after ${MAX_APPEND_ATTEMPTS} attempts`);
    },

    get: (key: string) => events.findOne({ _id: key }),

    /** Walks the chain from seq 0 and reports the first broken link. */
    async verifyChain(): Promise<ChainReport> {
      let expectedSeq = 0;
      let prevHash = GENESIS_HASH;
      for await (const event of events.find({}).sort({ seq: 1 })) {
        const at = { seq: event.seq, eventId: event._id };
        if (event.seq !== expectedSeq)
          return { ok: false, events: expectedSeq, ...at, reason: `expected seq ${expectedSeq}` };
        if (event.prevHash !== prevHash) {
          return { ok: false, events: expectedSeq, ...at, reason: 'prevHash does not match the previous event' };
        }
        const { hash, ...rest } = event;
        const expected = auditHash(keys, rest);
        if (expected === undefined)
          return {
            ok: false,
            events: expectedSeq,
            ...at,
            reason: `audit key "${String(event.kid)}" is not in the keyring`,
          };
        if (expected !== hash)
          return { ok: false, events: expectedSeq, ...at, reason: 'content does not match its keyed hash' };
        prevHash = hash;
        expectedSeq += 1;
      }
      return { ok: true, events: expectedSeq, tipHash: prevHash };
    },

    count: (filter: { type?: AuditEventTypeName } = {}) => events.countDocuments(filter),
  };
}

export type AuditRepository = ReturnType<typeof auditRepository>;
