import { createHash } from 'node:crypto';
import { DEV_CALLBACK_SECRET } from '../../src/config';
import { signPackageToken, verifyPackageToken } from '../../src/domain/authorization-url';
import { authorizationIdFor, authorizationWorkflowId, parseCallbackPayload } from '../../src/domain/callback';
import { AppError } from '../../src/domain/errors';
import {
  StandardWebhooksVerifier,
  callbackSignatureVerifier,
  parseSecrets,
  signStandardWebhook,
} from '../../src/platform/callback-signature';
import { isAllowedCallbackUrl } from '../../src/platform/issuer-settings';
import { parseSchemaRegistry } from '../../src/routing/schema-registry';
import { GENESIS_HASH, auditHash, linkEvents } from '../../src/storage/audit';
import { toResolvedRoute } from '../../src/routing/callback-routes';
import { canonicalJson } from '../../src/domain/safe-json';

const OLD = 'whsec_' + Buffer.from('the-previous-callback-secret-0001').toString('base64');
const body = JSON.stringify({ userId: 'u-1', verifierDid: 'did:air:v1', schemaId: 'kyc-basic' });

async function code(promise: Promise<unknown>): Promise<string | undefined> {
  try {
    await promise;
    return undefined;
  } catch (err) {
    return err instanceof AppError ? `${err.status} ${err.code}` : String(err);
  }
}

describe('StandardWebhooksVerifier', () => {
  const verifier = new StandardWebhooksVerifier([DEV_CALLBACK_SECRET, OLD], 300);
  const headers = (secret: string, at = new Date()) =>
    signStandardWebhook(secret, body, { id: 'msg_1', timestamp: at });

  it('accepts a signature by any configured secret (rotation), and several signatures in one header', async () => {
    await expect(verifier.verify(Buffer.from(body), headers(DEV_CALLBACK_SECRET))).resolves.toBeUndefined();
    await expect(verifier.verify(Buffer.from(body), headers(OLD))).resolves.toBeUndefined();
    const other = 'whsec_' + Buffer.from('unrelated-secret-value-000000000').toString('base64');
    const both = headers(other);
    both['webhook-signature'] = `${both['webhook-signature']} ${headers(OLD)['webhook-signature']}`;
    await expect(verifier.verify(Buffer.from(body), both)).resolves.toBeUndefined();
    expect(await code(verifier.verify(Buffer.from(body), headers(other)))).toBe('401 SIGNATURE_INVALID');
  });

  it('uses the configured tolerance, both ways', async () => {
    const strict = new StandardWebhooksVerifier([DEV_CALLBACK_SECRET], 30);
    const at = (s: number) => headers(DEV_CALLBACK_SECRET, new Date(Date.now() + s * 1000));
    await expect(strict.verify(Buffer.from(body), at(-20))).resolves.toBeUndefined();
    expect(await code(strict.verify(Buffer.from(body), at(-60)))).toBe('401 SIGNATURE_TIMESTAMP_STALE');
    expect(await code(strict.verify(Buffer.from(body), at(60)))).toBe('401 SIGNATURE_TIMESTAMP_FUTURE');
    await expect(verifier.verify(Buffer.from(body), at(-60))).resolves.toBeUndefined();
  });

  it('refuses a repeated signature header rather than merging it', async () => {
    const h: Record<string, string | string[]> = headers(DEV_CALLBACK_SECRET);
    h['webhook-signature'] = [h['webhook-signature'] as string, h['webhook-signature'] as string];
    expect(await code(verifier.verify(Buffer.from(body), h))).toBe('401 SIGNATURE_MISSING');
  });

  it('is chosen by the setting', () => {
    const settings = {
      CALLBACK_SECRETS: `${DEV_CALLBACK_SECRET},${OLD}`,
      CALLBACK_TOLERANCE_SECONDS: 300,
      PLATFORM_JWKS_URL: 'https://platform.example/jwks.json',
      PLATFORM_JWKS_COOLDOWN_SECONDS: 10,
    };
    expect(callbackSignatureVerifier({ ...settings, CALLBACK_SIGNATURE_SCHEME: 'standard-webhooks' }).scheme).toBe(
      'standard-webhooks',
    );
    expect(callbackSignatureVerifier({ ...settings, CALLBACK_SIGNATURE_SCHEME: 'jws-es256' }).scheme).toBe('jws-es256');
    expect(parseSecrets(`${DEV_CALLBACK_SECRET}, ${OLD}`)).toEqual([DEV_CALLBACK_SECRET, OLD]);
  });
});

