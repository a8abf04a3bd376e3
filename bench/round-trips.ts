import { MongoClient } from 'mongodb';
import { startApi } from '../src/api/server';
import { authorizationIdFor } from '../src/domain/callback';
import { issuanceWorkflowId } from '../src/domain/ids';
import globalSetup from '../test/support/global-setup';
import { commandsDuring, watchDatabaseCommands } from '../test/support/db-commands';
import { eventually } from '../test/support/eventually';
import { freePort } from '../test/support/ports';
import { uniqueId } from '../test/support/temporal';
import { API_KEY_HEADER } from '../test/e2e/issuance-harness';
import { startSystem } from '../test/support/system';
import { auditEventOf, postCallback } from '../test/integration/callbacks-harness';
import type { BenchResult } from './types';

/**
 * Database commands per unique callback, ack and run (verify -> route -> settle -> audit), counted at
 * the wire by driver command monitoring on the API's and the worker's clients, one callback at a
 * time. Not counted: the inbox relay's polls of `callback_inbox` (every interval, whatever arrives)
 * and the API's periodic gauges (hourly here). The issuance's count is in bench/issuance.ts.
 */

const CALLBACKS = 10;

export async function run(): Promise<BenchResult[]> {
  await globalSetup();
  watchDatabaseCommands();
  const system = await startSystem({ env: { LOG_LEVEL: 'silent', API_METRICS_REFRESH_SECONDS: '3600' } });
  const config = {
    ...system.config,
    API_PORT: await freePort(),
    API_METRICS_PORT: 0,
    API_METRICS_REFRESH_SECONDS: 3600,
  };
  const api = await startApi(config);
  const probe = await MongoClient.connect(config.MONGODB_URI); // no appName: not counted
  try {
    const db = probe.db(config.MONGODB_DB);
    // one user with data, consenting to a new Verifier each time (a new dedup key)
    const userId = uniqueId('rt-user');
    const issued = await fetch(`${system.apiUrl}/v1/issuances`, {
      method: 'POST',
      headers: { ...API_KEY_HEADER, 'content-type': 'application/json' },
      body: JSON.stringify({
        userId,
        issuerDid: 'did:air:id:cak-dev-issuer',
        credentialId: 'prog-kyc-basic',
        schemaId: 'kyc-basic',
        credentialSubject: { kycLevel: 1 },
        fields: { fullName: 'Round Trip' },
      }),
    });
    if (issued.status !== 202) throw new Error(`issuance answered ${issued.status}`);
    const { issuanceId } = (await issued.json()) as { issuanceId: string };
    await system.client.workflow.getHandle(issuanceWorkflowId(config.ID_HMAC_SECRET, issuanceId)).result();
    const one = async () => {
      const payload = { userId, verifierDid: `did:air:id:${uniqueId('rt-verifier')}`, schemaId: 'kyc-basic' };
      const res = await postCallback(api.url, payload);
      if (res.status !== 200) throw new Error(`callback answered ${res.status}`);
      const authorizationId = authorizationIdFor(config.ID_HMAC_SECRET, payload);
      await eventually(
        () => auditEventOf(db, authorizationId),
        (event) => event !== null,
      );
    };
    await one(); // warm-up: connections, the API's first gauges
    const seen = (
      await commandsDuring(async () => {
        for (let i = 0; i < CALLBACKS; i += 1) await one();
      })
    ).filter((c) => (c.app === 'cak-issuer-api' || c.app === 'cak-issuer-worker') && c.collection !== 'callback_inbox');
    const byApp = (app: string) => seen.filter((c) => c.app === app).length / CALLBACKS;
    return [
      {
        name: 'database commands per unique callback',
        detail: `${seen.length} commands for ${CALLBACKS} callbacks, one at a time: ack ${byApp('cak-issuer-api')}, run ${byApp('cak-issuer-worker')} (at the wire)`,
        ratio: seen.length / CALLBACKS,
        target: 6,
        kind: 'max',
      },
    ];
  } finally {
    await probe.close();
    await api.close();
    await system.close();
  }
}
