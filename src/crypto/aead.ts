import { createCipheriv, createDecipheriv, randomFillSync } from 'node:crypto';

/** AES-256-GCM with a 12-byte random nonce and a 16-byte tag, for the issuer-held keys. */
export const GCM_NONCE_LENGTH = 12;
export const GCM_TAG_LENGTH = 16;

export function randomNonce(): Buffer {
  return randomFillSync(Buffer.allocUnsafe(GCM_NONCE_LENGTH));
}

/** Returns ciphertext and tag separately; `aad` authenticates context that is not encrypted. */
export function gcmSeal(
  key: Buffer,
  nonce: Buffer,
  plaintext: Uint8Array,
  aad: Buffer,
): { ciphertext: Buffer; tag: Buffer } {
  const cipher = createCipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_LENGTH });
  cipher.setAAD(aad);
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return { ciphertext, tag: cipher.getAuthTag() };
}

/** Returns the plaintext, or null when authentication fails (callers map that to their own error). */
export function gcmOpen(
  key: Buffer,
  nonce: Uint8Array,
  ciphertext: Uint8Array,
  tag: Uint8Array,
  aad: Buffer,
): Buffer | null {
  const decipher = createDecipheriv('aes-256-gcm', key, nonce, { authTagLength: GCM_TAG_LENGTH });
  decipher.setAAD(aad);
  decipher.setAuthTag(tag);
  const out = decipher.update(ciphertext);
  try {
    return Buffer.concat([out, decipher.final()]);
  } catch {
    out.fill(0);
    return null;
  }
}
