import { createPrivateKey } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEV_API_KEY, DEV_ISSUER_DID, type Config } from '../../src/config';
import { authorizationIdFor } from '../../src/domain/callback';
import { canonicalJson } from '../../src/domain/safe-json';
import { EXIT } from '../../src/cli/exit-codes';
import { runCak } from '../support/cli';
import { markedPng } from '../support/scans';
import { uniqueId } from '../support/temporal';
import { eventually } from './callbacks-harness';
import { callbackConfig, startSystem, type System } from '../support/system';

jest.setTimeout(300_000);

const JPEG = Buffer.from([0xff, 0xd8, 0xff, 0xe0]);

interface User {
  userId: string;
  schemaId: string;
  credentialId: string;
  fields: Record<string, string>;
  files: Record<string, Buffer>;
  types: Record<string, string>;
  issuanceId: string;
}
const UI = 'http://temporal-ui.example:8233/';

/**
 * `cak verifier ...` and the list / status commands end to end against the real API, worker,
 * emulator, Temporal and database, every command run as a user would from a folder outside the
 * project with relative paths: issue data, register the Verifier's key, be refused without consent,
 * consent in the emulator, fetch and decrypt the exact issued bytes; then the filters, `--json` and
 * the Web UI link.
 */
describe('cak verifier fetch, list filters and issuance status against the real system', () => {
  let config: Config;
  let stack: System;
  let dir: string;
  const run = uniqueId('run').slice(4, 12);
  const verifierDid = `did:air:id:cli-verifier-${run}`;
  const alice: User = {
    userId: `user-a-${run}`,
    schemaId: 'kyc-basic',
    credentialId: 'prog-kyc-basic',
    fields: { fullName: `Ada ${run}`, dateOfBirth: '1990-01-01' },
    files: {
      'id-front': markedPng(`front-${run}`, 90 * 1024),
      'face-photo': Buffer.concat([JPEG, Buffer.from(`face-${run}-`.repeat(500))]),
    },
    types: { 'id-front': 'image/png', 'face-photo': 'image/jpeg' },
    issuanceId: '',
  };
  const bob: User = {
    userId: `user-b-${run}`,
    schemaId: 'proof-of-address',
    credentialId: 'prog-proof-of-address',
    fields: { address: `1 Main St ${run}` },
    files: {},
    types: {},
    issuanceId: '',
  };

  const env = () => ({
    MONGODB_URI: config.MONGODB_URI,
    MONGODB_DB: config.MONGODB_DB,
    TEMPORAL_ADDRESS: config.TEMPORAL_ADDRESS,
    TEMPORAL_NAMESPACE: config.TEMPORAL_NAMESPACE,
    TEMPORAL_UI_URL: UI,
    API_HOST: '127.0.0.1',
    API_PORT: String(config.API_PORT),
  });
  /** `cak` from the test's folder (outside the project), relative paths and all. */
  const cak = (args: string[]) => runCak(args, env(), { cwd: dir });
  const json = <T>(out: { stdout: string }) => JSON.parse(out.stdout) as T;

  async function issue(user: User): Promise<string> {
    const res = await fetch(`${stack.api.url}/v1/issuances`, {
      method: 'POST',
      headers: { 'x-api-key': DEV_API_KEY, 'content-type': 'application/json', 'idempotency-key': uniqueId('idem') },
      body: JSON.stringify({
        userId: user.userId,
        issuerDid: DEV_ISSUER_DID,
        credentialId: user.credentialId,
        schemaId: user.schemaId,
        curve: 'secp256r1',
        credentialSubject: { kycLevel: 1 },
        fields: user.fields,
        files: Object.entries(user.files).map(([kind, data]) => ({
          kind,
          contentType: user.types[kind],
          data: data.toString('base64'),
        })),
      }),
    });
    expect(res.status).toBe(202);
    const { issuanceId } = (await res.json()) as { issuanceId: string };
    const status = await eventually(
      async () =>
        (
          (await (
            await fetch(`${stack.api.url}/v1/issuances/${issuanceId}`, { headers: { 'x-api-key': DEV_API_KEY } })
          ).json()) as { status?: string }
        ).status,
      (s) => s === 'completed' || s === 'failed',
    );
    expect(status).toBe('completed');
    return issuanceId;
  }

  /** The user consents in the emulator; the answer (with cakPrivateKey) is saved as the Verifier would. */
  async function consent(user: User, file: string): Promise<void> {
    const post = async (path: string, body: unknown) => {
      const res = await fetch(`${stack.emulator.url}${path}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(body),
      });
      expect(res.status).toBe(200);
      return (await res.json()) as Record<string, unknown>;
    };
    const { callbackRecordId } = await post('/verifier/verify/initialize', { issuerDid: DEV_ISSUER_DID });
    const answer = await post('/emulator/verifier/consent', {
      callbackRecordId,
      userId: user.userId,
      verifierDid,
      schemaId: user.schemaId,
      curve: 'secp256r1',
    });
    writeFileSync(join(dir, file), JSON.stringify(answer));
    const id = authorizationIdFor(config.ID_HMAC_SECRET, { userId: user.userId, verifierDid, schemaId: user.schemaId });
    await eventually(
      () => stack.db.collection<{ _id: string; state: string }>('authorizations').findOne({ _id: id }),
      (doc) => doc?.state === 'active',
    );
  }

  const fetchArgs = (user: User, out: string, key = 'verifier.jwk', cakKey = 'cak-alice.json') => [
    'verifier',
    'fetch',
    '--verifier-did',
    verifierDid,
    '--verifier-key',
    key,
    '--user',
    user.userId,
    '--schema',
    user.schemaId,
    '--cak-key',
    cakKey,
    '--out',
    out,
  ];

  function expectIssuedBytes(user: User, folder: string): void {
    const names = readdirSync(join(dir, folder)).sort();
    const extension: Record<string, string> = { 'image/png': 'png', 'image/jpeg': 'jpg' };
    expect(names).toEqual(
      ['fields.json', ...Object.keys(user.files).map((kind) => `${kind}.${extension[user.types[kind]!]}`)].sort(),
    );
    expect(readFileSync(join(dir, folder, 'fields.json'))).toEqual(Buffer.from(canonicalJson(user.fields)));
    for (const [kind, bytes] of Object.entries(user.files)) {
      expect(readFileSync(join(dir, folder, `${kind}.${extension[user.types[kind]!]}`)).equals(bytes)).toBe(true);
    }
  }

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cak-verifier-'));
    config = await callbackConfig({ API_RATE_LIMIT_PER_MINUTE: '100000' });
    stack = await startSystem({ config, sealLoop: true, registerCallbackUrl: true });
    alice.issuanceId = await issue(alice);
    bob.issuanceId = await issue(bob);
  });

  afterAll(async () => {
    await stack?.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a key from `verifier keygen`, registered by `verifier register-key`; without consent fetch exits 4 with 403 AUTHORIZATION_REQUIRED', async () => {
    const made = await cak(['verifier', 'keygen', '--out', 'verifier.jwk']);
    expect(made.status).toBe(EXIT.OK);
    const jwk = JSON.parse(readFileSync(join(dir, 'verifier.jwk'), 'utf8')) as Record<string, string>;
    expect(json<Record<string, string>>(made)).toEqual({ kty: 'EC', crv: 'P-256', x: jwk.x, y: jwk.y, kid: jwk.kid });
    expect((await cak(['verifier', 'keygen', '--out', 'verifier.jwk'])).status).toBe(EXIT.USAGE); // never overwrites

    const registered = await cak([
      'verifier',
      'register-key',
      '--verifier-did',
      verifierDid,
      '--verifier-key',
      'verifier.jwk',
    ]);
    expect(registered).toMatchObject({ status: EXIT.OK, stdout: `registered key ${jwk.kid} for ${verifierDid}\n` });
    const doc = await stack.db
      .collection<{ _id: string; keys: { kid: string; x: string }[] }>('verifiers')
      .findOne({ _id: verifierDid });
    expect(doc?.keys).toEqual([expect.objectContaining({ kid: jwk.kid, x: jwk.x })]);

    // the emulator's key for alice, as the SDK would hand it over; but no consent has reached us
    const key = stack.emulator.controls.cakPrivateKey(
      { userId: alice.userId, issuerDid: DEV_ISSUER_DID, schemaId: alice.schemaId },
      'secp256r1',
    );
    writeFileSync(join(dir, 'cak-alice.hex'), `${key}\n`);
    const refused = await cak(fetchArgs(alice, 'refused', 'verifier.jwk', 'cak-alice.hex'));
    expect(refused.status).toBe(EXIT.REFUSED);
    expect(refused.stderr).toMatch(/403 AUTHORIZATION_REQUIRED/);
    expect(existsSync(join(dir, 'refused'))).toBe(false);

    // an unregistered DID: 401, with the way to register
    const stranger = await cak([
      ...fetchArgs(alice, 'refused', 'verifier.jwk', 'cak-alice.hex'),
      '--verifier-did',
      'did:air:id:stranger',
    ]);
    expect(stranger.status).toBe(EXIT.REFUSED);
    expect(stranger.stderr).toMatch(/401 VERIFIER_UNAUTHENTICATED.*register-key/);
  });

  it('after the consent, fetch writes the exact issued bytes into a relative --out (default --api from the configuration)', async () => {
    await consent(alice, 'cak-alice.json');
    const fetched = await cak(fetchArgs(alice, 'out/alice'));
    expect(fetched.stderr).toBe('');
    expect(fetched.status).toBe(EXIT.OK);
    const lines = fetched.stdout.trim().split('\n');
    expect(lines).toHaveLength(4);
    expect(lines[0]).toMatch(new RegExp(`^wrote ${join(dir, 'out', 'alice')}/\\S+ \\(`));
    expect(lines[3]).toMatch(/^3 file\(s\) decrypted into .* \(record \S+ version 1, authorization auth_\S+\)$/);
    expectIssuedBytes(alice, 'out/alice');

    // the same with the key as PKCS#8 PEM (no kid: the API tries the DID's keys), --api and --json
    const jwk = JSON.parse(readFileSync(join(dir, 'verifier.jwk'), 'utf8')) as Record<string, string>;
    const pem = createPrivateKey({ key: jwk, format: 'jwk' }).export({ format: 'pem', type: 'pkcs8' });
    writeFileSync(join(dir, 'verifier.pem'), pem);
    const again = await cak([
      ...fetchArgs(alice, 'again', 'verifier.pem', 'cak-alice.hex'),
      '--api',
      stack.api.url,
      '--json',
    ]);
    expect(again.status).toBe(EXIT.OK);
    const report = json<{
      recordId: string;
      version: number;
      files: { itemId: string; path: string; bytes: number }[];
    }>(again);
    expect(report.version).toBe(1);
    expect(report.files.map((f) => [f.itemId, f.path]).sort()).toEqual(
      [
        ['face-photo', join(dir, 'again', 'face-photo.jpg')],
        ['fields', join(dir, 'again', 'fields.json')],
        ['id-front', join(dir, 'again', 'id-front.png')],
      ].sort(),
    );
    expectIssuedBytes(alice, 'again');

    // a CAK key that is not this user's: the package does not decrypt (2, with the crypto error code)
    const other = stack.emulator.controls.cakPrivateKey(
      { userId: bob.userId, issuerDid: DEV_ISSUER_DID, schemaId: alice.schemaId },
      'secp256r1',
    );
    writeFileSync(join(dir, 'cak-wrong.hex'), other);
    const wrong = await cak(fetchArgs(alice, 'wrong', 'verifier.jwk', 'cak-wrong.hex'));
    expect(wrong.status).toBe(EXIT.USAGE);
    expect(wrong.stderr).toMatch(/cak: [A-Z_]+: /);
  });

  it('lists filter by user, Verifier, schema and state in the query, and --json prints one array', async () => {
    await consent(bob, 'cak-bob.json');
    type Authorization = { userId: string; verifierDid: string; schemaId: string; state: string; workflowId: string };
    const authorizations = async (...filters: string[]) => {
      const out = await cak(['authorizations', 'list', ...filters, '--json']);
      expect(out.status).toBe(EXIT.OK);
      const listed = json<Authorization[]>(out);
      expect(Array.isArray(listed)).toBe(true);
      return listed.map((a) => `${a.userId}/${a.schemaId}/${a.state}`).sort();
    };
    const a = `${alice.userId}/kyc-basic/active`;
    const b = `${bob.userId}/proof-of-address/active`;
    expect(await authorizations('--verifier', verifierDid)).toEqual([a, b]);
    expect(await authorizations('--user', alice.userId)).toEqual([a]);
    expect(await authorizations('--schema', 'proof-of-address')).toEqual([b]);
    expect(await authorizations('--state', 'active', '--user', bob.userId, '--verifier', verifierDid)).toEqual([b]);
    expect(await authorizations('--verifier', 'did:air:id:nobody')).toEqual([]);
    expect(await authorizations('--state', 'revoked', '--user', alice.userId)).toEqual([]);
    const text = await cak(['authorizations', 'list', '--user', bob.userId]);
    expect(text.stdout).toContain(bob.userId);
    expect(text.stdout).not.toContain(alice.userId);

    type Issuance = { issuanceId: string; userId: string; schemaId: string; status: string };
    const issuances = async (...filters: string[]) => {
      const out = await cak(['issuances', 'list', ...filters, '--json']);
      expect(out.status).toBe(EXIT.OK);
      return json<Issuance[]>(out).map((i) => i.issuanceId);
    };
    expect((await issuances()).sort()).toEqual([alice.issuanceId, bob.issuanceId].sort());
    expect(await issuances('--user', alice.userId)).toEqual([alice.issuanceId]);
    expect(await issuances('--schema', 'proof-of-address')).toEqual([bob.issuanceId]);
    expect(await issuances('--state', 'completed', '--user', bob.userId, '--schema', 'proof-of-address')).toEqual([
      bob.issuanceId,
    ]);
    expect(await issuances('--state', 'failed')).toEqual([]);
    expect(await issuances('--user', alice.userId, '--schema', 'proof-of-address')).toEqual([]);
  });

  it('issuances status shows the steps, the workflowId and its Temporal Web UI page', async () => {
    const workflowId = (await stack.db
      .collection<{ _id: string; workflowId: string }>('issuances')
      .findOne({ _id: alice.issuanceId }))!.workflowId;
    const link = `http://temporal-ui.example:8233/namespaces/${config.TEMPORAL_NAMESPACE}/workflows/${workflowId}`;
    const text = await cak(['issuances', 'status', alice.issuanceId]);
    expect(text.status).toBe(EXIT.OK);
    expect(text.stdout).toMatch(new RegExp(`^workflow +${workflowId}$`, 'm'));
    expect(text.stdout).toMatch(new RegExp(`^web UI +${link.replace(/[.]/g, '\\.')}$`, 'm'));
    expect(text.stdout).toMatch(/^steps +issue completed, encrypt completed, store completed, shred completed$/m);
    const detail = json<Record<string, unknown>>(await cak(['issuances', 'status', alice.issuanceId, '--json']));
    expect(detail).toMatchObject({
      issuanceId: alice.issuanceId,
      status: 'completed',
      userId: alice.userId,
      workflowId,
      webUi: link,
      version: 1,
      itemKinds: expect.arrayContaining(['fields', 'id-front', 'face-photo']),
    });
  });

  it('a revoked authorization: fetch exits 4 with AUTHORIZATION_REVOKED', async () => {
    const byKey = ['--user', alice.userId, '--verifier', verifierDid, '--schema', alice.schemaId];
    expect((await cak(['authorizations', 'revoke', ...byKey])).status).toBe(EXIT.OK);
    const refused = await cak(fetchArgs(alice, 'revoked'));
    expect(refused.status).toBe(EXIT.REFUSED);
    expect(refused.stderr).toMatch(/403 AUTHORIZATION_REVOKED/);
  });
});
