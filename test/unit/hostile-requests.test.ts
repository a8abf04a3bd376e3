import { generateKeyPair, SignJWT } from 'jose';
import type { Config } from '../../src/config';
import { DEV_ISSUER_DID } from '../../src/config';
import { signPackageToken } from '../../src/domain/authorization-url';
import {
  HOSTILE_ENV,
  admin,
  adminPost,
  apiKey,
  callbackPayload,
  codecPost,
  deep,
  issuance,
  json,
  minutes,
  png,
  postCallback,
  postIssuance,
  send,
  signedCallback,
  startUnitApi,
  userId,
  type Case,
  type UnitApi,
} from '../support/hostile';
import { markedPng } from '../support/scans';

/**
 * Hostile requests across every route, as a table: each gets its 4xx and its code, none gets a
 * 5xx. Groups: transport and framing, content type and encoding, size, JSON shape and depth,
 * identifiers, keys, signatures and replay, auth and tokens, rate and abuse. The whole app as
 * `startApi` wires it (the real parsers, verifiers, registry and limits) on an empty database that
 * refuses writes and a Temporal that refuses calls: a request refused any later than it should be
 * reaches a write and gets a 5xx. What needs the real services (answers from a database lookup,
 * and that nothing was recorded) is in test/integration/hostile-requests.test.ts.
 */

let api: UnitApi;
let config: Config;
let verifierJwt: (claims: Record<string, unknown>, options?: { alg?: string; exp?: number }) => Promise<string>;

