import { runCak } from '../support/cli';
import { testAuditKeys } from '../support/temporal';
import { randomUUID } from 'node:crypto';
import type { Db } from 'mongodb';
import type { ApiHandle } from '../../src/api/server';
import { DEV_ADMIN_TOKEN, DEV_API_KEY, type Config } from '../../src/config';
import type { Curve } from '../../src/crypto/keys';
import { signPackageToken, verifyPackageToken } from '../../src/domain/authorization-url';
import { canonicalJson } from '../../src/domain/safe-json';
import { startEmulator, type EmulatorHandle } from '../../src/emulator/server';
import { VerifierSimulation } from '../../src/emulator/verifier-sim';
import { auditRepository, type AuditEvent } from '../../src/storage/audit';
import { eventually } from '../integration/callbacks-harness';
import { callbackConfig, openDb, runWorker, type RunningWorker, startCallbackApi } from '../support/system';

jest.setTimeout(180_000);

const PNG = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);

/**
 * The whole authorization story: issuance -> consent at the platform (emulator) -> signed callback
 * to us -> routed by schema -> audit -> the Verifier fetches its packages and decrypts the exact
 * original bytes; and every way of asking without (or beyond) an authorization is refused.
 */
describe('authorization callbacks end to end', () => {
  let config: Config;
  let api: ApiHandle;
  let emulator: EmulatorHandle;
  let worker: RunningWorker;
  let database: { db: Db; close(): Promise<void> };
  const run = randomUUID().slice(0, 8);
  const issuerDid = 'did:air:id:cak-dev-issuer';
  const userId = `user-${run}`;
  const curve: Curve = 'secp256r1';
  const fields = { fullName: `Ada ${run}`, documentNumber: `X-${run}` };
  const front = Buffer.concat([PNG, Buffer.from(`front-${run}-`.repeat(5_000))]); // ~75 KB
  let alice: VerifierSimulation;
  let mallory: VerifierSimulation;
  let cakPrivateKey: string;
  let platformEnv: NodeJS.ProcessEnv;

  beforeAll(async () => {
    config = await callbackConfig({ API_RATE_LIMIT_PER_MINUTE: '100000' });
    database = await openDb(config);
    api = await startCallbackApi(config);
    emulator = await startEmulator(config, { port: 0, jwksUrl: `${api.url}/.well-known/jwks.json` });
    worker = await runWorker({ ...config, AIR_PLATFORM_URL: emulator.url });
    platformEnv = { AIR_PLATFORM_URL: emulator.url };
    alice = new VerifierSimulation(`did:air:verifier-alice-${run}`, { emulatorUrl: emulator.url, apiUrl: api.url });
    mallory = new VerifierSimulation(`did:air:verifier-mallory-${run}`, { emulatorUrl: emulator.url, apiUrl: api.url });
    await alice.register(DEV_ADMIN_TOKEN);
    await mallory.register(DEV_ADMIN_TOKEN);
  });

  afterAll(async () => {
    await worker?.stop();
    await emulator?.close();
    await api?.close();
    await database?.db.dropDatabase().catch(() => undefined);
    await database?.close();
  });

  it('registers the callback URL with `cak platform register-callback` and reads it back with `cak platform status`', async () => {
    const refused = await runCak(
      ['platform', 'register-callback', '--url', 'http://issuer.example/v1/cak/callbacks'],
      platformEnv,
    );
    expect(refused.status).not.toBe(0);
    expect(refused.stderr).toMatch(/https/);

    const url = `${api.url}/v1/cak/callbacks`;
    const set = await runCak(['platform', 'register-callback', '--url', url], platformEnv);
    expect(set.stderr).toBe('');
    expect(set.status).toBe(0);
    const status = await runCak(['platform', 'status'], platformEnv);
    expect(status.status).toBe(0);
    expect(JSON.parse(status.stdout)).toMatchObject({ callbackUrl: url, callbackSignatureScheme: 'standard-webhooks' });
  });

  it('issuance -> consent -> callback -> grant -> audit -> the Verifier decrypts the exact original bytes', async () => {
    const issued = await fetch(`${api.url}/v1/issuances`, {
      method: 'POST',
      headers: { 'x-api-key': DEV_API_KEY, 'content-type': 'application/json', 'idempotency-key': `idem-${run}` },
      body: JSON.stringify({
        userId,
        issuerDid,
        credentialId: 'prog-kyc-basic',
        schemaId: 'kyc-basic',
        curve,
        credentialSubject: { kycLevel: 2 },
        fields,
        files: [{ kind: 'id-front', contentType: 'image/png', data: front.toString('base64') }],
      }),
    });
    expect(issued.status).toBe(202);
    const { issuanceId } = (await issued.json()) as { issuanceId: string };
    await eventually(
      async () => {
        const res = await fetch(`${api.url}/v1/issuances/${issuanceId}`, { headers: { 'x-api-key': DEV_API_KEY } });
        return ((await res.json()) as { status?: string }).status;
      },
      (s) => s === 'completed' || s === 'failed',
    ).then((s) => expect(s).toBe('completed'));

    // Before consent: no authorization, so no data.
    expect((await alice.requestData(userId, 'kyc-basic')).status).toBe(403);

    // The user consents in the SDK; the platform dispatches the signed callback (and two duplicates).
    const consent = await alice.obtainConsent({ issuerDid, userId, schemaId: 'kyc-basic', curve, duplicates: 2 });
    cakPrivateKey = consent.cakPrivateKey;
    const record = await alice.waitForDelivery(consent.callbackRecordId);
    expect(record).toMatchObject({ status: 1, duplicateStatuses: [expect.any(Number), expect.any(Number)] });
    // 200 (Temporal has the run) or 202 (a slow start went to the inbox): both acknowledge
    expect((record.duplicateStatuses as number[]).every((s) => s === 200 || s === 202)).toBe(true);

    const active = await eventually(
      async () => {
        const res = await fetch(`${api.url}/v1/admin/authorizations?state=active`, {
          headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}` },
        });
        return ((await res.json()) as { authorizations: { userId: string; deliveries: number; handlers: string[] }[] })
          .authorizations;
      },
      (list) => list.some((a) => a.userId === userId && a.deliveries === 3),
    );
    expect(active.find((a) => a.userId === userId)).toMatchObject({ deliveries: 3, handlers: ['grant-access'] });

    const plain = await alice.fetchAndDecrypt({ userId, schemaId: 'kyc-basic', cakPrivateKey, curve });
    expect([...plain.keys()].sort()).toEqual(['fields', 'id-front']);
    expect(plain.get('fields')!.equals(Buffer.from(canonicalJson(fields)))).toBe(true);
    expect(plain.get('id-front')!.equals(front)).toBe(true);

    const audit = auditRepository(database.db, testAuditKeys());
    // the audit step follows the grant: wait for it
    await eventually(
      () => audit.count({ type: 'authorization' }),
      (n) => n === 1,
    );
    expect(await audit.count({ type: 'verifier.manifest' })).toBe(1);
    expect(await audit.count({ type: 'verifier.package' })).toBe(2);
    expect(await audit.verifyChain()).toMatchObject({ ok: true });
  });

  it('refuses a Verifier without authorization, another schema, expired or tampered URLs, and bad tokens', async () => {
    const forbidden = async (res: Response, code: string) => {
      expect({ status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code }).toEqual({
        status: 403,
        code,
      });
    };
    await forbidden(await mallory.requestData(userId, 'kyc-basic'), 'AUTHORIZATION_REQUIRED');
    await forbidden(await alice.requestData(userId, 'proof-of-address'), 'AUTHORIZATION_REQUIRED');
    await forbidden(await alice.requestData(`${userId}-other`, 'kyc-basic'), 'AUTHORIZATION_REQUIRED');

    const manifest = (await (await alice.requestData(userId, 'kyc-basic')).json()) as { items: { url: string }[] };
    const [url, otherUrl] = manifest.items.map((i) => i.url) as [string, string];
    const token = url.split('/').pop()!;
    const check = verifyPackageToken(config.SIGNED_URL_SECRET, token);
    if (!check.ok) throw new Error('minted URL does not verify');

    const expired = signPackageToken(config.SIGNED_URL_SECRET, {
      ...check.claims,
      exp: Math.floor(Date.now() / 1000) - 1,
    });
    await forbidden(await fetch(`${api.url}/v1/verifier/packages/${expired}`), 'URL_EXPIRED');

    const [claims, mac] = token.split('.') as [string, string];
    const flipped = `${claims.slice(0, 10)}${claims[10] === 'A' ? 'B' : 'A'}${claims.slice(11)}.${mac}`;
    await forbidden(await fetch(`${api.url}/v1/verifier/packages/${flipped}`), 'URL_INVALID');
    const otherPid = JSON.parse(Buffer.from(otherUrl.split('/').pop()!.split('.')[0]!, 'base64url').toString()) as {
      pid: string;
    };
    const swapped = `${Buffer.from(JSON.stringify({ ...check.claims, pid: otherPid.pid })).toString('base64url')}.${mac}`;
    await forbidden(await fetch(`${api.url}/v1/verifier/packages/${swapped}`), 'URL_INVALID');
    const forged = signPackageToken('an-attacker-secret-of-at-least-32-chars!', check.claims);
    await forbidden(await fetch(`${api.url}/v1/verifier/packages/${forged}`), 'URL_INVALID');

    // Authentication: no token, a token for another audience, an unregistered key.
    expect((await fetch(`${api.url}/v1/verifier/data?userId=${userId}&schemaId=kyc-basic`)).status).toBe(401);
    expect(
      (await alice.requestData(userId, 'kyc-basic', await alice.accessToken({ audience: 'someone-else' }))).status,
    ).toBe(401);
    const impostor = new VerifierSimulation(alice.verifierDid, { emulatorUrl: emulator.url, apiUrl: api.url });
    expect((await impostor.requestData(userId, 'kyc-basic')).status).toBe(401);

    // The untouched URL still works until revocation.
    expect((await fetch(`${api.url}${url}`)).status).toBe(200);
  });

  it('after revocation: 403 for the data and for URLs handed out before it', async () => {
    const manifest = (await (await alice.requestData(userId, 'kyc-basic')).json()) as { items: { url: string }[] };
    const revoke = await fetch(`${api.url}/v1/admin/authorizations/revoke`, {
      method: 'POST',
      headers: { authorization: `Bearer ${DEV_ADMIN_TOKEN}`, 'content-type': 'application/json' },
      body: JSON.stringify({ userId, verifierDid: alice.verifierDid, schemaId: 'kyc-basic' }),
    });
    expect(revoke.status).toBe(200);
    expect((await alice.requestData(userId, 'kyc-basic')).status).toBe(403);
    for (const item of manifest.items) expect((await fetch(`${api.url}${item.url}`)).status).toBe(403);

    // A late redelivery of the same consent does not bring access back.
    const consent = await alice.obtainConsent({ issuerDid, userId, schemaId: 'kyc-basic', curve });
    await alice.waitForDelivery(consent.callbackRecordId);
    expect((await alice.requestData(userId, 'kyc-basic')).status).toBe(403);

    const audit = auditRepository(database.db, testAuditKeys());
    expect(await audit.count({ type: 'authorization.revoked' })).toBe(1);
    // Denials are audited in aggregate: per (verifierDid, reason, time bucket), with a count.
    const denied = await eventually(
      async () =>
        (
          await database.db
            .collection<AuditEvent>('audit_events')
            .find({ type: 'verifier.denied', 'data.verifierDid': alice.verifierDid })
            .toArray()
        ).reduce((sum, event) => sum + Number(event.data.count), 0),
      (count) => count >= 6,
    );
    expect(denied).toBeGreaterThanOrEqual(6);
    expect(await audit.verifyChain()).toMatchObject({ ok: true });
  });
});
