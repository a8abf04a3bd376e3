import { randomUUID } from 'node:crypto';
import type { Db } from 'mongodb';
import type { ApiHandle } from '../../src/api/server';
import { DEV_ADMIN_TOKEN, type Config } from '../../src/config';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/server';
import { VerifierSimulation } from '../../src/emulator/verifier-sim';
import { platformFromConfig } from '../../src/platform';
import { issuerSettingsClient } from '../../src/platform/issuer-settings';
import {
  callbackConfig,
  eventually,
  openDb,
  runWorker,
  seedRecord,
  startCallbackApi,
  type RunningWorker,
} from '../integration/callbacks-harness';

jest.setTimeout(120_000);

/**
 * The other signature scheme, end to end: the emulator signs callbacks as a detached ES256 JWS
 * with its own key, the API verifies them against the emulator's published JWKS. This is the
 * switch docs/callbacks.md describes, made with settings only.
 */
describe('authorization callbacks signed with jws-es256', () => {
  let config: Config;
  let api: ApiHandle;
  let emulator: EmulatorHandle;
  let worker: RunningWorker;
  let database: { db: Db; close(): Promise<void> };
  const run = randomUUID().slice(0, 8);

  beforeAll(async () => {
    const base = await callbackConfig({ CALLBACK_SIGNATURE_SCHEME: 'jws-es256' });
    // the emulator trusts our Partner JWKS (API port known in advance); we trust its callback JWKS
    emulator = await startEmulator(base, {
      port: 0,
      jwksUrl: `http://${base.API_HOST}:${base.API_PORT}/.well-known/jwks.json`,
    });
    config = {
      ...base,
      PLATFORM_JWKS_URL: `${emulator.url}/.well-known/callback-jwks.json`,
      AIR_PLATFORM_URL: emulator.url,
    };
    database = await openDb(config);
    api = await startCallbackApi(config);
    worker = await runWorker(config);
  });

  afterAll(async () => {
    await worker?.stop();
    await api?.close();
    await emulator?.close();
    await database?.db.dropDatabase().catch(() => undefined);
    await database?.close();
  });

  it('delivers, verifies and grants, duplicates included', async () => {
    const settings = issuerSettingsClient({
      baseUrl: emulator.url,
      timeoutMs: 5_000,
      partnerTokens: platformFromConfig(config).partnerTokens,
    });
    await settings.setCallbackUrl(`${api.url}/v1/cak/callbacks`);
    expect(await settings.status()).toMatchObject({ callbackSignatureScheme: 'jws-es256' });

    const verifier = new VerifierSimulation(`did:air:verifier-${run}`, { emulatorUrl: emulator.url, apiUrl: api.url });
    await verifier.register(DEV_ADMIN_TOKEN);
    const userId = `user-${run}`;
    await seedRecord(database.db, { userId, schemaId: 'kyc-basic' });
    const consent = await verifier.obtainConsent({
      issuerDid: `did:air:issuer-${run}`,
      userId,
      schemaId: 'kyc-basic',
      curve: 'secp256r1',
      duplicates: 2,
    });
    const record = await verifier.waitForDelivery(consent.callbackRecordId);
    expect((record.attempts as { status?: number }[]).map((a) => a.status)).toEqual([200]);
    expect((record.duplicateStatuses as number[]).every((s) => s === 200 || s === 202)).toBe(true);
    await eventually(
      () => database.db.collection('authorizations').findOne({ userId }),
      (doc) => doc?.state === 'active',
    );
  });
});
