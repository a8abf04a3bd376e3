import { z } from 'zod';
import { bodySchema, SESSION_COOKIE } from '../crypto/codec-server';
import { INTERNAL, refusal, route } from './routes';

/**
 * The Temporal Web UI's remote codec, mounted at `/codec` (src/crypto/codec-server.ts registers the
 * handlers): declared here, since the crypto layer knows nothing of the API's declarations.
 */

const codec = { tag: 'codec', auth: 'public' } as const;
const ORIGIN = refusal('cross-origin request from an origin not allowed', 'CODEC_ORIGIN_NOT_ALLOWED');
const html = { mediaType: 'text/html', schema: z.string() };

const getCodecSignIn = route({
  ...codec,
  method: 'get',
  path: '/codec/session',
  operationId: 'getCodecSignIn',
  summary: 'Codec sign-in form (HTML) for Temporal Web UI operators',
  responses: { 200: { description: 'the sign-in form', ...html } },
  errors: { 403: ORIGIN },
});

const signInToCodec = route({
  ...codec,
  method: 'post',
  path: '/codec/session',
  operationId: 'signInToCodec',
  summary: 'Sign in with a codec token; sets the session cookie',
  body: {
    content: {
      'application/x-www-form-urlencoded': {
        name: 'CodecSignIn',
        schema: z.object({ token: z.string().meta({ description: 'one of CODEC_AUTH_TOKENS' }) }),
        examples: { signIn: { summary: 'the form post', value: { token: 'a-codec-token' } } },
      },
    },
  },
  responses: {
    200: {
      description: 'signed in',
      ...html,
      headers: {
        'Set-Cookie': {
          description: `\`${SESSION_COOKIE}\`, HttpOnly, SameSite=Strict, Path=/codec`,
          schema: { type: 'string' },
        },
      },
    },
  },
  errors: {
    400: refusal('the form has no `token` field', 'MISSING_FIELD'),
    401: refusal('unknown token', 'CODEC_UNAUTHENTICATED'),
    403: ORIGIN,
    415: refusal('not an `application/x-www-form-urlencoded` form (a JSON body, say)', 'SESSION_FORM_REQUIRED'),
    429: refusal('too many failed sign-ins from this address', 'AUTH_RATE_LIMITED'),
  },
});

const signOutOfCodec = route({
  ...codec,
  method: 'delete',
  path: '/codec/session',
  operationId: 'signOutOfCodec',
  summary: 'Clear the codec session cookie',
  responses: { 204: { description: 'signed out' } },
  errors: { 403: ORIGIN },
});

const payloadsExample = {
  summary: 'protobuf-JSON payloads (metadata values and data base64)',
  value: { payloads: [{ metadata: { encoding: 'anNvbi9wbGFpbg==' }, data: 'eyJhIjoxfQ==' }] },
};
const transform = (direction: 'encode' | 'decode') =>
  route({
    ...codec,
    auth: 'codec',
    method: 'post',
    path: `/codec/${direction}`,
    operationId: direction === 'encode' ? 'codecEncode' : 'codecDecode',
    summary: `${direction === 'encode' ? 'Encrypt' : 'Decrypt'} Temporal payloads (the Web UI's remote codec)`,
    body: {
      content: {
        'application/json': { name: 'CodecPayloads', schema: bodySchema, examples: { payloads: payloadsExample } },
      },
    },
    responses: {
      200: {
        description: 'the payloads, transformed',
        name: 'CodecPayloadsResult',
        schema: z.object({
          payloads: z.array(z.object({ metadata: z.record(z.string(), z.string()), data: z.string() })),
        }),
      },
    },
    errors: {
      400: refusal(
        'not `{payloads: [...]}`, or a payload the keyring cannot open',
        ...['INVALID_PAYLOADS', 'MALFORMED_JSON', 'CODEC_PAYLOAD_INVALID', 'CODEC_KEY_UNKNOWN'],
      ),
      500: INTERNAL,
    },
  });
export const CODEC_ROUTES = [getCodecSignIn, signInToCodec, signOutOfCodec, transform('encode'), transform('decode')];
