import { CryptoError } from '../../src/crypto/keys';

/**
 * The code of the CryptoError `fn` throws, or 'OK' when it throws nothing. Any other error is
 * rethrown, so an unexpected failure is never mistaken for a refusal.
 */
export function codeOf(fn: () => unknown): string {
  try {
    fn();
  } catch (err) {
    if (err instanceof CryptoError) return err.code;
    throw err;
  }
  return 'OK';
}
