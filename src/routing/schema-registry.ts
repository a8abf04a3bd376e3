import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import { FIELDS_ITEM_KIND } from '../domain/issuance';
import { callbackRouteSchema } from './callback-routes';

/**
 * The schema registry (`config/schemas.yaml`): per schemaId, the sensitive item kinds that may be
 * stored, and (later) the callback handler. Validated once at start; a bad file stops the process.
 */

const kind = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'item kinds are lowercase letters, digits and -');

const schemaEntry = z.strictObject({
  description: z.string().max(500).optional(),
  allowedItemKinds: z.array(kind).min(1),
  // Callback routing (src/routing/callback-routes.ts); absent means authorizations stay unrouted.
  callback: callbackRouteSchema.optional(),
});

const registryFile = z.strictObject({
  schemas: z.record(z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'schemaId'), schemaEntry),
});

export type SchemaEntry = z.infer<typeof schemaEntry>;

export interface SchemaRegistry {
  get(schemaId: string): SchemaEntry | undefined;
  schemaIds(): string[];
  /** Throws a 400 AppError naming the first item kind the schema does not allow (or the unknown schema). */
  assertItemsAllowed(schemaId: string, kinds: readonly string[]): void;
}

export class SchemaRegistryError extends Error {
  readonly code = 'SCHEMA_REGISTRY_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'SchemaRegistryError';
    Object.setPrototypeOf(this, SchemaRegistryError.prototype);
  }
}

export function parseSchemaRegistry(source: string, origin = 'schema registry'): SchemaRegistry {
  let doc: unknown;
  try {
    doc = parse(source);
  } catch (err) {
    throw new SchemaRegistryError(`${origin}: not valid YAML (${err instanceof Error ? err.message : String(err)})`);
  }
  const parsed = registryFile.safeParse(doc);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new SchemaRegistryError(`${origin}: ${issue.path.join('.') || '(root)'}: ${issue.message}`);
  }
  const entries = new Map(Object.entries(parsed.data.schemas));
  return {
    get: (schemaId) => entries.get(schemaId),
    schemaIds: () => [...entries.keys()],
    assertItemsAllowed(schemaId, kinds) {
      const entry = entries.get(schemaId);
      if (!entry)
        throw new AppError('UNKNOWN_SCHEMA', `schemaId "${schemaId}" is not registered`, 400, { field: 'schemaId' });
      for (const k of kinds) {
        if (!entry.allowedItemKinds.includes(k)) {
          throw new AppError('ITEM_NOT_ALLOWED', `item "${k}" may not be stored for schema "${schemaId}"`, 400, {
            item: k,
            field: k === FIELDS_ITEM_KIND ? 'fields' : 'files',
          });
        }
      }
    },
  };
}

export function loadSchemaRegistry(path: string): SchemaRegistry {
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SchemaRegistryError(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseSchemaRegistry(source, path);
}
