import { randomUUID } from 'node:crypto';
import { DEV_ADMIN_TOKEN, type Config } from '../../src/config';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/server';
import { VerifierSimulation } from '../../src/emulator/verifier-sim';
import { platformFromConfig } from '../../src/platform';
import { issuerSettingsClient } from '../../src/platform/issuer-settings';
import { eventually, seedRecord } from '../integration/callbacks-harness';
import { callbackConfig, startSystem, type System } from '../support/system';

jest.setTimeout(120_000);

/**
 * The other signature scheme, end to end: the emulator signs callbacks as a detached ES256 JWS
 * with its own key, the API verifies them against the emulator's published JWKS. This is the
 * switch docs/callbacks.md describes, made with settings only.
 */
describe('authorization callbacks signed with jws-es256', () => {
  let config: Config;
  let emulator: EmulatorHandle;
  let stack: System;
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
    stack = await startSystem({ config, emulator: false, sealLoop: true });
  });

  afterAll(async () => {
    await stack?.close();
    await emulator?.close();
  });

  it('delivers, verifies and grants, duplicates included', async () => {
    const settings = issuerSettingsClient({
      baseUrl: emulator.url,
      timeoutMs: 5_000,
      partnerTokens: platformFromConfig(config).partnerTokens,
    });
    await settings.setCallbackUrl(`${stack.api.url}/v1/cak/callbacks`);
    expect(await settings.status()).toMatchObject({ callbackSignatureScheme: 'jws-es256' });

    const verifier = new VerifierSimulation(`did:air:verifier-${run}`, {
      emulatorUrl: emulator.url,
      apiUrl: stack.api.url,
    });
    await verifier.register(DEV_ADMIN_TOKEN);
    const userId = `user-${run}`;
    await seedRecord(stack.db, { userId, schemaId: 'kyc-basic' });
    const consent = await verifier.obtainConsent({
      issuerDid: 'did:air:id:cak-dev-issuer',
      userId,
      schemaId: 'kyc-basic',
      curve: 'secp256r1',
      duplicates: 2,
    });
    const record = await verifier.waitForDelivery(consent.callbackRecordId);
    expect((record.attempts as { status?: number }[]).map((a) => a.status)).toEqual([200]);
    expect((record.duplicateStatuses as number[]).every((s) => s === 200 || s === 202)).toBe(true);
    await eventually(
      () => stack.db.collection('authorizations').findOne({ userId }),
      (doc) => doc?.state === 'active',
    );
  });
});