const cases: Case[] = [
  // transport and framing
  ['framing', 'an unknown route', () => ({ path: '/v1/nope' }), 404, 'NOT_FOUND'],
  [
    'framing',
    'a method the route does not have',
    () => ({ method: 'PUT', path: '/v1/issuances', headers: apiKey }),
    404,
    'NOT_FOUND',
  ],
  ['framing', 'DELETE on the Verifier API', () => ({ method: 'DELETE', path: '/v1/verifier/data' }), 404, 'NOT_FOUND'],
  ['framing', 'a 4 KB path', () => ({ path: `/v1/${'a'.repeat(4096)}` }), 404, 'NOT_FOUND'],
  [
    'framing',
    'an issuance under Content-Encoding x-foo',
    () => postIssuance(issuance(), { 'content-encoding': 'x-foo' }),
    415,
    'UNSUPPORTED_ENCODING',
  ],
  [
    'framing',
    'an issuance claiming gzip that is not',
    () => postIssuance(issuance(), { 'content-encoding': 'gzip' }),
    400,
    'MALFORMED_ENCODING',
  ],
  [
    'framing',
    'a callback under Content-Encoding gzip',
    () => ({
      ...postCallback(JSON.stringify(callbackPayload)),
      headers: { ...signedCallback(JSON.stringify(callbackPayload)), 'content-encoding': 'gzip' },
    }),
    415,
    'UNSUPPORTED_ENCODING',
  ],
  [
    'framing',
    'a callback under Content-Encoding x-foo',
    () => ({
      ...postCallback(JSON.stringify(callbackPayload)),
      headers: { ...signedCallback(JSON.stringify(callbackPayload)), 'content-encoding': 'x-foo' },
    }),
    415,
    'UNSUPPORTED_ENCODING',
  ],
  [
    'framing',
    'an admin body under Content-Encoding x-foo',
    () => adminPost('/v1/admin/authorizations/revoke', callbackPayload, { 'content-encoding': 'x-foo' }),
    415,
    'UNSUPPORTED_ENCODING',
  ],
  [
    'framing',
    'a codec body under Content-Encoding x-foo',
    () => codecPost('/codec/decode', '{"payloads":[]}', { 'content-encoding': 'x-foo' }),
    415,
    'UNSUPPORTED_ENCODING',
  ],
  [
    'framing',
    'malformed JSON to the admin API',
    () => adminPost('/v1/admin/authorizations/revoke', '{"userId": '),
    400,
    'MALFORMED_JSON',
  ],
  ['framing', 'malformed JSON to the codec', () => codecPost('/codec/decode', '{nope'), 400, 'MALFORMED_JSON'],
  ['framing', 'malformed JSON issuance', () => postIssuance('{"userId": '), 400, 'MALFORMED_JSON'],
  // content type and encoding
  [
    'content type',
    'an issuance as text/plain',
    () => postIssuance(issuance(), { 'content-type': 'text/plain' }),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'content type',
    'an issuance without a content type',
    () => ({ ...postIssuance(issuance()), headers: { ...apiKey } }),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'content type',
    'an issuance in latin1',
    () => postIssuance(issuance(), { 'content-type': 'application/json; charset=latin1' }),
    415,
    'UNSUPPORTED_CHARSET',
  ],
  [
    'content type',
    'an issuance as a url-encoded form',
    () => postIssuance('userId=x', { 'content-type': 'application/x-www-form-urlencoded' }),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'content type',
    'multipart without a boundary',
    () => postIssuance('--b--', { 'content-type': 'multipart/form-data' }),
    400,
    'MALFORMED_MULTIPART',
  ],
  [
    'content type',
    'a callback as text/plain',
    () => ({
      ...postCallback(JSON.stringify(callbackPayload)),
      headers: { ...signedCallback(JSON.stringify(callbackPayload)), 'content-type': 'text/plain' },
    }),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'content type',
    'a callback in latin1',
    () => ({
      ...postCallback(JSON.stringify(callbackPayload)),
      headers: {
        ...signedCallback(JSON.stringify(callbackPayload)),
        'content-type': 'application/json; charset=latin1',
      },
    }),
    415,
    'UNSUPPORTED_MEDIA_TYPE',
  ],
  [
    'content type',
    'a JSON codec sign-in',
    () => ({ method: 'POST', path: '/codec/session', headers: json, body: '{"token":"x"}' }),
    415,
    'SESSION_FORM_REQUIRED',
  ],
  [
    'content type',
    'a codec sign-in without a token',
    () => ({
      method: 'POST',
      path: '/codec/session',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'nothing=1',
    }),
    400,
    'MISSING_FIELD',
  ],
  [
    'content type',
    'a partner-token request as text/plain',
    () => ({
      method: 'POST',
      path: '/v1/partner-tokens',
      headers: { ...apiKey, 'content-type': 'text/plain' },
      body: 'scope=issue',
    }),
    400,
    'INVALID_TOKEN_REQUEST',
  ],
  // size
  [
    'size',
    'a 5 KB callback',
    () => postCallback(JSON.stringify({ ...callbackPayload, pad: 'x'.repeat(5_000) })),
    413,
    'BODY_TOO_LARGE',
  ],
  [
    'size',
    'a 9 KB admin body',
    () => adminPost('/v1/admin/authorizations/revoke', { ...callbackPayload, pad: 'x'.repeat(9_000) }),
    413,
    'BODY_TOO_LARGE',
  ],
  [
    'size',
    'a 9 MB codec body',
    () =>
      codecPost('/codec/decode', JSON.stringify({ payloads: [{ metadata: {}, data: 'A'.repeat(9 * 1024 * 1024) }] })),
    413,
    'BODY_TOO_LARGE',
  ],
  [
    'size',
    'a file over the per-file limit',
    () =>
      postIssuance(
        issuance({
          files: [{ kind: 'id-front', contentType: 'image/png', data: markedPng('BIG', 70 * 1024).toString('base64') }],
        }),
      ),
    400,
    'FILE_TOO_LARGE',
  ],
  [
    'size',
    'more files than allowed',
    () =>
      postIssuance(
        issuance({
          schemaId: 'kyc-basic',
          files: ['id-front', 'id-back', 'face-photo', 'x-a'].map((kind) => ({
            kind,
            contentType: 'image/png',
            data: png,
          })),
        }),
      ),
    400,
    'TOO_MANY_FILES',
  ],
  [
    'size',
    'a 20 KB credentialSubject',
    () =>
      postIssuance(
        issuance({
          credentialSubject: {
            note: 'x'.repeat(4_000),
            a: 'x'.repeat(4_000),
            b: 'x'.repeat(4_000),
            c: 'x'.repeat(4_000),
            d: 'x'.repeat(4_000),
          },
        }),
      ),
    400,
    'SUBJECT_TOO_LARGE',
  ],
  [
    'size',
    'a 5 KB Verifier token',
    () => ({
      path: `/v1/verifier/data?userId=${userId}&schemaId=kyc-basic`,
      headers: { authorization: `Bearer ${'a'.repeat(2_500)}.${'b'.repeat(2_500)}.c` },
    }),
    401,
    'VERIFIER_UNAUTHENTICATED',
  ],
  [
    'size',
    'an overlong package token',
    () => ({ path: `/v1/verifier/packages/${'a'.repeat(3_000)}.${'b'.repeat(43)}` }),
    403,
    'URL_INVALID',
  ],
  [
    'size',
    'an over-long API key',
    () => postIssuance(issuance(), { 'x-api-key': 'k'.repeat(1_000) }),
    401,
    'UNAUTHENTICATED',
  ],
  // JSON shape and depth
  ['json', 'an issuance that is an array', () => postIssuance([issuance()]), 400, 'INVALID_BODY'],
  ['json', 'an issuance that is a string', () => postIssuance('"hello"'), 400, 'MALFORMED_JSON'],
  ['json', 'an issuance that is null', () => postIssuance('null'), 400, 'MALFORMED_JSON'],
  [
    'json',
    'a credentialSubject 50 levels deep',
    () => postIssuance(issuance({ credentialSubject: { a: deep(50) } })),
    400,
    'JSON_TOO_DEEP',
  ],
  [
    'json',
    '$where in credentialSubject',
    () => postIssuance(issuance({ credentialSubject: { $where: 'sleep(1)' } })),
    400,
    'UNSAFE_KEY',
  ],
  ['json', 'a dotted key', () => postIssuance(issuance({ credentialSubject: { 'a.b': 1 } })), 400, 'UNSAFE_KEY'],
  [
    'json',
    '__proto__ at the top',
    () => postIssuance(`{"__proto__":{"admin":true},${JSON.stringify(issuance()).slice(1)}`),
    400,
    'UNSAFE_KEY',
  ],
  ['json', 'an unknown issuance field', () => postIssuance(issuance({ role: 'admin' })), 400, 'UNKNOWN_FIELD'],
  [
    'json',
    '500 keys in credentialSubject',
    () =>
      postIssuance(
        issuance({ credentialSubject: Object.fromEntries(Array.from({ length: 500 }, (_, i) => [`k${i}`, i])) }),
      ),
    400,
    'JSON_TOO_MANY_KEYS',
  ],
  ['json', 'a callback that is an array', () => postCallback(JSON.stringify([callbackPayload])), 400, 'INVALID_BODY'],
  [
    'json',
    'a callback with a nested object',
    () => postCallback(JSON.stringify({ ...callbackPayload, extra: { a: 1 } })),
    400,
    'UNKNOWN_FIELD',
  ],
  [
    'json',
    'a callback with an unknown field',
    () => postCallback(JSON.stringify({ ...callbackPayload, issuerDid: DEV_ISSUER_DID })),
    400,
    'UNKNOWN_FIELD',
  ],
  [
    'json',
    'a callback with a numeric userId',
    () => postCallback(JSON.stringify({ ...callbackPayload, userId: 42 })),
    400,
    'INVALID_FIELD',
  ],
  [
    'json',
    'a callback missing schemaId',
    () => postCallback(JSON.stringify({ userId, verifierDid: callbackPayload.verifierDid })),
    400,
    'MISSING_FIELD',
  ],
  [
    'json',
    'an admin body that is an array',
    () => adminPost('/v1/admin/authorizations/revoke', [callbackPayload]),
    400,
    'INVALID_FIELD',
  ],
  [
    'json',
    'an admin body with an unknown field',
    () => adminPost('/v1/admin/authorizations/revoke', { ...callbackPayload, by: 'me' }),
    400,
    'INVALID_FIELD',
  ],
  [
    'json',
    'a codec body without payloads as a list',
    () => codecPost('/codec/decode', '{"payloads":{}}'),
    400,
    'INVALID_PAYLOADS',
  ],
  ['json', 'a codec body with an unknown key', () => codecPost('/codec/decode', '{"nope":1}'), 400, 'INVALID_PAYLOADS'],
  [
    'json',
    'a codec payload that is not base64',
    () => codecPost('/codec/decode', '{"payloads":[{"metadata":{},"data":"***"}]}'),
    400,
    'INVALID_PAYLOADS',
  ],
  [
    'json',
    'a partner-token request for an unknown scope',
    () => ({
      method: 'POST',
      path: '/v1/partner-tokens',
      headers: { ...json, ...apiKey },
      body: '{"scope":"admin"}',
    }),
    400,
    'INVALID_TOKEN_REQUEST',
  ],
  // identifiers
  ['identifiers', 'a userId with a space', () => postIssuance(issuance({ userId: 'a b' })), 400, 'INVALID_FIELD'],
  [
    'identifiers',
    'an email as userId',
    () => postIssuance(issuance({ userId: 'ada@example.com' })),
    400,
    'INVALID_FIELD',
  ],
  [
    'identifiers',
    'a 200-character userId',
    () => postIssuance(issuance({ userId: 'u'.repeat(200) })),
    400,
    'INVALID_FIELD',
  ],
  [
    'identifiers',
    'an issuerDid that is not a DID',
    () => postIssuance(issuance({ issuerDid: 'issuer' })),
    400,
    'INVALID_FIELD',
  ],
  [
    'identifiers',
    'an issuer DID not served here',
    () => postIssuance(issuance({ issuerDid: 'did:air:id:elsewhere' })),
    403,
    'ISSUER_NOT_SERVED',
  ],
  [
    'identifiers',
    'an unregistered schema',
    () => postIssuance(issuance({ schemaId: 'no-such' })),
    400,
    'UNKNOWN_SCHEMA',
  ],
  [
    'identifiers',
    'an unregistered program',
    () => postIssuance(issuance({ credentialId: 'prog-nobody' })),
    400,
    'UNKNOWN_PROGRAM',
  ],
  [
    'identifiers',
    "another schema's program",
    () => postIssuance(issuance({ credentialId: 'prog-proof-of-address' })),
    400,
    'PROGRAM_SCHEMA_MISMATCH',
  ],
  [
    'identifiers',
    'a file kind the schema does not allow',
    () => postIssuance(issuance({ files: [{ kind: 'utility-bill', contentType: 'image/png', data: png }] })),
    400,
    'ITEM_NOT_ALLOWED',
  ],
  ['identifiers', 'an unknown curve', () => postIssuance(issuance({ curve: 'ed25519' })), 400, 'INVALID_CURVE'],
  [
    'identifiers',
    'a malformed Idempotency-Key',
    () => postIssuance(issuance(), { 'idempotency-key': 'a b' }),
    400,
    'INVALID_IDEMPOTENCY_KEY',
  ],
  [
    'identifiers',
    'a malformed issuance id',
    () => ({ path: '/v1/issuances/../../etc', headers: apiKey }),
    404,
    'NOT_FOUND',
  ],
  [
    'identifiers',
    'a callback userId with a space',
    () => postCallback(JSON.stringify({ ...callbackPayload, userId: 'a b' })),
    400,
    'INVALID_FIELD',
  ],
  [
    'identifiers',
    'a callback verifierDid that is not a DID',
    () => postCallback(JSON.stringify({ ...callbackPayload, verifierDid: 'verifier' })),
    400,
    'INVALID_FIELD',
  ],
  [
    'identifiers',
    'an admin revoke of a malformed DID',
    () => adminPost('/v1/admin/authorizations/revoke', { ...callbackPayload, verifierDid: 'x' }),
    400,
    'INVALID_FIELD',
  ],
  [
    'identifiers',
    'an admin list with an unknown state',
    () => ({ path: '/v1/admin/authorizations?state=bogus', headers: admin }),
    400,
    'INVALID_FIELD',
  ],
  [
    'identifiers',
    'an admin list with limit 501',
    () => ({ path: '/v1/admin/authorizations?limit=501', headers: admin }),
    400,
    'INVALID_FIELD',
  ],
  // keys
  [
    'keys',
    'a cakPublicKey that is not hex or base64',
    () => postIssuance(issuance({ cakPublicKey: 'not a key!' })),
    400,
    'INVALID_CAK_PUBLIC_KEY',
  ],
  [
    'keys',
    'a point not on P-256',
    () => postIssuance(issuance({ cakPublicKey: `04${'11'.repeat(64)}` })),
    400,
    'INVALID_CAK_PUBLIC_KEY',
  ],
  [
    'keys',
    'the point at infinity',
    () => postIssuance(issuance({ cakPublicKey: '00' })),
    400,
    'INVALID_CAK_PUBLIC_KEY',
  ],
  [
    'keys',
    'a compressed key with a bad prefix',
    () => postIssuance(issuance({ cakPublicKey: `05${'11'.repeat(32)}` })),
    400,
    'INVALID_CAK_PUBLIC_KEY',
  ],
  [
    'keys',
    'a 600-character key',
    () => postIssuance(issuance({ cakPublicKey: 'a'.repeat(600) })),
    400,
    'INVALID_FIELD',
  ],
  [
    'keys',
    'a Verifier JWK that is RSA',
    () => ({
      method: 'PUT',
      path: '/v1/admin/verifiers/keys',
      headers: { ...json, ...admin },
      body: JSON.stringify({
        verifierDid: callbackPayload.verifierDid,
        jwk: { kty: 'RSA', n: 'x', e: 'AQAB', kid: 'k' },
      }),
    }),
    400,
    'INVALID_FIELD',
  ],
  [
    'keys',
    'a Verifier JWK with a short coordinate',
    () => ({
      method: 'PUT',
      path: '/v1/admin/verifiers/keys',
      headers: { ...json, ...admin },
      body: JSON.stringify({
        verifierDid: callbackPayload.verifierDid,
        jwk: { kty: 'EC', crv: 'P-256', x: 'AAAA', y: 'AAAA', kid: 'k' },
      }),
    }),
    400,
    'INVALID_FIELD',
  ],
  [
    'keys',
    'a Verifier JWK carrying a private part',
    () => ({
      method: 'PUT',
      path: '/v1/admin/verifiers/keys',
      headers: { ...json, ...admin },
      body: JSON.stringify({
        verifierDid: callbackPayload.verifierDid,
        jwk: { kty: 'EC', crv: 'P-256', x: 'A'.repeat(43), y: 'A'.repeat(43), d: 'A'.repeat(43), kid: 'k' },
      }),
    }),
    400,
    'INVALID_FIELD',
  ],
  // signatures and replay
  [
    'signatures',
    'a callback without signature headers',
    () => postCallback(JSON.stringify(callbackPayload), json),
    401,
    'SIGNATURE_MISSING',
  ],
  [
    'signatures',
    'a callback signed with another secret',
    () =>
      postCallback(
        JSON.stringify(callbackPayload),
        signedCallback(JSON.stringify(callbackPayload), {
          secret: `whsec_${Buffer.from('an-attacker-guessed-secret!!').toString('base64')}`,
        }),
      ),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'signatures',
    'a body changed after signing',
    () =>
      postCallback(
        JSON.stringify({ ...callbackPayload, userId: 'someone-else' }),
        signedCallback(JSON.stringify(callbackPayload)),
      ),
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'signatures',
    'a BOM added after signing',
    () => {
      const body = JSON.stringify(callbackPayload);
      return postCallback(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(body)]), signedCallback(body));
    },
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'signatures',
    'a BOM that was signed',
    () => postCallback(Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), Buffer.from(JSON.stringify(callbackPayload))])),
    400,
    'MALFORMED_JSON',
  ],
  [
    'signatures',
    'a replay signed 10 minutes ago',
    () =>
      postCallback(
        JSON.stringify(callbackPayload),
        signedCallback(JSON.stringify(callbackPayload), { timestamp: minutes(-10) }),
      ),
    401,
    'SIGNATURE_TIMESTAMP_STALE',
  ],
  [
    'signatures',
    'a timestamp 10 minutes ahead',
    () =>
      postCallback(
        JSON.stringify(callbackPayload),
        signedCallback(JSON.stringify(callbackPayload), { timestamp: minutes(10) }),
      ),
    401,
    'SIGNATURE_TIMESTAMP_FUTURE',
  ],
  [
    'signatures',
    'a millisecond timestamp',
    () => {
      const body = JSON.stringify(callbackPayload);
      const h = signedCallback(body);
      return postCallback(body, { ...h, 'webhook-timestamp': String(Date.now()) });
    },
    401,
    'SIGNATURE_MALFORMED',
  ],
  [
    'signatures',
    'a signature under v2',
    () => {
      const body = JSON.stringify(callbackPayload);
      const h = signedCallback(body);
      return postCallback(body, { ...h, 'webhook-signature': h['webhook-signature']!.replace('v1,', 'v2,') });
    },
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'signatures',
    'a webhook-id changed after signing',
    () => {
      const body = JSON.stringify(callbackPayload);
      return postCallback(body, { ...signedCallback(body), 'webhook-id': 'msg_other' });
    },
    401,
    'SIGNATURE_INVALID',
  ],
  [
    'signatures',
    'a forged package URL',
    () => ({
      path: `/v1/verifier/packages/${signPackageToken('an-attacker-secret-of-at-least-32-chars!', { pur: 'package', aid: 'auth_x', rid: 'rec_x', pid: 'p', exp: Math.floor(Date.now() / 1000) + 60 })}`,
    }),
    403,
    'URL_INVALID',
  ],
  [
    'signatures',
    'an expired package URL',
    () => ({
      path: `/v1/verifier/packages/${signPackageToken(config.SIGNED_URL_SECRET, { pur: 'package', aid: 'auth_x', rid: 'rec_x', pid: 'p', exp: Math.floor(Date.now() / 1000) - 1 })}`,
    }),
    403,
    'URL_EXPIRED',
  ],
  // auth and tokens
  [
    'auth',
    'an issuance without an API key',
    () => ({ ...postIssuance(issuance()), headers: json }),
    401,
    'UNAUTHENTICATED',
  ],
  [
    'auth',
    'an issuance with a wrong API key',
    () => postIssuance(issuance(), { 'x-api-key': 'not-the-key' }),
    401,
    'UNAUTHENTICATED',
  ],
  [
    'auth',
    'a status read without an API key',
    () => ({ path: `/v1/issuances/iss_${'A'.repeat(24)}` }),
    401,
    'UNAUTHENTICATED',
  ],
  [
    'auth',
    'a partner token without an API key',
    () => ({ method: 'POST', path: '/v1/partner-tokens', headers: json, body: '{"scope":"issue"}' }),
    401,
    'UNAUTHENTICATED',
  ],
  [
    'auth',
    'Verifier data without a token',
    () => ({ path: `/v1/verifier/data?userId=${userId}&schemaId=kyc-basic` }),
    401,
    'VERIFIER_UNAUTHENTICATED',
  ],
  [
    'auth',
    'Verifier data with a Basic credential',
    () => ({
      path: `/v1/verifier/data?userId=${userId}&schemaId=kyc-basic`,
      headers: { authorization: 'Basic dXNlcjpwYXNz' },
    }),
    401,
    'VERIFIER_UNAUTHENTICATED',
  ],
  [
    'auth',
    'a Verifier JWT that is not a JWT',
    () => ({
      path: `/v1/verifier/data?userId=${userId}&schemaId=kyc-basic`,
      headers: { authorization: 'Bearer a.b.c' },
    }),
    401,
    'VERIFIER_UNAUTHENTICATED',
  ],
  [
    'auth',
    'a Verifier JWT with alg none',
    () => ({
      path: `/v1/verifier/data?userId=${userId}&schemaId=kyc-basic`,
      headers: {
        authorization: `Bearer ${Buffer.from('{"alg":"none"}').toString('base64url')}.${Buffer.from(JSON.stringify({ iss: callbackPayload.verifierDid, sub: callbackPayload.verifierDid, aud: 'cak-issuer', iat: Math.floor(Date.now() / 1000), exp: Math.floor(Date.now() / 1000) + 60 })).toString('base64url')}.`,
      },
    }),
    401,
    'VERIFIER_UNAUTHENTICATED',
  ],
  [
    'auth',
    'a Verifier JWT from an unregistered DID',
    async () => ({
      path: `/v1/verifier/data?userId=${userId}&schemaId=kyc-basic`,
      headers: { authorization: `Bearer ${await verifierJwt({})}` },
    }),
    401,
    'VERIFIER_UNAUTHENTICATED',
  ],
  [
    'auth',
    'an admin route without a token',
    () => ({ path: '/v1/admin/authorizations' }),
    401,
    'ADMIN_UNAUTHENTICATED',
  ],
  [
    'auth',
    'an admin route with a wrong token',
    () => ({ path: '/v1/admin/authorizations', headers: { authorization: 'Bearer not-the-admin-token' } }),
    401,
    'ADMIN_UNAUTHENTICATED',
  ],
  [
    'auth',
    'an admin route with the API key',
    () => ({ path: '/v1/admin/authorizations', headers: apiKey }),
    401,
    'ADMIN_UNAUTHENTICATED',
  ],
  [
    'auth',
    'a codec call without a token',
    () => ({ method: 'POST', path: '/codec/decode', headers: json, body: '{"payloads":[]}' }),
    401,
    'CODEC_UNAUTHENTICATED',
  ],
  [
    'auth',
    'a codec call with a wrong token',
    () => codecPost('/codec/decode', '{"payloads":[]}', { authorization: 'Bearer not-the-codec-token-at-all' }),
    401,
    'CODEC_UNAUTHENTICATED',
  ],
  [
    'auth',
    'a codec call from a foreign origin',
    () => codecPost('/codec/decode', '{"payloads":[]}', { origin: 'https://evil.example' }),
    403,
    'CODEC_ORIGIN_NOT_ALLOWED',
  ],
  [
    'auth',
    'a codec sign-in with a wrong token',
    () => ({
      method: 'POST',
      path: '/codec/session',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: 'token=wrong-token-0123456789',
    }),
    401,
    'CODEC_UNAUTHENTICATED',
  ],
  [
    'auth',
    'a forged codec session cookie',
    () => ({
      method: 'POST',
      path: '/codec/decode',
      headers: { ...json, cookie: 'cak_codec_session=9999999999999.abc.def' },
      body: '{"payloads":[]}',
    }),
    401,
    'CODEC_UNAUTHENTICATED',
  ],
  // rate and abuse (limits themselves: the next describe)
  [
    'abuse',
    'a 20 KB header',
    () => ({ path: '/healthz', headers: { 'x-junk': 'j'.repeat(20_000) } }),
    431,
    'HEADERS_TOO_LARGE',
  ],
  [
    'abuse',
    'userId given twice in the Verifier query',
    async () => ({
      path: `/v1/verifier/data?userId=a&userId=b&schemaId=kyc-basic`,
      headers: { authorization: `Bearer ${await verifierJwt({})}` },
    }),
    401,
    'VERIFIER_UNAUTHENTICATED',
  ],
  [
    'abuse',
    'an admin list with 2,000 query parameters',
    () => ({
      path: `/v1/admin/authorizations?${Array.from({ length: 2_000 }, (_, i) => `p${i}=1`).join('&')}`,
      headers: admin,
    }),
    400,
    'JSON_TOO_MANY_KEYS',
  ],
];

