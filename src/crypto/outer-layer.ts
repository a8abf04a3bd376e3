import { gcmOpen, gcmSeal, GCM_NONCE_LENGTH, GCM_TAG_LENGTH, randomNonce } from './aead';
import { activeKey, type Keyring } from './keyring';
import { CryptoError } from './keys';
import { createCipheriv, randomBytes } from 'node:crypto';

/**
 * The issuer-managed outer layer, "cak-outer-v1" (docs/crypto.md). Envelope encryption of an inner
 * ECIES package: a fresh data key (DEK) per object encrypts the body, and a key-encryption key
 * (KEK) from the keyring wraps the DEK.
 *
 *   0x01 | kid length (1 B) | kid (ASCII)
 *   | wrap nonce (12 B) | wrapped DEK (32 B) | wrap tag (16 B)     AES-256-GCM under the KEK
 *   | body nonce (12 B) | body tag (16 B) | body ciphertext        AES-256-GCM under the DEK
 *
 * Both layers authenticate the context (record id, item id), so a package moved to another record
 * or item does not open. The wrap also authenticates the header (version, kid); the body does not,
 * so a rewrap to another KEK replaces only header and wrap and leaves the body bytes untouched.
 */

interface OuterContext {
  recordId: string;
  itemId: string;
}

const VERSION = 0x01;
const DEK_LENGTH = 32;
const WRAP_LENGTH = GCM_NONCE_LENGTH + DEK_LENGTH + GCM_TAG_LENGTH;
const BODY_HEADER_LENGTH = GCM_NONCE_LENGTH + GCM_TAG_LENGTH;
const LABEL = Buffer.from('cak-outer-v1', 'ascii');

function contextBytes(context: OuterContext): Buffer {
  const field = (value: string) => {
    const bytes = Buffer.from(value, 'utf8');
    if (bytes.length === 0 || bytes.length > 0xffff)
      throw new CryptoError('OUTER_FORMAT', 'context ids must be 1..65535 bytes');
    const length = Buffer.alloc(2);
    length.writeUInt16BE(bytes.length);
    return [length, bytes];
  };
  return Buffer.concat([LABEL, ...field(context.recordId), ...field(context.itemId)]);
}

function header(kid: string): Buffer {
  const kidBytes = Buffer.from(kid, 'ascii');
  return Buffer.concat([Buffer.from([VERSION, kidBytes.length]), kidBytes]);
}

interface Parsed {
  kid: string;
  header: Buffer;
  wrapNonce: Buffer;
  wrappedDek: Buffer;
  wrapTag: Buffer;
  body: Buffer; // body nonce || body tag || body ciphertext
}

function parse(sealed: Uint8Array): Parsed {
  const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.length);
  if (bytes.length < 2 || bytes[0] !== VERSION) throw new CryptoError('OUTER_FORMAT', 'not a cak-outer-v1 package');
  const kidLength = bytes[1]!;
  const headerLength = 2 + kidLength;
  if (kidLength === 0 || bytes.length < headerLength + WRAP_LENGTH + BODY_HEADER_LENGTH) {
    throw new CryptoError('OUTER_FORMAT', 'outer package is truncated');
  }
  let at = headerLength;
  const take = (n: number) => bytes.subarray(at, (at += n));
  return {
    kid: bytes.subarray(2, headerLength).toString('ascii'),
    header: bytes.subarray(0, headerLength),
    wrapNonce: take(GCM_NONCE_LENGTH),
    wrappedDek: take(DEK_LENGTH),
    wrapTag: take(GCM_TAG_LENGTH),
    body: bytes.subarray(at),
  };
}

