import type { Client } from '@temporalio/client';
import type { Db } from 'mongodb';
import type { Config } from './config';
import { parseKeyring, type Keyring } from './crypto/keyring';
import { loadSchemaRegistry, type SchemaRegistry } from './routing/schema-registry';
import { connectDatabase } from './storage/mongo';
import { connectTemporalClient, lazyTemporalClient } from './temporal/connection';

/**
 * The composition root: configuration parsed into resources once, here. The API, the worker and the
 * CLI open their resources with `openResources` and hand them to their wiring; nothing else parses a
 * keyring or loads the schema registry from configuration.
 */

/** The three keyrings of the configuration (docs/crypto.md). */
export interface Keyrings {
  /** CAK_MANAGED_KEYS: the outer layer of stored items */
  managed: Keyring;
  /** CAK_CODEC_KEYS: Temporal payloads */
  codec: Keyring;
  /** CAK_AUDIT_KEYS: the keyed audit chain */
  audit: Keyring;
}

/** What configuration parses into without a connection: the wiring modules take these. */
export interface Parsed {
  config: Config;
  keyrings: Keyrings;
  /** the schema registry (SCHEMA_REGISTRY_PATH), loaded on first use and kept */
  readonly registry: SchemaRegistry;
}

export interface Resources extends Parsed {
  db: Db;
  /** present when opened with `temporal: true` */
  temporal?: Client;
  /** closes the Temporal connection and the database client */
  close(): Promise<void>;
}

interface ResourceOptions {
  /** the database client's appName (it names the process in the server's logs) */
  appName: string;
  /** open a Temporal client too (its payloads encrypted with the codec keyring) */
  temporal?: boolean;
  /** connect nothing up front: the first use connects (the API starts while a dependency is down) */
  lazy?: boolean;
  /** the database client's server monitor went silent (src/storage/mongo.ts); called once */
  onDatabaseStall?: (silentMs: number) => void;
}

function keyringsOf(config: Config): Keyrings {
  return {
    managed: parseKeyring(config.CAK_MANAGED_KEYS),
    codec: parseKeyring(config.CAK_CODEC_KEYS),
    audit: parseKeyring(config.CAK_AUDIT_KEYS),
  };
}

export function registryOf(config: Config): SchemaRegistry {
  return loadSchemaRegistry(config.SCHEMA_REGISTRY_PATH, config.ISSUER_DIDS);
}

/** The keyrings now and the registry on first use, each parsed once for this object's life. */
export function parsedOf(config: Config): Parsed {
  let registry: SchemaRegistry | undefined;
  return {
    config,
    keyrings: keyringsOf(config),
    get registry() {
      return (registry ??= registryOf(config));
    },
  };
}

export async function openResources(
  config: Config,
  options: ResourceOptions & { temporal: true },
): Promise<Resources & { temporal: Client }>;
export async function openResources(config: Config, options: ResourceOptions): Promise<Resources>;
export async function openResources(config: Config, options: ResourceOptions): Promise<Resources> {
  const parsed = parsedOf(config);
  const database = await connectDatabase(config.MONGODB_URI, config.MONGODB_DB, {
    appName: options.appName,
    ...(options.lazy ? { lazy: true } : {}),
    ...(options.onDatabaseStall ? { onMonitorStall: options.onDatabaseStall } : {}),
  });
  let temporal: Client | undefined;
  if (options.temporal) {
    const { TEMPORAL_ADDRESS: address, TEMPORAL_NAMESPACE: namespace } = config;
    try {
      temporal = options.lazy
        ? lazyTemporalClient(address, namespace, parsed.keyrings.codec)
        : await connectTemporalClient(address, namespace, parsed.keyrings.codec);
    } catch (err) {
      await database.close().catch(() => undefined);
      throw err;
    }
  }
  return Object.assign(parsed, {
    db: database.db,
    ...(temporal ? { temporal } : {}),
    async close() {
      await temporal?.connection.close().catch(() => undefined);
      await database.close();
    },
  });
}
