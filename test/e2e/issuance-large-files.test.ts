import { request as httpRequest } from 'node:http';
import { randomUUID } from 'node:crypto';
import type { Client } from '@temporalio/client';
import type { Db } from 'mongodb';
import type { ApiHandle } from '../../src/api/server';
import { DEV_ADMIN_TOKEN, DEV_API_KEY, DEV_ISSUER_DID, type Config } from '../../src/config';
import type { Curve } from '../../src/crypto/keys';
import type { EmulatorHandle } from '../../src/emulator/server';
import { VerifierSimulation } from '../../src/emulator/verifier-sim';
import { countWorkflows, markedPng } from '../support/scans';
import { eventually } from '../integration/callbacks-harness';
import { callbackConfig, startSystem, type System } from '../support/system';

jest.setTimeout(30 * 60_000);

/**
 * Files at the per-file limit (ITEM_MAX_FILE_BYTES, 25 MiB) through the real API, worker and
 * emulator, as JSON (base64) and as multipart (streamed into staging), on both curves; the
 * consented Verifier decrypts them byte-identical. One byte more is refused with the limit in the
 * message, and a refused, truncated or abandoned upload leaves nothing recorded, staged or started.
 */
describe('files at the 25 MB limit', () => {
  let config: Config;
  let api: ApiHandle;
  let emulator: EmulatorHandle;
  let database: { db: Db };
  let temporal: Client;
  let stack: System;
  const run = randomUUID().slice(0, 8);
  const refusedUser = `refused-${run}`;

  const text = (userId: string, curve: Curve = 'secp256r1') => ({
    userId,
    issuerDid: DEV_ISSUER_DID,
    credentialId: 'prog-kyc-basic',
    schemaId: 'kyc-basic',
    curve,
  });
  const postJson = (userId: string, file: Buffer, curve: Curve = 'secp256r1') =>
    fetch(`${api.url}/v1/issuances`, {
      method: 'POST',
      headers: { 'x-api-key': DEV_API_KEY, 'content-type': 'application/json' },
      body: JSON.stringify({
        ...text(userId, curve),
        credentialSubject: { kycLevel: 1 },
        files: [{ kind: 'id-front', contentType: 'image/png', data: file.toString('base64') }],
      }),
    });
  const form = (userId: string, file: Buffer, curve: Curve = 'secp256r1') => {
    const f = new FormData();
    for (const [name, value] of Object.entries(text(userId, curve))) f.set(name, value);
    f.set('credentialSubject', JSON.stringify({ kycLevel: 1 }));
    f.set('id-front', new Blob([file], { type: 'image/png' }), 'front.png');
    return f;
  };
  const postForm = (userId: string, file: Buffer, curve: Curve = 'secp256r1') =>
    fetch(`${api.url}/v1/issuances`, {
      method: 'POST',
      headers: { 'x-api-key': DEV_API_KEY },
      body: form(userId, file, curve),
    });
  const errorOf = async (res: Response) => ({
    status: res.status,
    ...((await res.json()) as { error: { code: string; message: string } }).error,
  });

  /** A multipart body sent by hand: the text parts, then the file's first `sent` bytes; then end or cut. */
  function sendPartial(file: Buffer, sent: number, how: 'end' | 'cut'): Promise<number | undefined> {
    const boundary = `b-${run}`;
    const textParts = Object.entries({ ...text(refusedUser), credentialSubject: '{"kycLevel":1}' })
      .map(([name, value]) => `--${boundary}\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`)
      .join('');
    const fileHead = `--${boundary}\r\nContent-Disposition: form-data; name="id-front"; filename="f.png"\r\nContent-Type: image/png\r\n\r\n`;
    return new Promise((resolve, reject) => {
      const req = httpRequest(`${api.url}/v1/issuances`, {
        method: 'POST',
        headers: { 'x-api-key': DEV_API_KEY, 'content-type': `multipart/form-data; boundary=${boundary}` },
      });
      req.on('response', (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', (err) => (how === 'cut' ? resolve(undefined) : reject(err)));
      req.write(textParts + fileHead);
      req.write(file.subarray(0, sent), () => {
        if (how === 'end')
          req.end(); // chunked: the body ends without its closing boundary
        else {
          // cut once the server has staged part of the file, so there is something to delete
          eventually(leftovers, (l) => l.stagingFiles + l.stagingChunks + l.stagingData > 0, {
            what: 'the server to stage part of the file',
            timeoutMs: 30_000,
            intervalMs: 50,
          }).then(() => req.destroy(), reject);
        }
      });
    });
  }

  const leftovers = async () => ({
    issuances: await database.db.collection('issuances').countDocuments({}),
    staging: await database.db.collection('staging').countDocuments({}),
    stagingData: await database.db.collection('stagingData').countDocuments({}),
    stagingFiles: await database.db.collection('stagingBlobs.files').countDocuments({}),
    stagingChunks: await database.db.collection('stagingBlobs.chunks').countDocuments({}),
  });
  const nothing = { issuances: 0, staging: 0, stagingData: 0, stagingFiles: 0, stagingChunks: 0 };

  beforeAll(async () => {
    config = await callbackConfig({ API_RATE_LIMIT_PER_MINUTE: '100000' });
    stack = await startSystem({ config, sealLoop: true, registerCallbackUrl: true });
    ({ api, emulator, client: temporal } = stack);
    database = { db: stack.db };
  });

  afterAll(async () => {
    await stack?.close();
  });

  describe('refusals leave nothing behind', () => {
    const limit = 26_214_400;
    let tooBig: Buffer;
    beforeAll(() => {
      expect(config.ITEM_MAX_FILE_BYTES).toBe(limit);
      tooBig = markedPng(`TOO-BIG-${run}`, limit + 1);
    });

    it('refuses 25 MB + 1 byte as JSON: 400 FILE_TOO_LARGE naming the limit', async () => {
      const error = await errorOf(await postJson(refusedUser, tooBig));
      expect(error).toMatchObject({ status: 400, code: 'FILE_TOO_LARGE' });
      expect(error.message).toContain('26214400 bytes (25 MiB)');
    });

    it('refuses 25 MB + 1 byte as multipart while it streams: 400 FILE_TOO_LARGE naming the limit', async () => {
      const error = await errorOf(await postForm(refusedUser, tooBig));
      expect(error).toMatchObject({ status: 400, code: 'FILE_TOO_LARGE' });
      expect(error.message).toContain('26214400 bytes (25 MiB)');
      expect(await leftovers()).toEqual(nothing);
    });

    it('refuses a multipart body that ends mid-file: 400 MALFORMED_MULTIPART', async () => {
      expect(await sendPartial(tooBig, 5 * 1024 * 1024, 'end')).toBe(400);
      expect(await leftovers()).toEqual(nothing);
    });

    it('deletes what a client that disconnects mid-file had sent', async () => {
      expect(await sendPartial(tooBig, 5 * 1024 * 1024, 'cut')).toBeUndefined();
      expect(await eventually(leftovers, (l) => JSON.stringify(l) === JSON.stringify(nothing))).toEqual(nothing);
    });

    it('recorded, staged and started nothing', async () => {
      expect(await leftovers()).toEqual(nothing);
      expect(await countWorkflows(temporal, refusedUser)).toBe(0);
    });
  });

  describe('idempotency across the two forms', () => {
    const userId = `idem-${run}`;
    const key = `idem-key-${run}`;
    const small = markedPng(`IDEM-${run}`, 300 * 1024);
    const withKey = (init: RequestInit): RequestInit => ({
      ...init,
      headers: { ...(init.headers as Record<string, string>), 'idempotency-key': key },
    });

    it('replays a multipart repeat of a JSON issuance, refuses another file under the key, and keeps no streamed bytes', async () => {
      const first = await fetch(
        `${api.url}/v1/issuances`,
        withKey({
          method: 'POST',
          headers: { 'x-api-key': DEV_API_KEY, 'content-type': 'application/json' },
          body: JSON.stringify({
            ...text(userId),
            credentialSubject: { kycLevel: 1 },
            files: [{ kind: 'id-front', contentType: 'image/png', data: small.toString('base64') }],
          }),
        }),
      );
      expect(first.status).toBe(202);
      const { issuanceId } = (await first.json()) as { issuanceId: string };
      const post = (file: Buffer) =>
        fetch(
          `${api.url}/v1/issuances`,
          withKey({ method: 'POST', headers: { 'x-api-key': DEV_API_KEY }, body: form(userId, file) }),
        );
      const replay = await post(small);
      expect(replay.status).toBe(202);
      expect(replay.headers.get('idempotent-replayed')).toBe('true');
      expect(((await replay.json()) as { issuanceId: string }).issuanceId).toBe(issuanceId);
      expect((await errorOf(await post(markedPng(`OTHER-${run}`, 300 * 1024)))).code).toBe('IDEMPOTENCY_KEY_REUSED');
      await eventually(
        async () =>
          (
            (await (
              await fetch(`${api.url}/v1/issuances/${issuanceId}`, { headers: { 'x-api-key': DEV_API_KEY } })
            ).json()) as { status: string }
          ).status,
        (s) => s === 'completed',
        5 * 60_000,
      );
      // the run shredded its staging; the replay's and the refused upload's bytes were deleted
      expect({ ...(await leftovers()), issuances: 0 }).toEqual(nothing);
    });
  });

  describe.each<Curve>(['secp256r1', 'secp256k1'])('on %s', (curve) => {
    let verifier: VerifierSimulation;
    beforeAll(async () => {
      verifier = new VerifierSimulation(`did:air:id:large-${curve}-${run}`, {
        emulatorUrl: emulator.url,
        apiUrl: api.url,
      });
      await verifier.register(DEV_ADMIN_TOKEN);
    });

    it.each(['json', 'multipart'] as const)(
      'issues a 25 MB PNG as %s; the consented Verifier decrypts it byte-identical',
      async (form) => {
        const userId = `large-${form}-${curve}-${run}`;
        const png = markedPng(`LARGE-${form}-${curve}-${run}`, config.ITEM_MAX_FILE_BYTES);
        const res = form === 'json' ? await postJson(userId, png, curve) : await postForm(userId, png, curve);
        expect(res.status).toBe(202);
        const { issuanceId } = (await res.json()) as { issuanceId: string };
        const status = await eventually(
          async () =>
            (await (
              await fetch(`${api.url}/v1/issuances/${issuanceId}`, { headers: { 'x-api-key': DEV_API_KEY } })
            ).json()) as { status?: string; record?: { items: { kind: string; size: number }[] } },
          (s) => s.status === 'completed' || s.status === 'failed',
          10 * 60_000,
        );
        expect(status).toMatchObject({ status: 'completed' });

        const consent = await verifier.obtainConsent({
          issuerDid: DEV_ISSUER_DID,
          userId,
          schemaId: 'kyc-basic',
          curve,
        });
        await verifier.waitForDelivery(consent.callbackRecordId);
        await eventually(
          async () => (await verifier.requestData(userId, 'kyc-basic')).status,
          (s) => s === 200,
        );
        const plain = await verifier.fetchAndDecrypt({
          userId,
          schemaId: 'kyc-basic',
          cakPrivateKey: consent.cakPrivateKey,
          curve,
        });
        const front = plain.get('id-front')!;
        expect(front.length).toBe(config.ITEM_MAX_FILE_BYTES);
        expect(front.equals(png)).toBe(true);
        // the run shredded its staging
        expect(await database.db.collection('staging').countDocuments({ issuanceId })).toBe(0);
      },
    );
  });
});
