import { AppError } from '../../src/domain/errors';
import { issuanceIdFor, issuanceWorkflowId, recordIdFor, ISSUANCE_ID_PATTERN } from '../../src/domain/ids';
import {
  parseIssuanceJson,
  parseIssuanceMultipart,
  requestFingerprint,
  type IssuanceLimits,
} from '../../src/domain/issuance-request';
import { parseMultipart } from '../../src/api/multipart';
import { loadSchemaRegistry, parseSchemaRegistry } from '../../src/routing/schema-registry';
import { assertClientMayIssue } from '../../src/api/issuance-intake';
import { parseClientScopes } from '../../src/config';

const K = 'k'.repeat(32);
const limits: IssuanceLimits = { maxFileBytes: 1024, maxTotalBytes: 4096, maxFiles: 3 };
const png = Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('pixels')]);
const valid = () => ({
  userId: 'user-1',
  issuerDid: 'did:air:issuer1',
  credentialId: 'prog-kyc-basic',
  schemaId: 'kyc-basic',
  credentialSubject: { level: 2, nested: { ok: true } },
  fields: { fullName: 'Ada' },
  files: [{ kind: 'id-front', contentType: 'image/png', data: png.toString('base64') }],
});

function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof AppError) return err.code;
    throw err;
  }
  return 'NO_ERROR';
}

describe('parseIssuanceJson', () => {
  it('accepts a valid request and defaults the curve', () => {
    const r = parseIssuanceJson(valid(), limits);
    expect(r.curve).toBe('secp256r1');
    expect(r.files[0]!.data.equals(png)).toBe(true);
  });

  it.each([
    ['unknown top-level field', { extra: 1 }, 'UNKNOWN_FIELD'],
    ['missing userId', { userId: undefined }, 'MISSING_FIELD'],
    ['unknown curve', { curve: 'ed25519' }, 'INVALID_CURVE'],
    ['operator in userId', { userId: { $gt: '' } }, 'UNSAFE_KEY'],
    ['dotted subject key', { credentialSubject: { 'a.b': 1 } }, 'UNSAFE_KEY'],
    ['bad base64', { files: [{ kind: 'id-front', contentType: 'image/png', data: '@@@@' }] }, 'INVALID_BASE64'],
    ['not a png', { files: [{ kind: 'id-front', contentType: 'image/png', data: 'AAAA' }] }, 'FILE_CONTENT_MISMATCH'],
    ['svg', { files: [{ kind: 'id-front', contentType: 'image/svg+xml', data: 'AAAA' }] }, 'UNSUPPORTED_FILE_TYPE'],
    ['fields kind as file', { files: [{ kind: 'fields', contentType: 'image/png', data: 'AAAA' }] }, 'INVALID_FIELD'],
    ['no items', { fields: undefined, files: [] }, 'NO_ITEMS'],
  ])('rejects %s', (_name, patch, code) => {
    expect(codeOf(() => parseIssuanceJson({ ...valid(), ...patch }, limits))).toBe(code);
  });

  it('rejects a __proto__ key parsed from JSON', () => {
    const body = JSON.parse('{"__proto__": {"polluted": true}}') as object;
    expect(codeOf(() => parseIssuanceJson({ ...valid(), credentialSubject: body }, limits))).toBe('UNSAFE_KEY');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects an oversize file before decoding it', () => {
    const big = Buffer.alloc(2048, 1).toString('base64');
    const body = { ...valid(), files: [{ kind: 'id-front', contentType: 'image/png', data: big }] };
    expect(codeOf(() => parseIssuanceJson(body, limits))).toBe('FILE_TOO_LARGE');
  });

  it('fingerprints meaning, not key order or encoding', () => {
    const a = parseIssuanceJson(valid(), limits);
    const b = parseIssuanceJson({ ...valid(), credentialSubject: { nested: { ok: true }, level: 2 } }, limits);
    expect(requestFingerprint(a, K)).toBe(requestFingerprint(b, K));
    const c = parseIssuanceJson({ ...valid(), fields: { fullName: 'Bob' } }, limits);
    expect(requestFingerprint(c, K)).not.toBe(requestFingerprint(a, K));
  });
});

