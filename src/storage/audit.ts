import { createHmac } from 'node:crypto';
import type { Db } from 'mongodb';
import type { AuditEventTypeName } from '../domain/authorization';
import { canonicalJson } from '../domain/safe-json';
import { isDuplicateKey } from './duplicate-key';

/**
 * The append-only, keyed audit trail.
 *
 * Appending is one insert into `audit_pending`, keyed by the event's idempotency key (e.g.
 * `authorization:<authorizationId>`): it costs the same at 100 events as at 100,000, and
 * concurrent appenders never wait for or retry against each other.
 *
 * A single sequencer (`seal`, run by the audit-seal schedule) seals pending events into the chain
 * in batches: each sealed event in `audit_events` carries `seq` (0, 1, 2, ...), its predecessor's
 * link and its own link, an HMAC-SHA256 over (seq, prevHash, kid, key, type, at, data) under the
 * audit keyring (CAK_AUDIT_KEYS), whose key id the event names. The database never holds the keys,
 * so whoever can write to it but lacks them cannot forge a chain that verifies: editing an event
 * and recomputing every link with a plain hash still fails at the edited event.
 *
 * Every key the sequencer seals is first reserved in `audit_keys` (one insert per batch), so a
 * re-queued copy of an event sealed before is found by its duplicate reservation, not by reading
 * every candidate back.
 *
 * FerretDB has no transactions and applies an update as read-modify-write, so the sequencer's one
 * point of agreement is an insert: `audit_batches` has one document per batch, `_id` = its number,
 * so of two sealers that read the same tip only one can add the next batch. The batch names its
 * events; its events and the removal of their pending copies follow, and whoever finds a batch
 * whose events are missing (a crash in between) completes it from the pending copies. `audit_tip`
 * is only a hint of the last batch, repaired by walking forward by `_id`.
 */

export type AuditData = Record<string, string | number | boolean | null>;

/** The audit keyring, as the composition root parses it (a structural subset of crypto's Keyring). */
export interface AuditKeys {
  activeKeyId: string;
  keys: ReadonlyMap<string, Uint8Array>;
}

interface PendingAuditEvent {
  _id: string;
  type: AuditEventTypeName;
  /** ISO-8601, part of the linked content */
  at: string;
  data: AuditData;
}

export interface AuditEvent extends PendingAuditEvent {
  seq: number;
  prevHash: string;
  /** HMAC-SHA256 (hex) under the audit key `kid` */
  hash: string;
  kid: string;
}

interface BatchDoc {
  /** `batch:<number>`: FerretDB finds a document by a string `_id` from its index, a number it scans for */
  _id: string;
  number: number;
  firstSeq: number;
  prevHash: string;
  lastHash: string;
  kid: string;
  /** the event keys in chain order */
  keys: string[];
  sealedAt: Date;
}

interface TipDoc {
  _id: 'tip';
  batch: number;
  seq: number;
  hash: string;
}

export const GENESIS_HASH = '0'.repeat(64);
const GENESIS_TIP = { batch: -1, seq: -1, hash: GENESIS_HASH };
const batchId = (n: number) => `batch:${n}`;

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

/** Links pending events after the tip, in order, under `kid`. Pure. */
export function linkEvents(
  keys: AuditKeys,
  kid: string,
  tip: { seq: number; hash: string },
  pending: readonly PendingAuditEvent[],
): AuditEvent[] {
  let prevHash = tip.hash;
  return pending.map((event, i) => {
    const unlinked = {
      _id: event._id,
      type: event.type,
      at: event.at,
      data: event.data,
      seq: tip.seq + 1 + i,
      prevHash,
      kid,
    };
    const hash = auditHash(keys, unlinked);
    if (hash === undefined) throw new Error(`audit key "${kid}" is not in the keyring`);
    prevHash = hash;
    return { ...unlinked, hash };
  });
}

type ChainBreak = { seq: number; eventId: string; reason: string };
type ChainReport =
  | { ok: true; events: number; tipHash: string; unsealed: number }
  | ({ ok: false; events: number; unsealed: number } & ChainBreak);

