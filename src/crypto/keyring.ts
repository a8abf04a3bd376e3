import { CryptoError } from './keys';

/**
 * A set of 32-byte AES keys by key id. New writes use `activeKeyId`; every listed key still opens
 * what it wrote, so rotation is: put the new key first, keep the old ones until a rewrap has moved
 * every object to the new key, then drop them.
 */
export interface Keyring {
  activeKeyId: string;
  keys: ReadonlyMap<string, Buffer>;
}

const KEY_ID = /^[A-Za-z0-9._-]{1,64}$/;
const BASE64 = /^[A-Za-z0-9+/]{43}=$/; // exactly 32 bytes, canonical padding

const parsed = new Map<string, Keyring>();

/**
 * Parses "kid1:base64key,kid2:base64key"; the FIRST entry is the active key. The same spec gives
 * the same (frozen) object, so per-keyring memoization such as dataConverterFor holds across callers.
 */
export function parseKeyring(spec: string): Keyring {
  let keyring = parsed.get(spec);
  if (!keyring) {
    keyring = parseKeyringSpec(spec);
    parsed.set(spec, keyring);
  }
  return keyring;
}

function parseKeyringSpec(spec: string): Keyring {
  const entries = spec
    .split(',')
    .map((e) => e.trim())
    .filter((e) => e.length > 0);
  if (entries.length === 0) throw invalid('no keys');
  const keys = new Map<string, Buffer>();
  for (const entry of entries) {
    const separator = entry.indexOf(':');
    const kid = entry.slice(0, separator);
    const material = entry.slice(separator + 1);
    if (separator < 0 || !KEY_ID.test(kid)) throw invalid('each entry is kid:base64key, kid of [A-Za-z0-9._-]{1,64}');
    if (!BASE64.test(material)) throw invalid(`key "${kid}" must be 32 bytes of base64`);
    const key = Buffer.from(material, 'base64');
    if (key.length !== 32 || key.toString('base64') !== material)
      throw invalid(`key "${kid}" must be 32 bytes of base64`);
    if (keys.has(kid)) throw invalid(`key id "${kid}" appears twice`);
    keys.set(kid, key);
  }
  return Object.freeze({ activeKeyId: entries[0]!.slice(0, entries[0]!.indexOf(':')), keys });
}

/** The parse error message for a keyring spec, or null when it is valid (for config validation). */
export function keyringSpecError(spec: string): string | null {
  try {
    parseKeyring(spec);
    return null;
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  }
}

export function activeKey(keyring: Keyring): { kid: string; key: Buffer } {
  const key = keyring.keys.get(keyring.activeKeyId);
  if (!key) throw invalid(`active key "${keyring.activeKeyId}" is not in the keyring`);
  return { kid: keyring.activeKeyId, key };
}

function invalid(message: string): CryptoError {
  return new CryptoError('KEYRING_INVALID', `invalid keyring: ${message}`);
}