describe('multipart', () => {
  const boundary = 'XyZ123';
  const part = (name: string, value: Buffer | string, extra = '') =>
    Buffer.concat([
      Buffer.from(`--${boundary}\r\nContent-Disposition: form-data; name="${name}"${extra}\r\n\r\n`),
      Buffer.isBuffer(value) ? value : Buffer.from(value),
      Buffer.from('\r\n'),
    ]);
  const body = Buffer.concat([
    part('userId', 'user-1'),
    part('issuerDid', 'did:air:issuer1'),
    part('credentialId', 'prog-kyc-basic'),
    part('schemaId', 'kyc-basic'),
    part('credentialSubject', '{"level":2,"nested":{"ok":true}}'),
    part('fields', '{"fullName":"Ada"}'),
    part('id-front', png, '; filename="front.png"\r\nContent-Type: image/png'),
    Buffer.from(`--${boundary}--\r\n`),
  ]);

  it('parses the same request as the JSON form', () => {
    const parts = parseMultipart(body, `multipart/form-data; boundary=${boundary}`);
    const r = parseIssuanceMultipart(parts, limits);
    expect(requestFingerprint(r, K)).toBe(requestFingerprint(parseIssuanceJson(valid(), limits), K));
  });

  it('rejects a body without its boundary', () => {
    expect(codeOf(() => parseMultipart(body, 'multipart/form-data; boundary=other'))).toBe('MALFORMED_MULTIPART');
  });
});

describe('ids', () => {
  it('derives stable, keyed ids', () => {
    const a = issuanceIdFor('s'.repeat(32), 'dev', 'key-12345');
    expect(a).toBe(issuanceIdFor('s'.repeat(32), 'dev', 'key-12345'));
    expect(a).not.toBe(issuanceIdFor('t'.repeat(32), 'dev', 'key-12345'));
    expect(a).not.toBe(issuanceIdFor('s'.repeat(32), 'other', 'key-12345'));
    expect(ISSUANCE_ID_PATTERN.test(a)).toBe(true);
    expect(ISSUANCE_ID_PATTERN.test(issuanceIdFor('s'.repeat(32), 'dev', undefined))).toBe(true);
    expect(issuanceWorkflowId('s'.repeat(32), a)).not.toContain('key-12345');
    expect(recordIdFor('k', 'did:a:b', 'u', 's')).not.toBe(recordIdFor('k', 'did:a:b', 'us', ''));
  });
});

