import { AppError } from './errors';

/**
 * Checks client JSON before anything else looks at it: no key a MongoDB-wire database (or a
 * prototype chain) would treat specially, bounded depth, bounded key count. FerretDB rejects
 * field names with '.', a leading '$' and NUL; `__proto__` / `constructor` / `prototype` are
 * prototype-pollution vectors. The offending path is named in the error.
 */
const FORBIDDEN_KEYS = new Set(['__proto__', 'constructor', 'prototype']);

interface SafeJsonLimits {
  maxDepth: number;
  maxKeys: number;
}

function unsafeKeyReason(key: string): string | undefined {
  if (FORBIDDEN_KEYS.has(key)) return 'reserved name';
  if (key.startsWith('$')) return 'leading $';
  if (key.includes('.')) return 'contains "."';
  if (key.includes('\u0000')) return 'contains NUL';
  if (key.length === 0) return 'empty key';
  return undefined;
}

export function assertSafeJson(value: unknown, limits: SafeJsonLimits, path = '', code = 'UNSAFE_KEY'): void {
  let keys = 0;
  const walk = (v: unknown, p: string, depth: number): void => {
    if (v === null || typeof v !== 'object') return;
    if (depth > limits.maxDepth) {
      throw new AppError('JSON_TOO_DEEP', `${p || 'body'} is nested deeper than ${limits.maxDepth} levels`, 400, {
        field: p,
      });
    }
    if (Array.isArray(v)) {
      v.forEach((el, i) => walk(el, `${p}[${i}]`, depth + 1));
      return;
    }
    for (const key of Object.keys(v)) {
      keys += 1;
      if (keys > limits.maxKeys) {
        throw new AppError('JSON_TOO_MANY_KEYS', `${path || 'body'} has more than ${limits.maxKeys} keys`, 400, {
          field: path,
        });
      }
      const reason = unsafeKeyReason(key);
      const child = p ? `${p}.${key}` : key;
      if (reason) throw new AppError(code, `key "${child}" is not allowed (${reason})`, 400, { field: child });
      walk((v as Record<string, unknown>)[key], child, depth + 1);
    }
  };
  walk(value, path, 0);
}

/** Stable JSON: object keys sorted, so equal values hash equally whatever the key order. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const entries = Object.keys(value)
    .sort()
    .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
  return `{${entries.join(',')}}`;
}