describe('callback payload and ids', () => {
  it('derives one keyed id per dedup key, unambiguous across field boundaries', () => {
    const a = authorizationIdFor('secret-1', { userId: 'ab', verifierDid: 'did:x:c', schemaId: 's' });
    expect(a).toMatch(/^auth_[A-Za-z0-9_-]{24}$/);
    expect(authorizationIdFor('secret-1', { userId: 'ab', verifierDid: 'did:x:c', schemaId: 's' })).toBe(a);
    expect(authorizationIdFor('secret-2', { userId: 'ab', verifierDid: 'did:x:c', schemaId: 's' })).not.toBe(a);
    expect(authorizationIdFor('secret-1', { userId: 'a', verifierDid: 'did:x:c', schemaId: 's' })).not.toBe(a);
    expect(authorizationWorkflowId(a)).toBe(`authorization-${a}`);
    expect(authorizationWorkflowId(a)).not.toContain('ab');
  });

  it('accepts exactly the documented fields', () => {
    expect(parseCallbackPayload(JSON.parse(body))).toEqual(JSON.parse(body));
    expect(() => parseCallbackPayload({ ...JSON.parse(body), extra: 1 })).toThrow(/unknown field/);
  });
});

describe('package URL tokens', () => {
  const claims = { pur: 'package' as const, aid: 'auth_x', rid: 'rec_y', pid: 'iss_z/fields', exp: 2_000_000_000 };

  it('verify when untouched; refuse tampering, another secret and expiry', () => {
    const token = signPackageToken('s'.repeat(32), claims);
    expect(verifyPackageToken('s'.repeat(32), token, 1_000)).toEqual({ ok: true, claims });
    expect(verifyPackageToken('t'.repeat(32), token, 1_000)).toEqual({ ok: false, reason: 'signature' });
    expect(verifyPackageToken('s'.repeat(32), token, 2_000_000_000_000)).toEqual({ ok: false, reason: 'expired' });
    const other = signPackageToken('s'.repeat(32), { ...claims, pid: 'iss_z/id-front' });
    const spliced = `${other.split('.')[0]}.${token.split('.')[1]}`;
    expect(verifyPackageToken('s'.repeat(32), spliced, 1_000)).toEqual({ ok: false, reason: 'signature' });
    expect(verifyPackageToken('s'.repeat(32), 'not-a-token', 1_000)).toEqual({ ok: false, reason: 'malformed' });
  });
});

describe('callback routes in the schema registry', () => {
  const registry = (callback: string) =>
    parseSchemaRegistry(`schemas:\n  kyc:\n    programs: [p]\n    allowedItemKinds: [fields]\n${callback}`, [
      'did:air:id:i',
    ]);

  it('accepts the built-in handlers and an optional notifyUrl', () => {
    const r = registry(
      '    callback:\n      handlers: [grant-access, notify]\n      notifyUrl: https://hooks.example/cak\n',
    );
    expect(r.get('kyc')?.callback).toEqual({
      handlers: ['grant-access', 'notify'],
      notifyUrl: 'https://hooks.example/cak',
      accessWindow: '30d',
    });
    expect(
      toResolvedRoute(registry('    callback:\n      handlers: [log-only]\n      accessWindow: 90s\n').route('kyc')),
    ).toEqual({ handlers: ['log-only'], accessWindowMs: 90_000 });
    expect(registry('').get('kyc')?.callback).toBeUndefined();
  });

  it.each([
    ['an unknown handler', '    callback:\n      handlers: [delete-everything]\n'],
    ['no handlers', '    callback:\n      handlers: []\n'],
    ['a repeated handler', '    callback:\n      handlers: [notify, notify]\n'],
    ['log-only with others', '    callback:\n      handlers: [log-only, grant-access]\n'],
    ['an unknown key', '    callback:\n      handlers: [notify]\n      secret: x\n'],
    ['a non-http notifyUrl', '    callback:\n      handlers: [notify]\n      notifyUrl: ftp://x.example/\n'],
    ['a window that is not a duration', '    callback:\n      handlers: [notify]\n      accessWindow: forever\n'],
    ['a zero window', '    callback:\n      handlers: [notify]\n      accessWindow: 0d\n'],
  ])('refuses %s', (_name, callback) => {
    expect(() => registry(callback)).toThrow(/callback/);
  });
});

