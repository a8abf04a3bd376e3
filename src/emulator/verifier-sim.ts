import { generateKeyPairSync, randomUUID, type KeyObject } from 'node:crypto';
import { SignJWT, type JWK } from 'jose';
import { eciesDecrypt } from '../crypto/ecies';
import { parsePrivateKey, type Curve } from '../crypto/keys';

/**
 * A Verifier, simulated end to end (air-cak-platform.md §1 phase 3, §5): it starts a flow at the
 * platform (`verify/initialize`), the user consents in the "SDK" (the emulator), which dispatches
 * the callback to the issuer and hands back `cakPrivateKey`; then it fetches the semi-decrypted
 * package from the issuer and removes the inner CAK layer itself. The private key stays in memory.
 */

interface DataManifest {
  authorizationId: string;
  recordId: string;
  version: number;
  expiresAt: string;
  items: { itemId: string; kind: string; contentType: string; curve: Curve; url: string }[];
}

export class VerifierSimulation {
  readonly kid = `verifier-key-${randomUUID().slice(0, 8)}`;
  private readonly privateKey: KeyObject;
  private readonly publicKey: KeyObject;

  constructor(
    readonly verifierDid: string,
    private readonly endpoints: { emulatorUrl: string; apiUrl: string },
  ) {
    const pair = generateKeyPairSync('ec', { namedCurve: 'P-256' });
    this.privateKey = pair.privateKey;
    this.publicKey = pair.publicKey;
  }

  publicJwk(): JWK & { kid: string } {
    const { kty, crv, x, y } = this.publicKey.export({ format: 'jwk' });
    return { kty, crv, x, y, kid: this.kid } as JWK & { kid: string };
  }

  /** Registers our access-token key with the issuer (an operator's step, through the admin API). */
  async register(adminToken: string): Promise<void> {
    const res = await fetch(`${this.endpoints.apiUrl}/v1/admin/verifiers/keys`, {
      method: 'PUT',
      headers: { authorization: `Bearer ${adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ verifierDid: this.verifierDid, jwk: this.publicJwk() }),
    });
    if (!res.ok) throw new Error(`verifier key registration failed: ${res.status} ${await res.text()}`);
  }

  /** The bearer JWT the issuer's Verifier API expects (5 minutes). */
  async accessToken(options: { ttlSeconds?: number; audience?: string } = {}): Promise<string> {
    return new SignJWT({})
      .setProtectedHeader({ alg: 'ES256', kid: this.kid, typ: 'JWT' })
      .setIssuer(this.verifierDid)
      .setSubject(this.verifierDid)
      .setAudience(options.audience ?? 'cak-issuer')
      .setIssuedAt()
      .setExpirationTime(`${options.ttlSeconds ?? 300}s`)
      .sign(this.privateKey);
  }

  /** initialize -> consent: returns the callback record id and the CAK private key the SDK hands over. */
  async obtainConsent(params: {
    issuerDid: string;
    userId: string;
    schemaId: string;
    curve: Curve;
    duplicates?: number;
  }): Promise<{ callbackRecordId: string; cakPrivateKey: string }> {
    const init = await this.emulator('POST', '/verifier/verify/initialize', { issuerDid: params.issuerDid });
    const consent = await this.emulator('POST', '/emulator/verifier/consent', {
      callbackRecordId: init.callbackRecordId,
      userId: params.userId,
      verifierDid: this.verifierDid,
      schemaId: params.schemaId,
      curve: params.curve,
      duplicates: params.duplicates ?? 0,
    });
    return { callbackRecordId: String(consent.callbackRecordId), cakPrivateKey: String(consent.cakPrivateKey) };
  }

  /** Polls the platform's callback record until the issuer acknowledged the callback (status 1). */
  async waitForDelivery(callbackRecordId: string, timeoutMs = 60_000): Promise<Record<string, unknown>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const record = await this.emulator('GET', `/emulator/callbacks/${callbackRecordId}`);
      if (record.status === 1) return record;
      if (Date.now() > deadline)
        throw new Error(`callback ${callbackRecordId} not delivered: ${JSON.stringify(record)}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }

  async requestData(userId: string, schemaId: string, token?: string): Promise<Response> {
    const query = new URLSearchParams({ userId, schemaId });
    return fetch(`${this.endpoints.apiUrl}/v1/verifier/data?${query.toString()}`, {
      headers: { authorization: `Bearer ${token ?? (await this.accessToken())}` },
    });
  }

  /** Fetches the manifest and every package, and decrypts each with the CAK private key: kind -> plaintext. */
  async fetchAndDecrypt(params: {
    userId: string;
    schemaId: string;
    cakPrivateKey: string;
    curve: Curve;
  }): Promise<Map<string, Buffer>> {
    const res = await this.requestData(params.userId, params.schemaId);
    if (!res.ok) throw new Error(`data request refused: ${res.status} ${await res.text()}`);
    const manifest = (await res.json()) as DataManifest;
    const key = parsePrivateKey(params.cakPrivateKey, params.curve);
    const plain = new Map<string, Buffer>();
    for (const item of manifest.items) {
      const pkg = await fetch(`${this.endpoints.apiUrl}${item.url}`);
      if (!pkg.ok) throw new Error(`package ${item.itemId} refused: ${pkg.status}`);
      plain.set(item.kind, eciesDecrypt(key, Buffer.from(await pkg.arrayBuffer())));
    }
    return plain;
  }

  private async emulator(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Record<string, unknown>> {
    const res = await fetch(`${this.endpoints.emulatorUrl}${path}`, {
      method,
      ...(body ? { headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) } : {}),
    });
    const json = (await res.json()) as Record<string, unknown>;
    if (!res.ok) throw new Error(`emulator ${path} answered ${res.status}: ${JSON.stringify(json)}`);
    return json;
  }
}
