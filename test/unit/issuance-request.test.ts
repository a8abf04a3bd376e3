import { AppError } from '../../src/domain/errors';
import { issuanceIdFor, issuanceWorkflowId, recordIdFor, ISSUANCE_ID_PATTERN } from '../../src/domain/ids';
import { Readable } from 'node:stream';
import {
  isCanonicalBase64,
  parseIssuanceJson,
  requestFingerprint,
  type IssuanceLimits,
  type IssuanceRequest,
} from '../../src/domain/issuance-request';
import { readIssuanceMultipart } from '../../src/api/multipart';
import type { IssuanceIntake, Upload } from '../../src/api/issuance-intake';
import express from 'express';
import supertest from 'supertest';
import { errorHandler } from '../../src/api/errors';
import { issuanceRoutes } from '../../src/api/issuances';
import { createLogger } from '../../src/observability/logger';
import type { RecordsRepository } from '../../src/storage/records';
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

  it('checks canonical base64 by a linear scan, at any size', () => {
    const regex = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
    for (const s of ['', 'QQ==', 'QUI=', 'QUJD', 'QQ=', 'Q===', 'QQ==QQ==', 'QU=D', 'QUJD\n', 'QUJ-', 'QUJ_', 'é===']) {
      expect([s, isCanonicalBase64(s)]).toEqual([s, regex.test(s)]);
    }
    const large = Buffer.alloc(25 * 1024 * 1024 + 1, 7).toString('base64');
    expect(isCanonicalBase64(large)).toBe(true);
    expect(isCanonicalBase64(`${large.slice(0, -4)}AA*=`)).toBe(false);
  });

  it('rejects an oversize file before decoding it, naming the limit', () => {
    const big = Buffer.alloc(2048, 1).toString('base64');
    const body = { ...valid(), files: [{ kind: 'id-front', contentType: 'image/png', data: big }] };
    expect(codeOf(() => parseIssuanceJson(body, limits))).toBe('FILE_TOO_LARGE');
    expect(() => parseIssuanceJson(body, limits)).toThrow(/limit of 1024 bytes/);
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

  /** the body as a request stream, in pieces of `piece` bytes; the staged files land in `sunk` */
  function read(bytes: Buffer, contentType = `multipart/form-data; boundary=${boundary}`, piece = 7) {
    const pieces = Array.from({ length: Math.ceil(bytes.length / piece) }, (_, i) =>
      bytes.subarray(i * piece, (i + 1) * piece),
    );
    const req = Object.assign(Readable.from(pieces), { headers: { 'content-type': contentType }, complete: false });
    req.on('end', () => (req.complete = true));
    const sunk = new Map<string, Buffer[]>();
    const upload: Upload = {
      issuanceId: 'iss_test',
      precheck: () => Promise.resolve(),
      open(itemId) {
        sunk.set(itemId, []);
        return Promise.resolve({
          write: (b) => Promise.resolve(void sunk.get(itemId)!.push(Buffer.from(b))),
          finish: () => Promise.resolve({ bytesId: `${itemId}~x`, size: 0, sha256: '' }),
        });
      },
      linked: () => undefined,
      discard: () => Promise.resolve(),
    };
    return { sunk, result: readIssuanceMultipart(req as unknown as express.Request, limits, upload) };
  }
  const refusal = (p: Promise<IssuanceRequest>) =>
    p.then(
      () => 'NO_ERROR',
      (err: unknown) => (err instanceof AppError ? err.code : String(err)),
    );

  it('streams the same request as the JSON form, the file into the sink', async () => {
    const { sunk, result } = read(body);
    const r = await result;
    expect(requestFingerprint(r, K)).toBe(requestFingerprint(parseIssuanceJson(valid(), limits), K));
    expect(Buffer.concat(sunk.get('id-front')!).equals(png)).toBe(true);
  });

  it('refuses a body without its boundary, a truncated body, and a file before the text parts', async () => {
    expect(await refusal(read(body, 'multipart/form-data; boundary=other').result)).toBe('MALFORMED_MULTIPART');
    expect(await refusal(read(body, 'multipart/form-data').result)).toBe('MALFORMED_MULTIPART');
    expect(await refusal(read(body.subarray(0, body.length - 40)).result)).toBe('MALFORMED_MULTIPART');
    const fileFirst = Buffer.concat([part('id-front', png, '; filename="f.png"\r\nContent-Type: image/png'), body]);
    expect(await refusal(read(fileFirst).result)).toBe('MISSING_FIELD');
    const textAfter = Buffer.concat([body.subarray(0, body.lastIndexOf(`--${boundary}--`)), part('x', 'y')]);
    expect(await refusal(read(Buffer.concat([textAfter, Buffer.from(`--${boundary}--\r\n`)])).result)).toBe(
      'TEXT_PART_AFTER_FILE',
    );
  });

  it('refuses a file over the limit while it streams, and bytes that are not the declared type', async () => {
    const big = Buffer.concat([png, Buffer.alloc(2000)]);
    const over = (data: Buffer) =>
      Buffer.concat([
        body.subarray(0, body.indexOf(`--${boundary}\r\nContent-Disposition: form-data; name="id-front"`)),
        part('id-front', data, '; filename="f.png"\r\nContent-Type: image/png'),
        Buffer.from(`--${boundary}--\r\n`),
      ]);
    const tooBig = read(over(big));
    expect(await refusal(tooBig.result)).toBe('FILE_TOO_LARGE');
    expect(Buffer.concat(tooBig.sunk.get('id-front') ?? []).length).toBeLessThanOrEqual(limits.maxFileBytes);
    const jpeg = read(over(Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5, 6, 7, 8, 9])));
    expect(await refusal(jpeg.result)).toBe('FILE_CONTENT_MISMATCH');
    expect(jpeg.sunk.size).toBe(0); // nothing was staged
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

describe('the issuance route', () => {
  const routeLimits: IssuanceLimits = { maxFileBytes: 1024, maxTotalBytes: 3 * 1024, maxFiles: 3 };
  let discarded = 0;
  const intake = {
    upload: (): Upload => ({
      issuanceId: 'iss_test',
      precheck: () => Promise.resolve(),
      open: () =>
        Promise.resolve({ write: () => Promise.resolve(), finish: () => Promise.reject(new Error('unused')) }),
      linked: () => undefined,
      discard: () => Promise.resolve(void (discarded += 1)),
    }),
    accept: () => Promise.reject(new Error('a refused request must not reach accept')),
    get: () => Promise.resolve(null),
  } as unknown as IssuanceIntake;
  const app = express();
  app.use((_req, res, next) => {
    res.locals.clientId = 'dev';
    next();
  });
  app.use(issuanceRoutes({ intake, records: {} as RecordsRepository, limits: routeLimits }));
  app.use(errorHandler(createLogger({ level: 'silent', name: 'test' })));

  it('refuses a JSON body over its limit, naming the limit', async () => {
    const limit = Math.ceil((routeLimits.maxTotalBytes * 4) / 3) + 256 * 1024;
    const res = await supertest(app)
      .post('/v1/issuances')
      .set('content-type', 'application/json')
      .send(JSON.stringify({ pad: 'x'.repeat(limit) }));
    expect(res.status).toBe(413);
    expect(res.body.error.code).toBe('BODY_TOO_LARGE');
    expect(res.body.error.message).toContain(`${limit} bytes`);
  });

  it('refuses a multipart file over the limit as it streams, and discards the upload', async () => {
    const res = await supertest(app)
      .post('/v1/issuances')
      .field('userId', 'user-1')
      .field('issuerDid', 'did:air:issuer1')
      .field('credentialId', 'prog-kyc-basic')
      .field('schemaId', 'kyc-basic')
      .field('credentialSubject', '{}')
      .attach('id-front', Buffer.concat([png, Buffer.alloc(4096)]), { filename: 'f.png', contentType: 'image/png' });
    expect(res.status).toBe(400);
    expect(res.body.error).toMatchObject({ code: 'FILE_TOO_LARGE', details: { limitBytes: 1024 } });
    expect(res.body.error.message).toContain('1024 bytes');
    expect(discarded).toBe(1);
  });
});