describe('callback URL registration', () => {
  it.each([
    ['https://issuer.example/v1/cak/callbacks', true],
    ['http://127.0.0.1:3000/v1/cak/callbacks', true],
    ['http://localhost:3000/v1/cak/callbacks', true],
    ['http://issuer.example/v1/cak/callbacks', false],
    ['https://user:pass@issuer.example/cb', false],
    ['ftp://issuer.example/cb', false],
    ['not a url', false],
  ])('%s -> %s', (url, ok) => {
    expect(isAllowedCallbackUrl(url)).toBe(ok);
  });
});

describe('audit links', () => {
  const keys = {
    activeKeyId: 'k1',
    keys: new Map([
      ['k1', Buffer.alloc(32, 1)],
      ['k2', Buffer.alloc(32, 2)],
    ]),
  };
  it('cover every field and the predecessor, keyed by the named audit key', () => {
    const event = {
      _id: 'k',
      seq: 0,
      prevHash: GENESIS_HASH,
      kid: 'k1',
      type: 'authorization' as const,
      at: '2026-01-01T00:00:00.000Z',
      data: { a: 1 },
    };
    const hash = auditHash(keys, event);
    expect(hash).toMatch(/^[0-9a-f]{64}$/);
    expect(auditHash(keys, { ...event, data: { a: 2 } })).not.toBe(hash);
    expect(auditHash(keys, { ...event, prevHash: 'f'.repeat(64) })).not.toBe(hash);
    expect(auditHash(keys, { ...event, seq: 1 })).not.toBe(hash);
    expect(auditHash(keys, { ...event, kid: 'k2' })).not.toBe(hash);
    expect(auditHash(keys, { ...event, kid: 'unknown' })).toBeUndefined();
    expect(auditHash(keys, { ...event, data: { a: 1 } })).toBe(hash);
    // a plain SHA-256 of the same content is not the link: without the key nobody recomputes it
    expect(
      createHash('sha256')
        .update(canonicalJson({ ...event, key: 'k' }))
        .digest('hex'),
    ).not.toBe(hash);
  });
});
describe('sealing a batch', () => {
  const keys = { activeKeyId: 'k1', keys: new Map([['k1', Buffer.alloc(32, 1)]]) };
  const pending = ['a', 'b', 'c'].map((id, i) => ({
    _id: id,
    type: 'verifier.manifest' as const,
    at: `2026-01-01T00:00:0${i}.000Z`,
    data: { n: i },
  }));

  it('numbers the events after the tip and links each to the one before, across batches', () => {
    const first = linkEvents(keys, 'k1', { seq: -1, hash: GENESIS_HASH }, pending.slice(0, 2));
    const second = linkEvents(keys, 'k1', { seq: 1, hash: first[1]!.hash }, pending.slice(2));
    const chain = [...first, ...second];
    expect(chain.map((e) => e.seq)).toEqual([0, 1, 2]);
    expect(chain.map((e) => e.prevHash)).toEqual([GENESIS_HASH, chain[0]!.hash, chain[1]!.hash]);
    for (const { hash, ...rest } of chain) expect(auditHash(keys, rest)).toBe(hash);
    // the same batch linked at once gives the same chain: a sealer that completes a batch relinks it exactly
    expect(linkEvents(keys, 'k1', { seq: -1, hash: GENESIS_HASH }, pending)).toEqual(chain);
  });

  it('refuses a key id that is not in the keyring', () => {
    expect(() => linkEvents(keys, 'gone', { seq: -1, hash: GENESIS_HASH }, pending)).toThrow(/gone/);
  });
});
