import { MongoClient, type CommandStartedEvent } from 'mongodb';
import type { ApiHandle } from '../../src/api/server';
import { startApi } from '../../src/api/server';
import { authorizationIdFor } from '../../src/domain/callback';
import { issuanceWorkflowId } from '../../src/domain/ids';
import { API_KEY_HEADER, markedPng, startIssuanceSystem, type IssuanceSystem } from '../e2e/issuance-harness';
import { freePort } from '../support/ports';
import { uniqueId } from '../support/temporal';
import { auditEventOf, eventually, postCallback } from './callbacks-harness';

/**
 * Database round trips of the two data paths, counted at the wire: every command a MongoClient of
 * this process sends is seen (`monitorCommands`), and attributed by the client's `appName`:
 * - `api`: the API's client (the issuance harness's client, named so here, and the callback API's
 *   own, `cak-issuer-api`);
 * - `worker`: the worker's (`cak-issuer`, src/storage/mongo.ts).
 * Not counted: the test's own clients (no appName); driver handshakes and session housekeeping
 * (hello, isMaster, ping, endSessions, buildInfo); index creation (createIndexes, run at start);
 * the inbox relay's poll of `callback_inbox` (a `find` every interval, whatever arrives); and the
 * periodic work, which does not run inside the measured windows: the staging-sweep and audit-seal
 * schedules are not created by the in-process worker, and the callback API's gauges refresh hourly
 * here, their first refresh awaited before the window opens.
 * Counts are deterministic (no timings), so they are asserted.
 *
 * Before issue "Lean", counted the same way: the issuance 88 (API 27, worker 61: find 36, update 27,
 * delete 22, insert 2, aggregate 1), the unique callback 6 (16 when the relay's polls at this
 * harness's 100 ms interval are counted too, likely what the "about 18" included).
 */

type Listener = (app: string, event: CommandStartedEvent) => void;
let listener: Listener | undefined;

// Every MongoClient of this process monitors its commands from its first connection on (the API's
// and the worker's connect inside the system under test), each tagged with its appName.
const connect = MongoClient.prototype.connect; // eslint-disable-line @typescript-eslint/unbound-method
const monitored = new WeakSet<MongoClient>();
MongoClient.prototype.connect = function (this: MongoClient) {
  if (!monitored.has(this)) {
    monitored.add(this);
    (this as unknown as { monitorCommands: boolean }).monitorCommands = true; // the driver's setter, untyped
    const app = this.options.appName;
    this.on('commandStarted', (event) => {
      if (app) listener?.(app, event);
    });
  }
  return connect.call(this);
};

jest.setTimeout(180_000);

/** The API's last database gauges (src/api/metrics.ts, refreshed in order): present once its first refresh is done. */
const GAUGES = ['cak_audit_chain_length', 'cak_callback_inbox_pending'];
const IGNORED = new Set(['hello', 'ismaster', 'isMaster', 'ping', 'endSessions', 'buildInfo', 'createIndexes']);
const ROLE: Record<string, string> = { 'test-api': 'api', 'cak-issuer-api': 'api', 'cak-issuer': 'worker' };

interface Counted {
  role: string;
  name: string;
  collection: string;
}

function collectionOf(event: CommandStartedEvent): string {
  const target = event.command[event.commandName] as unknown;
  return typeof target === 'string' ? target : '';
}

/** Records the commands sent while `during` runs, and for half a second after (anything trailing). */
async function countCommands(during: () => Promise<void>): Promise<Counted[]> {
  const seen: Counted[] = [];
  listener = (app, event) => {
    const role = ROLE[app];
    if (!role || IGNORED.has(event.commandName)) return;
    const collection = collectionOf(event);
    if (event.commandName === 'find' && collection === 'callback_inbox') return; // the relay's poll
    seen.push({ role, name: event.commandName, collection });
  };
  try {
    await during();
    await new Promise((r) => setTimeout(r, 500)); // anything trailing the last step
  } finally {
    listener = undefined;
  }
  return seen;
}

function breakdown(label: string, seen: Counted[]): Record<string, number> {
  const byName: Record<string, number> = {};
  const detail: Record<string, number> = {};
  for (const c of seen) {
    byName[c.name] = (byName[c.name] ?? 0) + 1;
    const key = `${c.role} ${c.name} ${c.collection}`;
    detail[key] = (detail[key] ?? 0) + 1;
  }
  console.log(
    `${label}: ${seen.length} commands\n  by name: ${JSON.stringify(byName)}\n` +
      Object.entries(detail)
        .sort(([a], [b]) => a.localeCompare(b))
        .map(([k, n]) => `  ${n} x ${k}`)
        .join('\n'),
  );
  return byName;
}

