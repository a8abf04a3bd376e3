import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { NOBLE, bigIntToBytes, type Curve } from './keys';

/**
 * The optional native addon (native/ec_point.c): a constant-time scalar multiplication in node's
 * own OpenSSL that returns the whole point, which node:crypto cannot. ECIES uses it when present
 * and falls back to node:crypto's x-only ECDH otherwise (src/crypto/ecies.ts); both give the same
 * bytes. `npm ci` builds it (native/build.mjs) and never fails when it cannot.
 *
 * Before the first use the addon must reproduce an independent implementation (@noble/curves) on
 * both curves, for the generator and for another point; an addon that does not is never used.
 */

export interface NativeEc {
  /** k·P (or k·G when `point` is null), uncompressed. `scalar` in [1, n-1]; `point` uncompressed and valid. */
  multiply(curve: Curve, scalar: Buffer, point: Buffer | null): Buffer;
}

export type NativeEcStatus = { available: true; path: string } | { available: false; reason: string };

interface Addon {
  multiply(curve: number, scalar: Buffer, point: Buffer | null): Buffer;
}

const ADDON_PATH = join(__dirname, '..', '..', 'native', 'build', 'Release', 'cak_ec_point.node');
const CURVE_INDEX: Record<Curve, number> = { secp256r1: 0, secp256k1: 1 };
const SCALAR_BYTES = 32;

function isAddon(value: unknown): value is Addon {
  return typeof value === 'object' && value !== null && typeof (value as Addon).multiply === 'function';
}

function wrap(addon: Addon): NativeEc {
  return {
    multiply(curve, scalar, point) {
      // node's ECDH hands out scalars without leading zero bytes; the addon takes exactly 32 (and
      // refuses anything longer).
      const padded =
        scalar.length < SCALAR_BYTES ? Buffer.concat([Buffer.alloc(SCALAR_BYTES - scalar.length), scalar]) : scalar;
      return addon.multiply(CURVE_INDEX[curve], padded, point);
    },
  };
}

/** Known-answer check against @noble/curves; returns what disagreed, or null. */
function selfTestFailure(ec: NativeEc): string | null {
  for (const curve of Object.keys(CURVE_INDEX) as Curve[]) {
    const noble = NOBLE[curve];
    const k = bigIntToBytes(noble.CURVE.n - 0x1234567890abcdefn); // a full-width scalar with a high top byte
    const point = Buffer.from(noble.getPublicKey(bigIntToBytes(0xcafe_f00dn), false));
    if (!ec.multiply(curve, k, null).equals(Buffer.from(noble.getPublicKey(k, false)))) {
      return `${curve}: k·G differs from @noble/curves`;
    }
    if (!ec.multiply(curve, k, point).equals(Buffer.from(noble.getSharedSecret(k, point, false)))) {
      return `${curve}: k·P differs from @noble/curves`;
    }
  }
  return null;
}

function load(): { ec: NativeEc | null; status: NativeEcStatus } {
  if (!existsSync(ADDON_PATH)) {
    return { ec: null, status: { available: false, reason: `not built (${ADDON_PATH} is absent)` } };
  }
  try {
    // process.dlopen, not require: the documented way to load an addon, and not subject to a test
    // runner's module registry.
    const module = { exports: {} as unknown };
    process.dlopen(module, ADDON_PATH);
    const addon = module.exports;
    if (!isAddon(addon)) return { ec: null, status: { available: false, reason: 'addon has no multiply()' } };
    const ec = wrap(addon);
    const failure = selfTestFailure(ec);
    if (failure) return { ec: null, status: { available: false, reason: `self-test failed: ${failure}` } };
    return { ec, status: { available: true, path: ADDON_PATH } };
  } catch (err) {
    return { ec: null, status: { available: false, reason: `failed to load: ${(err as Error).message}` } };
  }
}

let loaded: { ec: NativeEc | null; status: NativeEcStatus } | undefined;

/** The addon, loaded and self-tested on first call; null when it is absent or failed its self-test. */
export function nativeEc(): NativeEc | null {
  loaded ??= load();
  return loaded.ec;
}

/** Whether the addon is in use, and if not why: logged by the worker at start-up, and a worker metric. */
export function nativeEcStatus(): NativeEcStatus {
  loaded ??= load();
  return loaded.status;
}