const ignoreDuplicates = (err: unknown) => {
  const writeErrors = (err as { writeErrors?: unknown[] }).writeErrors;
  const onlyDuplicates = !!writeErrors?.length && writeErrors.every((e) => isDuplicateKey(e));
  if (!isDuplicateKey(err) && !onlyDuplicates) throw err;
};

export function auditRepository(db: Db, keys: AuditKeys) {
  const events = db.collection<AuditEvent>('audit_events');
  const pending = db.collection<PendingAuditEvent>('audit_pending');
  const batches = db.collection<BatchDoc>('audit_batches');
  const tips = db.collection<TipDoc>('audit_tip');
  const reservations = db.collection<{ _id: string }>('audit_keys');

  /**
   * Which of these keys are sealed already: point reads, in parallel. FerretDB answers a filter on
   * `_id` alone from its index but scans the collection for anything else (`$in` included), and the
   * chain grows without bound; so this runs only for the few keys a reservation flagged.
   */
  async function sealedAmong(ids: readonly string[]): Promise<Set<string>> {
    const found = await Promise.all(ids.map((_id) => events.findOne({ _id }, { projection: { _id: 1 } })));
    return new Set(found.filter((e) => e !== null).map((e) => e._id));
  }

  /** Reserves the keys (one insert); returns those reserved before (sealed, or left by a sealer that stopped). */
  async function reserve(ids: readonly string[]): Promise<string[]> {
    try {
      await reservations.insertMany(
        ids.map((_id) => ({ _id })),
        { ordered: false },
      );
      return [];
    } catch (err) {
      ignoreDuplicates(err);
      const taken = (err as { writeErrors?: { index: number }[] }).writeErrors ?? [];
      return taken.map((e) => ids[e.index]!);
    }
  }

  /** Writes a batch's events (idempotent) and drops their pending copies. */
  async function complete(batch: BatchDoc, sealed?: AuditEvent[]): Promise<void> {
    let linked = sealed;
    if (!linked) {
      // a sealer stopped between the batch and its events: relink them from their pending copies
      const have = await sealedAmong(batch.keys);
      if (have.size < batch.keys.length) {
        // pending is small: a scan of it is cheap
        const copies = new Map((await pending.find({ _id: { $in: batch.keys } }).toArray()).map((p) => [p._id, p]));
        const ordered = batch.keys.map((key) => copies.get(key));
        if (ordered.some((p) => p === undefined)) {
          // the sealer that wrote the batch finished it meanwhile (events written, copies dropped)
          if ((await sealedAmong(batch.keys)).size === batch.keys.length) return;
          throw new Error(`${batch._id}: events are missing`);
        }
        linked = linkEvents(
          keys,
          batch.kid,
          { seq: batch.firstSeq - 1, hash: batch.prevHash },
          ordered as PendingAuditEvent[],
        );
      }
    }
    if (linked && linked.length > 0) await events.insertMany(linked, { ordered: false }).catch(ignoreDuplicates);
    await pending.deleteMany({ _id: { $in: batch.keys } });
  }

  /** The last batch: the hint, then forward by `_id`, completing any batch a crash left behind. */
  async function readTip(): Promise<{ batch: number; seq: number; hash: string }> {
    const hint = await tips.findOne({ _id: 'tip' });
    let tip = hint ? { batch: hint.batch, seq: hint.seq, hash: hint.hash } : GENESIS_TIP;
    for (;;) {
      const next = await batches.findOne({ _id: batchId(tip.batch + 1) });
      if (!next) break;
      await complete(next);
      tip = { batch: next.number, seq: next.firstSeq + next.keys.length - 1, hash: next.lastHash };
    }
    if (!hint || hint.batch < tip.batch) await advanceTip(tip);
    return tip;
  }

  async function advanceTip(to: { batch: number; seq: number; hash: string }): Promise<void> {
    try {
      // forward only; when the tip is already there the upsert collides on `_id` and nothing changes
      await tips.updateOne({ _id: 'tip', batch: { $lt: to.batch } }, { $set: to }, { upsert: true });
    } catch (err) {
      if (!isDuplicateKey(err)) throw err;
    }
  }

  return {
    events,
    pending,

    /** One insert: the event waits in `audit_pending` until the sequencer seals it. Idempotent on `key`. */
    async append(key: string, type: AuditEventTypeName, data: AuditData, now = new Date()): Promise<{ _id: string }> {
      try {
        await pending.insertOne({ _id: key, type, at: now.toISOString(), data });
      } catch (err) {
        if (!isDuplicateKey(err)) throw err; // appended before (and perhaps sealed since)
      }
      return { _id: key };
    },

    /**
     * Seals up to `max` pending events as the next batch; returns how many it sealed (0: nothing
     * pending, or another sealer took the batch number first).
     */
    async seal(max = 500): Promise<number> {
      const tip = await readTip();
      const candidates = await pending.find({}).sort({ at: 1, _id: 1 }).limit(max).toArray();
      if (candidates.length === 0) return 0;
      // A retried append may re-queue an event sealed before. Reserving every key with one insert
      // finds those without reading each: only a key reserved already is looked up.
      const ids = candidates.map((c) => c._id);
      const reservedBefore = await reserve(ids);
      const sealedBefore = await sealedAmong(reservedBefore);
      if (sealedBefore.size > 0) await pending.deleteMany({ _id: { $in: [...sealedBefore] } });
      const fresh = candidates.filter((c) => !sealedBefore.has(c._id));
      if (fresh.length === 0) return 0;
      const linked = linkEvents(keys, keys.activeKeyId, tip, fresh);
      const batch: BatchDoc = {
        _id: batchId(tip.batch + 1),
        number: tip.batch + 1,
        firstSeq: tip.seq + 1,
        prevHash: tip.hash,
        lastHash: linked[linked.length - 1]!.hash,
        kid: keys.activeKeyId,
        keys: linked.map((e) => e._id),
        sealedAt: new Date(),
      };
      try {
        await batches.insertOne(batch);
      } catch (err) {
        if (isDuplicateKey(err)) return 0; // another sealer added this batch; the next call builds on it
        throw err;
      }
      await complete(batch, linked);
      await advanceTip({ batch: batch.number, seq: linked[linked.length - 1]!.seq, hash: batch.lastHash });
      return linked.length;
    },

    /** Seals until nothing is pending (tests, the CLI); returns how many it sealed. */
    async sealAll(max = 500): Promise<number> {
      let total = 0;
      for (let n = await this.seal(max); n > 0; n = await this.seal(max)) total += n;
      return total;
    },

    /** Sealed events in the chain. */
    length: async () => (await readTip()).seq + 1,

    /** The event, sealed or still pending. */
    get: async (key: string): Promise<PendingAuditEvent | AuditEvent | null> =>
      (await events.findOne({ _id: key })) ?? (await pending.findOne({ _id: key })),

    /** Walks the sealed chain from seq 0, reports the first broken link and how many events wait to be sealed. */
    async verifyChain(): Promise<ChainReport> {
      const unsealed = await pending.countDocuments({});
      let expectedSeq = 0;
      let prevHash = GENESIS_HASH;
      for await (const event of events.find({}).sort({ seq: 1 })) {
        const at = { seq: event.seq, eventId: event._id, unsealed };
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
      return { ok: true, events: expectedSeq, tipHash: prevHash, unsealed };
    },

    /**
     * Events of a type, sealed or pending, each once. The sequencer inserts an event into the chain
     * before it deletes the pending copy, so two plain counts can see it in both places: the
     * pending keys read first are left out of the chain's count.
     */
    async count(filter: { type?: AuditEventTypeName } = {}): Promise<number> {
      const waiting = await pending.find(filter, { projection: { _id: 1 } }).toArray();
      const sealed = await events.countDocuments({ ...filter, _id: { $nin: waiting.map((e) => e._id) } });
      return waiting.length + sealed;
    },
  };
}

export type AuditRepository = ReturnType<typeof auditRepository>;
