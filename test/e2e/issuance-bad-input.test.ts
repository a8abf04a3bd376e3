import { generateKeyPair } from '../../src/crypto/keys';
import { uniqueId } from '../support/temporal';
import { API_KEY_HEADER, countWorkflows, markedPng } from './issuance-harness';
import { startSystem, type System } from '../support/system';

/**
 * "Valid fixture, break one thing per case": every malformed or hostile issuance request gets a 4xx
 * with its code, and nothing is recorded, staged or started.
 */
describe('issuance requests that must be refused at the edge', () => {
  let system: System;
  const userId = uniqueId('hostile');
  const png = markedPng('BAD-INPUT', 1024).toString('base64');
  const jpeg = Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4]).toString('base64');
  const k1Key = generateKeyPair('secp256k1').publicKey.toString('hex');
  const file = (kind = 'id-front', data = png, contentType = 'image/png') => ({ kind, contentType, data });
  const valid = () => ({
    userId,
    issuerDid: 'did:air:id:cak-dev-issuer',
    credentialId: 'prog-kyc-basic',
    schemaId: 'kyc-basic',
    credentialSubject: { kycLevel: 1 },
    fields: { fullName: 'x' },
    files: [file()],
  });
  const without = (key: string) => {
    const v: Record<string, unknown> = valid();
    delete v[key];
    return v;
  };
  const deep = (n: number): Record<string, unknown> => (n === 0 ? { leaf: 1 } : { a: deep(n - 1) });
  const raw = (text: string) => ({ raw: text });

  type Case = [string, unknown, number, string, { headers?: Record<string, string>; contentType?: string }?];
  const json = (b: unknown) => b;
  const cases: Case[] = [
    ['no API key', valid(), 401, 'UNAUTHENTICATED', { headers: { 'x-api-key': '' } }],
    ['a wrong API key', valid(), 401, 'UNAUTHENTICATED', { headers: { 'x-api-key': 'not-the-key' } }],
    ['text/plain body', raw(JSON.stringify(valid())), 415, 'UNSUPPORTED_MEDIA_TYPE', { contentType: 'text/plain' }],
    [
      'form-urlencoded body',
      raw('userId=x'),
      415,
      'UNSUPPORTED_MEDIA_TYPE',
      { contentType: 'application/x-www-form-urlencoded' },
    ],
    ['malformed JSON', raw('{"userId": '), 400, 'MALFORMED_JSON'],
    ['a JSON array', json([valid()]), 400, 'INVALID_BODY'],
    ['a JSON string', raw('"hello"'), 400, 'MALFORMED_JSON'],
    ['missing userId', without('userId'), 400, 'MISSING_FIELD'],
    ['missing issuerDid', without('issuerDid'), 400, 'MISSING_FIELD'],
    ['missing credentialId', without('credentialId'), 400, 'MISSING_FIELD'],
    ['missing credentialSubject', without('credentialSubject'), 400, 'MISSING_FIELD'],
    ['userId as a number', { ...valid(), userId: 42 }, 400, 'INVALID_FIELD'],
    ['empty userId', { ...valid(), userId: '' }, 400, 'INVALID_FIELD'],
    ['overlong userId', { ...valid(), userId: 'u'.repeat(200) }, 400, 'INVALID_FIELD'],
    ['an email as userId', { ...valid(), userId: 'ada@example.com' }, 400, 'INVALID_FIELD'],
    ['issuerDid that is not a DID', { ...valid(), issuerDid: 'issuer-1' }, 400, 'INVALID_FIELD'],
    ['unregistered schemaId', { ...valid(), schemaId: 'no-such-schema' }, 400, 'UNKNOWN_SCHEMA'],
    ['an unknown program', { ...valid(), credentialId: 'prog-unknown' }, 400, 'UNKNOWN_PROGRAM'],
    ["another schema's program", { ...valid(), credentialId: 'prog-proof-of-address' }, 400, 'PROGRAM_SCHEMA_MISMATCH'],
    [
      'an issuer DID this deployment does not serve',
      { ...valid(), issuerDid: 'did:air:id:someone-else' },
      403,
      'ISSUER_NOT_SERVED',
    ],
    ['an unknown field', { ...valid(), role: 'admin' }, 400, 'UNKNOWN_FIELD'],
    ['unknown curve', { ...valid(), curve: 'ed25519' }, 400, 'INVALID_CURVE'],
    ['curve as a number', { ...valid(), curve: 1 }, 400, 'INVALID_CURVE'],
    ['$gt operator as userId', { ...valid(), userId: { $gt: '' } }, 400, 'UNSAFE_KEY'],
    ['$where in credentialSubject', { ...valid(), credentialSubject: { $where: 'sleep(1000)' } }, 400, 'UNSAFE_KEY'],
    ['dotted key in credentialSubject', { ...valid(), credentialSubject: { 'a.b': 1 } }, 400, 'UNSAFE_KEY'],
    [
      '__proto__ at top level',
      raw(`{"__proto__":{"admin":true},${JSON.stringify(valid()).slice(1)}`),
      400,
      'UNSAFE_KEY',
    ],
    [
      '__proto__ in credentialSubject',
      raw(JSON.stringify(valid()).replace('"kycLevel"', '"__proto__"')),
      400,
      'UNSAFE_KEY',
    ],
    ['constructor in fields', { ...valid(), fields: { constructor: 'x' } }, 400, 'UNSAFE_KEY'],
    ['NUL in a subject key', { ...valid(), credentialSubject: { 'a\u0000b': 1 } }, 400, 'UNSAFE_KEY'],
    ['credentialSubject nested too deep', { ...valid(), credentialSubject: deep(10) }, 400, 'JSON_TOO_DEEP'],
    [
      'credentialSubject too large',
      {
        ...valid(),
        credentialSubject: Object.fromEntries(Array.from({ length: 6 }, (_, i) => [`k${i}`, 'v'.repeat(4000)])),
      },
      400,
      'SUBJECT_TOO_LARGE',
    ],
    ['credentialSubject as an array', { ...valid(), credentialSubject: [1, 2] }, 400, 'INVALID_FIELD'],
    ['a text field that is a number', { ...valid(), fields: { fullName: 7 } }, 400, 'INVALID_FIELD'],
    ['a text field with a bad name', { ...valid(), fields: { '1st': 'x' } }, 400, 'INVALID_FIELD'],
    ['no sensitive items', { ...valid(), fields: undefined, files: [] }, 400, 'NO_ITEMS'],
    ['a file kind the schema does not allow', { ...valid(), files: [file('utility-bill')] }, 400, 'ITEM_NOT_ALLOWED'],
    [
      'a file for a fields-only schema',
      { ...valid(), schemaId: 'age-over-18', credentialId: 'prog-age-over-18' },
      400,
      'ITEM_NOT_ALLOWED',
    ],
    ['two files of one kind', { ...valid(), files: [file(), file()] }, 400, 'DUPLICATE_ITEM'],
    ['an SVG file', { ...valid(), files: [file('id-front', png, 'image/svg+xml')] }, 400, 'UNSUPPORTED_FILE_TYPE'],
    ['JPEG bytes declared PNG', { ...valid(), files: [file('id-front', jpeg)] }, 400, 'FILE_CONTENT_MISMATCH'],
    ['invalid base64', { ...valid(), files: [file('id-front', 'not*base64!')] }, 400, 'INVALID_BASE64'],
    ['empty file data', { ...valid(), files: [file('id-front', '')] }, 400, 'INVALID_FIELD'],
    [
      'a file over the per-file limit',
      { ...valid(), files: [file('id-front', markedPng('BIG', 70 * 1024).toString('base64'))] },
      400,
      'FILE_TOO_LARGE',
    ],
    [
      'too many files',
      { ...valid(), files: ['id-front', 'id-back', 'face-photo', 'extra'].map((k) => file(k)) },
      400,
      'TOO_MANY_FILES',
    ],
    [
      'files over the total limit',
      { ...valid(), files: ['id-front', 'id-back'].map((k) => file(k, markedPng('T', 60 * 1024).toString('base64'))) },
      413,
      'ITEMS_TOO_LARGE',
    ],
    [
      'a body over the size limit',
      { ...valid(), credentialSubject: { pad: 'x'.repeat(600 * 1024) } },
      413,
      'BODY_TOO_LARGE',
    ],
    ['an extra key in a file', { ...valid(), files: [{ ...file(), filename: 'a.png' }] }, 400, 'UNKNOWN_FIELD'],
    ['"fields" as a file kind', { ...valid(), files: [file('fields')] }, 400, 'INVALID_FIELD'],
    ['a cakPublicKey that is not a key', { ...valid(), cakPublicKey: 'hello world' }, 400, 'INVALID_CAK_PUBLIC_KEY'],
    [
      'a secp256k1 key for secp256r1',
      { ...valid(), curve: 'secp256r1', cakPublicKey: k1Key },
      400,
      'INVALID_CAK_PUBLIC_KEY',
    ],
    ['the point at infinity as key', { ...valid(), cakPublicKey: '00' }, 400, 'INVALID_CAK_PUBLIC_KEY'],
    [
      'an all-zero uncompressed key',
      { ...valid(), cakPublicKey: `04${'00'.repeat(64)}` },
      400,
      'INVALID_CAK_PUBLIC_KEY',
    ],
    ['an overlong cakPublicKey', { ...valid(), cakPublicKey: 'a'.repeat(600) }, 400, 'INVALID_FIELD'],
    ['a bad Idempotency-Key', valid(), 400, 'INVALID_IDEMPOTENCY_KEY', { headers: { 'idempotency-key': 'x' } }],
    [
      'multipart without a boundary',
      raw('--x\r\n'),
      400,
      'MALFORMED_MULTIPART',
      { contentType: 'multipart/form-data' },
    ],
    [
      'multipart with an unknown part',
      raw('--b\r\nContent-Disposition: form-data; name="role"\r\n\r\nadmin\r\n--b--\r\n'),
      400,
      'UNKNOWN_FIELD',
      { contentType: 'multipart/form-data; boundary=b' },
    ],
    [
      'multipart with an HTML file',
      raw(
        '--b\r\nContent-Disposition: form-data; name="id-front"; filename="a.html"\r\nContent-Type: text/html\r\n\r\n<p>\r\n--b--\r\n',
      ),
      400,
      'UNSUPPORTED_FILE_TYPE',
      { contentType: 'multipart/form-data; boundary=b' },
    ],
    [
      'multipart with non-JSON credentialSubject',
      raw('--b\r\nContent-Disposition: form-data; name="credentialSubject"\r\n\r\n{nope\r\n--b--\r\n'),
      400,
      'MALFORMED_JSON',
      { contentType: 'multipart/form-data; boundary=b' },
    ],
  ];

  beforeAll(async () => {
    system = await startSystem({
      env: { ITEM_MAX_FILE_BYTES: String(64 * 1024), ITEM_MAX_TOTAL_BYTES: String(100 * 1024), ITEM_MAX_FILES: '3' },
      worker: false,
    });
  });
  afterAll(async () => {
    await system?.close();
  });

  it('has at least 40 distinct cases', () => {
    expect(new Set(cases.map((c) => c[0])).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(40);
  });

  it.each(cases)('refuses %s', async (_name, body, status, code, options = {}) => {
    const isRaw = typeof body === 'object' && body !== null && 'raw' in body;
    const res = await fetch(`${system.apiUrl}/v1/issuances`, {
      method: 'POST',
      headers: {
        ...API_KEY_HEADER,
        'content-type': options.contentType ?? 'application/json',
        ...options.headers,
      },
      body: isRaw ? (body as { raw: string }).raw : JSON.stringify(body),
    });
    expect({ status: res.status, code: ((await res.json()) as { error: { code: string } }).error.code }).toEqual({
      status,
      code,
    });
  });

  it('recorded, staged and started nothing', async () => {
    expect(await system.db.collection('issuances').countDocuments({})).toBe(0);
    expect(await system.db.collection('staging').countDocuments({})).toBe(0);
    expect(await system.db.collection('stagingBlobs.files').countDocuments({})).toBe(0);
    expect(await countWorkflows(system.client, userId)).toBe(0);
  });
});
