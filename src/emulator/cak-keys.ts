import { hkdfSync } from 'node:crypto';
import { p256 } from '@noble/curves/p256';
import { secp256k1 } from '@noble/curves/secp256k1';
import type { CakCurve } from '../domain/issuance';

/**
 * The emulator's stand-in for the platform's deterministic CAK key pairs: the scalar is
 * HKDF-SHA256(masterSecret, salt, info = curve + triple) reduced into [1, n-1], so one
 * (user, issuer, schema, curve) always gives the same pair, as the platform promises.
 * Keys are hex: the public key SEC1 uncompressed (04 || x || y), the private key the 32-byte scalar.
 */

export interface CakTriple {
  userId: string;
  issuerDid: string;
  schemaId: string;
}

const CURVES = { secp256r1: p256, secp256k1 } as const;

export function deriveCakKeyPair(
  masterSecret: string,
  triple: CakTriple,
  curve: CakCurve,
): { publicKey: string; privateKey: string } {
  const info = [curve, triple.userId, triple.issuerDid, triple.schemaId]
    .map((p) => `${Buffer.byteLength(p)}:${p}`)
    .join('|');
  const okm = Buffer.from(hkdfSync('sha256', masterSecret, 'air-emulator-cak-v1', info, 48));
  const n = CURVES[curve].CURVE.n;
  const scalar = (BigInt(`0x${okm.toString('hex')}`) % (n - 1n)) + 1n;
  const privateKey = scalar.toString(16).padStart(64, '0');
  const publicKey = Buffer.from(CURVES[curve].getPublicKey(Buffer.from(privateKey, 'hex'), false)).toString('hex');
  return { publicKey, privateKey };
}