beforeAll(async () => {
  api = await startUnitApi(HOSTILE_ENV);
  config = api.config;
  const { privateKey } = await generateKeyPair('ES256');
  verifierJwt = (claims, options = {}) =>
    new SignJWT({ ...claims })
      .setProtectedHeader({ alg: options.alg ?? 'ES256' })
      .setIssuer(callbackPayload.verifierDid)
      .setSubject(callbackPayload.verifierDid)
      .setAudience('cak-issuer')
      .setIssuedAt()
      .setExpirationTime(options.exp ?? Math.floor(Date.now() / 1000) + 60)
      .sign(privateKey);
});
afterAll(async () => {
  await api?.close();
});

describe('hostile requests, every route', () => {
  it('has at least 100 distinct cases in every group', () => {
    expect(new Set(cases.map((c) => c[1])).size).toBe(cases.length);
    expect(cases.length).toBeGreaterThanOrEqual(100);
    expect(new Set(cases.map((c) => c[0]))).toEqual(
      new Set(['framing', 'content type', 'size', 'json', 'identifiers', 'keys', 'signatures', 'auth', 'abuse']),
    );
  });

  it.each(cases)('%s: %s', async (_group, _name, make, status, code) => {
    const answer = await send(api.url, await make());
    expect(answer).toEqual({ status, code });
  });

  it('none reached a write or Temporal', () => {
    expect(api.writes).toEqual([]);
  });
});
