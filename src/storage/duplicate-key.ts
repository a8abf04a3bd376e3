import { MongoServerError } from 'mongodb';

/** E11000: a unique index (or `_id`) refused the write. */
export const DUPLICATE_KEY_CODE = 11000;

export function isDuplicateKey(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY_CODE;
}