describe('database round trips (counted at the wire)', () => {
  let system: IssuanceSystem;
  let api: ApiHandle | undefined;
  let probe: MongoClient; // the test's own reads: no appName, not counted

  beforeAll(async () => {
    system = await startIssuanceSystem(
      { STAGING_SWEEP_INTERVAL_SECONDS: '3600', API_METRICS_REFRESH_SECONDS: '3600' },
      { mongo: { appName: 'test-api' } },
    );
    probe = await MongoClient.connect(system.config.MONGODB_URI);
  });
  afterAll(async () => {
    await probe?.close();
    await api?.close();
    await system?.close();
  });

  const userId = uniqueId('rt-user');

  // Issue "Lean" targets 15 for the issuance; 31 is what the current layout reaches (88 before, see
  // docs/issuance.md "Database round trips" for what each one is and what the rest would take).
  const ISSUANCE_COMMANDS = 31;
  const CALLBACK_COMMANDS = 6;

  it(`one issuance of three items (fields and two 100 KB images) takes at most ${ISSUANCE_COMMANDS} commands, API and worker`, async () => {
    const json = {
      userId,
      issuerDid: 'did:air:id:cak-dev-issuer',
      credentialId: 'prog-kyc-basic',
      schemaId: 'kyc-basic',
      curve: 'secp256r1',
      credentialSubject: { kycLevel: 2 },
      fields: { fullName: 'Round Trip', documentNumber: 'RT-1' },
      // both above the harness's 64 KiB GridFS threshold (one chunk each); the fields and subject are inline
      files: [
        { kind: 'id-front', contentType: 'image/png', data: markedPng('front', 100 * 1024).toString('base64') },
        { kind: 'face-photo', contentType: 'image/png', data: markedPng('face', 100 * 1024).toString('base64') },
      ],
    };
    let issuanceId = '';
    const seen = await countCommands(async () => {
      const res = await fetch(`${system.apiUrl}/v1/issuances`, {
        method: 'POST',
        headers: { ...API_KEY_HEADER, 'content-type': 'application/json', 'idempotency-key': uniqueId('rt') },
        body: JSON.stringify(json),
      });
      expect(res.status).toBe(202);
      ({ issuanceId } = (await res.json()) as { issuanceId: string });
      const stored = (await system.client.workflow
        .getHandle(issuanceWorkflowId(system.config.ID_HMAC_SECRET, issuanceId))
        .result()) as { version: number };
      expect(stored.version).toBe(1);
    });
    breakdown('issuance (API intake + worker)', seen);
    const status = (await (
      await fetch(`${system.apiUrl}/v1/issuances/${issuanceId}`, { headers: API_KEY_HEADER })
    ).json()) as { status: string };
    expect(status.status).toBe('completed');
    expect(seen.length).toBeLessThanOrEqual(ISSUANCE_COMMANDS);
  });

  it(`a unique callback's path (ack and run) takes at most ${CALLBACK_COMMANDS} commands`, async () => {
    const config = {
      ...system.config,
      API_PORT: await freePort(),
      API_METRICS_PORT: 0,
      API_METRICS_REFRESH_SECONDS: 3600,
    };
    api = await startApi(config, { relay: { intervalMs: 100, maxBackoffMs: 500 } });
    // the API's start (index creation, the first refresh of its database gauges) is not the callback's
    await eventually(
      async () => (await fetch(`${api!.metricsUrl}/metrics`)).text(),
      (text) => GAUGES.every((name) => new RegExp(`^${name}(\\{[^}]*\\})? \\d+$`, 'm').test(text)),
    );
    await new Promise((r) => setTimeout(r, 500));
    const payload = { userId, verifierDid: 'did:air:id:rt-verifier', schemaId: 'kyc-basic' };
    const authorizationId = authorizationIdFor(config.ID_HMAC_SECRET, payload);
    const seen = await countCommands(async () => {
      const res = await postCallback(api!.url, payload);
      expect(res.status).toBe(200);
      expect(res.body.duplicate).toBe(false);
      // the run's last step appends the audit event, then it holds the key for the access window
      await eventually(
        () => auditEventOf(probe.db(system.config.MONGODB_DB), authorizationId),
        (e) => e !== null,
      );
    });
    breakdown('unique callback (ack + verify, route, audit)', seen);
    expect((await system.db.collection('authorizations').findOne({ _id: authorizationId as never }))?.state).toBe(
      'active',
    );
    expect(seen.length).toBeLessThanOrEqual(CALLBACK_COMMANDS);
  });
});
