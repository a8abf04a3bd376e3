import type { Client } from '@temporalio/client';
import { InvalidArgumentError } from 'commander';
import type { Config } from '../config';
import { openResources, type Resources } from '../resources';
import { EXIT } from './exit-codes';
import { cliConfig } from './paths';

/**
 * What operator commands run against: the same configuration (src/config.ts, the environment), the
 * same keyrings and schema registry (src/resources.ts) and the same database and Temporal as the API
 * and worker, used directly, so they work while the API is down. Exit codes: src/cli/exit-codes.ts.
 */

/** A command's resources: `config`, `keyrings`, `registry` (loaded on first use), `db`. */
type CliContext = Resources;

/** Exit status of an operator command that was refused (nothing or not everything was done). */
export const REFUSED_EXIT = EXIT.REFUSED;

export async function withDatabase<T>(action: (context: CliContext) => Promise<T>): Promise<T> {
  return using(await openResources(cliConfig(), { appName: 'cak' }), action);
}

/** `withDatabase` with a Temporal client too (its payloads encrypted with the codec keyring). */
export async function withDatabaseAndTemporal<T>(
  action: (context: CliContext & { temporal: Client }) => Promise<T>,
): Promise<T> {
  return using(await openResources(cliConfig(), { appName: 'cak', temporal: true }), action);
}

async function using<R extends Resources, T>(resources: R, action: (context: R) => Promise<T>): Promise<T> {
  try {
    return await action(resources);
  } finally {
    await resources.close();
  }
}

export function print(line: string): void {
  process.stdout.write(`${line}\n`);
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** A positive integer option (commander hands options in as strings). */
export function positiveInt(max: number) {
  return (value: string): number => {
    const n = Number(value);
    if (!Number.isInteger(n) || n < 1 || n > max)
      throw new InvalidArgumentError(`expected an integer from 1 to ${max}, got "${value}"`);
    return n;
  };
}

/** Lines of aligned columns. */
export function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => (r[i] ?? '').length)));
  return rows
    .map((r) => r.map((cell, i) => (i === r.length - 1 ? cell : cell.padEnd(widths[i]!))).join('  '))
    .join('\n');
}

/** The run's page in the Temporal Web UI (TEMPORAL_UI_URL, TEMPORAL_NAMESPACE). */
export function workflowUiUrl(
  config: Pick<Config, 'TEMPORAL_UI_URL' | 'TEMPORAL_NAMESPACE'>,
  workflowId: string,
): string {
  const base = config.TEMPORAL_UI_URL.replace(/\/+$/, '');
  return `${base}/namespaces/${encodeURIComponent(config.TEMPORAL_NAMESPACE)}/workflows/${encodeURIComponent(workflowId)}`;
}