describe('schema registry', () => {
  const DID = 'did:air:id:issuer1';
  const registry = parseSchemaRegistry(
    'schemas:\n  kyc:\n    programs: [prog-kyc]\n    allowedItemKinds: [fields, id-front]\n' +
      '  poa:\n    programs: [prog-poa]\n    allowedItemKinds: [fields]\n',
    [DID],
  );
  const issuable = (credentialId: string, schemaId: string, kinds: string[], issuerDid = DID) =>
    codeOf(() => registry.assertIssuable({ issuerDid, credentialId, schemaId }, kinds));
  it.each([
    ['a program of the schema with allowed items', 'prog-kyc', 'kyc', ['fields', 'id-front'], 'NO_ERROR'],
    ['an item the schema does not allow', 'prog-kyc', 'kyc', ['fields', 'face-photo'], 'ITEM_NOT_ALLOWED'],
    ['an unknown schema', 'prog-kyc', 'nope', ['fields'], 'UNKNOWN_SCHEMA'],
    ['an unknown program', 'prog-other', 'kyc', ['fields'], 'UNKNOWN_PROGRAM'],
    ["another schema's program", 'prog-poa', 'kyc', ['fields'], 'PROGRAM_SCHEMA_MISMATCH'],
  ])('%s -> %s', (_name, credentialId, schemaId, kinds, code) => {
    expect(issuable(credentialId, schemaId, kinds)).toBe(code);
  });
  it("refuses another issuer DID than the schema's", () => {
    expect(issuable('prog-kyc', 'kyc', ['fields'], 'did:air:id:other')).toBe('ISSUER_SCHEMA_MISMATCH');
  });
  it('refuses an invalid file', () => {
    expect(() =>
      parseSchemaRegistry('schemas:\n  kyc:\n    programs: [p]\n    allowedItemKinds: [Bad Kind]\n', [DID]),
    ).toThrow(/kyc/);
    expect(() => parseSchemaRegistry('schemas:\n  kyc:\n    programs: [p]\n    allowed: [fields]\n', [DID])).toThrow();
    expect(() => parseSchemaRegistry('schemas:\n  kyc:\n    allowedItemKinds: [fields]\n', [DID])).toThrow(/programs/);
    // a program issues one schema
    expect(() =>
      parseSchemaRegistry(
        'schemas:\n  a:\n    programs: [p]\n    allowedItemKinds: [fields]\n  b:\n    programs: [p]\n    allowedItemKinds: [fields]\n',
        [DID],
      ),
    ).toThrow(/program "p"/);
    // with several issuer DIDs each schema names its own, and only one the deployment serves
    expect(() =>
      parseSchemaRegistry('schemas:\n  a:\n    programs: [p]\n    allowedItemKinds: [fields]\n', [DID, 'did:x:y']),
    ).toThrow(/issuerDid/);
    expect(() =>
      parseSchemaRegistry(
        'schemas:\n  a:\n    issuerDid: did:x:z\n    programs: [p]\n    allowedItemKinds: [fields]\n',
        [DID],
      ),
    ).toThrow(/not one of ISSUER_DIDS/);
  });
  it('loads the shipped registry, whose programs the emulator serves', () => {
    const shipped = loadSchemaRegistry('config/schemas.yaml', [DID]);
    expect(shipped.schemaIds()).toContain('kyc-basic');
    expect(shipped.programs().get('prog-kyc-basic')).toBe('kyc-basic');
    expect(shipped.get('kyc-basic')?.issuerDid).toBe(DID);
  });
});

describe('tenancy', () => {
  const deps = {
    issuerDids: ['did:air:id:a', 'did:air:id:b'],
    scopes: [
      { clientId: 'alpha', issuerDid: 'did:air:id:a' },
      { clientId: 'beta', issuerDid: 'did:air:id:b', schemaId: 'kyc' },
    ],
  };
  it.each([
    ['alpha', 'did:air:id:a', 'kyc', 'NO_ERROR'],
    ['alpha', 'did:air:id:a', 'poa', 'NO_ERROR'],
    ['alpha', 'did:air:id:b', 'kyc', 'CLIENT_NOT_PERMITTED'],
    ['beta', 'did:air:id:b', 'kyc', 'NO_ERROR'],
    ['beta', 'did:air:id:b', 'poa', 'CLIENT_NOT_PERMITTED'],
    ['gamma', 'did:air:id:a', 'kyc', 'CLIENT_NOT_PERMITTED'],
    ['alpha', 'did:air:id:elsewhere', 'kyc', 'ISSUER_NOT_SERVED'],
  ])('%s for %s / %s -> %s', (clientId, issuerDid, schemaId, code) => {
    expect(codeOf(() => assertClientMayIssue(deps, clientId, { issuerDid, schemaId }))).toBe(code);
  });
  it('parses API_CLIENT_SCOPES', () => {
    expect(parseClientScopes('dev=did:air:id:a,x=did:air:id:b/kyc')).toEqual([
      { clientId: 'dev', issuerDid: 'did:air:id:a' },
      { clientId: 'x', issuerDid: 'did:air:id:b', schemaId: 'kyc' },
    ]);
  });
});