function unwrapDek(keyring: Keyring, parsed: Parsed, context: Buffer): Buffer {
  const kek = keyring.keys.get(parsed.kid);
  if (!kek) throw new CryptoError('OUTER_KEY_UNKNOWN', `outer key "${parsed.kid}" is not in the keyring`);
  const dek = gcmOpen(
    kek,
    parsed.wrapNonce,
    parsed.wrappedDek,
    parsed.wrapTag,
    Buffer.concat([parsed.header, context]),
  );
  if (!dek) {
    throw new CryptoError(
      'OUTER_CONTEXT_MISMATCH',
      'outer package does not belong to this record and item, or was altered',
    );
  }
  return dek;
}

function wrap(keyring: Keyring, dek: Buffer, context: Buffer): Buffer {
  const { kid, key } = activeKey(keyring);
  const head = header(kid);
  const nonce = randomNonce();
  const { ciphertext, tag } = gcmSeal(key, nonce, dek, Buffer.concat([head, context]));
  return Buffer.concat([head, nonce, ciphertext, tag]);
}

export function sealOuter(keyring: Keyring, inner: Uint8Array, context: OuterContext): Buffer {
  const aad = contextBytes(context);
  const dek = randomBytes(DEK_LENGTH);
  const nonce = randomNonce();
  const { ciphertext, tag } = gcmSeal(dek, nonce, inner, aad);
  const wrapped = wrap(keyring, dek, aad);
  dek.fill(0);
  return Buffer.concat([wrapped, nonce, tag, ciphertext]);
}

/** A seal fed in pieces (an item streamed from a request, never held whole); see `createOuterSealer`. */
interface OuterSealer {
  /** length of the head (header, wrap, body nonce, body tag) that goes before the body ciphertext */
  readonly headLength: number;
  /** body ciphertext for the next plaintext piece */
  update(plaintext: Uint8Array): Buffer;
  /** the head, known once the body ends: `head || every update` is what `sealOuter` makes of the whole */
  final(): Buffer;
}

export function createOuterSealer(keyring: Keyring, context: OuterContext): OuterSealer {
  const aad = contextBytes(context);
  const dek = randomBytes(DEK_LENGTH);
  const nonce = randomNonce();
  const wrapped = wrap(keyring, dek, aad);
  const cipher = createCipheriv('aes-256-gcm', dek, nonce, { authTagLength: GCM_TAG_LENGTH });
  cipher.setAAD(aad);
  dek.fill(0); // the cipher holds its own copy
  return {
    headLength: wrapped.length + BODY_HEADER_LENGTH,
    update: (plaintext) => cipher.update(plaintext),
    final() {
      if (cipher.final().length !== 0) throw new CryptoError('OUTER_FORMAT', 'GCM left bytes at the end');
      return Buffer.concat([wrapped, nonce, cipher.getAuthTag()]);
    },
  };
}

export function openOuter(keyring: Keyring, sealed: Uint8Array, context: OuterContext): Buffer {
  const aad = contextBytes(context);
  const parsed = parse(sealed);
  const dek = unwrapDek(keyring, parsed, aad);
  const nonce = parsed.body.subarray(0, GCM_NONCE_LENGTH);
  const tag = parsed.body.subarray(GCM_NONCE_LENGTH, BODY_HEADER_LENGTH);
  const inner = gcmOpen(dek, nonce, parsed.body.subarray(BODY_HEADER_LENGTH), tag, aad);
  dek.fill(0);
  if (!inner) throw new CryptoError('OUTER_BODY_INVALID', 'outer package body failed authentication');
  return inner;
}

/** Re-wraps the data key under the active KEK; the body bytes are copied unchanged. */
export function rewrapOuter(keyring: Keyring, sealed: Uint8Array, context: OuterContext): Buffer {
  const aad = contextBytes(context);
  const parsed = parse(sealed);
  const dek = unwrapDek(keyring, parsed, aad);
  const wrapped = wrap(keyring, dek, aad);
  dek.fill(0);
  return Buffer.concat([wrapped, parsed.body]);
}

/** The key id an outer package is wrapped under (to find objects still on an old key). */
export function outerKeyId(sealed: Uint8Array): string {
  return parse(sealed).kid;
}
