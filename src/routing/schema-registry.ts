import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { z } from 'zod';
import { AppError } from '../domain/errors';
import { FIELDS_ITEM_KIND } from '../domain/issuance';
import { didSchema, identifierSchema } from '../domain/issuance-request';
import { callbackRouteSchema, type CallbackRoute } from './callback-routes';

/**
 * The schema registry (`config/schemas.yaml`): per schemaId, the issuer DID it belongs to, the
 * issuance programs that issue it, the sensitive item kinds that may be stored, and the callback
 * route. Validated once at start; a bad file stops the process.
 *
 * An issuance's schema is its program's schema: the platform derives the CAK key from the
 * program's schema, so data filed under any other schema could never be opened.
 */

const kind = z.string().regex(/^[a-z][a-z0-9-]{0,31}$/, 'item kinds are lowercase letters, digits and -');

const schemaEntry = z.strictObject({
  description: z.string().max(500).optional(),
  /** the issuer DID that issues this schema; may be left out when the deployment serves one DID */
  issuerDid: didSchema.optional(),
  /** the issuance programs (the SDK's `credentialId`) of this schema */
  programs: z.array(identifierSchema).min(1),
  allowedItemKinds: z.array(kind).min(1),
  // Callback routing (src/routing/callback-routes.ts); absent means authorizations stay unrouted.
  callback: callbackRouteSchema.optional(),
});

const registryFile = z.strictObject({
  schemas: z.record(identifierSchema, schemaEntry),
});

export type SchemaEntry = z.infer<typeof schemaEntry> & { issuerDid: string };

export interface SchemaRegistry {
  get(schemaId: string): SchemaEntry | undefined;
  schemaIds(): string[];
  /** credentialId -> schemaId, for every program of every schema */
  programs(): ReadonlyMap<string, string>;
  /** The callback route of a schema, or undefined (unrouted). */
  route(schemaId: string): CallbackRoute | undefined;
  /**
   * The registry's checks on an issuance, each a 400 with its code: the schema is known, the
   * program is one of the schema's, the issuer DID is the schema's, and every item kind is allowed.
   */
  assertIssuable(
    request: { issuerDid: string; credentialId: string; schemaId: string },
    kinds: readonly string[],
  ): void;
}

class SchemaRegistryError extends Error {
  readonly code = 'SCHEMA_REGISTRY_INVALID';
  constructor(message: string) {
    super(message);
    this.name = 'SchemaRegistryError';
    Object.setPrototypeOf(this, SchemaRegistryError.prototype);
  }
}

/**
 * `issuerDids`: the DIDs the deployment serves (ISSUER_DIDS). A schema must name one of them, or
 * leave `issuerDid` out when there is exactly one.
 */
export function parseSchemaRegistry(
  source: string,
  issuerDids: readonly string[],
  origin = 'schema registry',
): SchemaRegistry {
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
  const entries = new Map<string, SchemaEntry>();
  const programs = new Map<string, string>();
  for (const [schemaId, entry] of Object.entries(parsed.data.schemas)) {
    const issuerDid = entry.issuerDid ?? (issuerDids.length === 1 ? issuerDids[0] : undefined);
    if (issuerDid === undefined) {
      throw new SchemaRegistryError(
        `${origin}: schemas.${schemaId}.issuerDid: required when ISSUER_DIDS names several`,
      );
    }
    if (!issuerDids.includes(issuerDid)) {
      throw new SchemaRegistryError(`${origin}: schemas.${schemaId}.issuerDid: ${issuerDid} is not one of ISSUER_DIDS`);
    }
    for (const program of entry.programs) {
      const other = programs.get(program);
      if (other !== undefined) {
        throw new SchemaRegistryError(`${origin}: program "${program}" is listed under both ${other} and ${schemaId}`);
      }
      programs.set(program, schemaId);
    }
    entries.set(schemaId, { ...entry, issuerDid });
  }
  const reject = (code: string, message: string, field: string, extra: Record<string, unknown> = {}) =>
    new AppError(code, message, 400, { field, ...extra });
  return {
    get: (schemaId) => entries.get(schemaId),
    schemaIds: () => [...entries.keys()],
    programs: () => programs,
    route: (schemaId) => entries.get(schemaId)?.callback,
    assertIssuable({ issuerDid, credentialId, schemaId }, kinds) {
      const entry = entries.get(schemaId);
      if (!entry) throw reject('UNKNOWN_SCHEMA', `schemaId "${schemaId}" is not registered`, 'schemaId');
      const programSchema = programs.get(credentialId);
      if (programSchema === undefined) {
        throw reject(
          'UNKNOWN_PROGRAM',
          `credentialId "${credentialId}" is not a registered issuance program`,
          'credentialId',
        );
      }
      if (programSchema !== schemaId) {
        throw reject(
          'PROGRAM_SCHEMA_MISMATCH',
          `program "${credentialId}" issues schema "${programSchema}", not "${schemaId}"`,
          'schemaId',
          { expected: programSchema },
        );
      }
      if (entry.issuerDid !== issuerDid) {
        throw reject('ISSUER_SCHEMA_MISMATCH', `schema "${schemaId}" is issued by ${entry.issuerDid}`, 'issuerDid');
      }
      for (const k of kinds) {
        if (!entry.allowedItemKinds.includes(k)) {
          throw reject(
            'ITEM_NOT_ALLOWED',
            `item "${k}" may not be stored for schema "${schemaId}"`,
            k === FIELDS_ITEM_KIND ? 'fields' : 'files',
            { item: k },
          );
        }
      }
    },
  };
}

export function loadSchemaRegistry(path: string, issuerDids: readonly string[]): SchemaRegistry {
  let source: string;
  try {
    source = readFileSync(path, 'utf8');
  } catch (err) {
    throw new SchemaRegistryError(`cannot read ${path}: ${err instanceof Error ? err.message : String(err)}`);
  }
  return parseSchemaRegistry(source, issuerDids, path);
}
