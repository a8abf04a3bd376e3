import { Option, type Command } from 'commander';
import { parseKeyring } from '../../crypto/keyring';
import type { IssuanceStatus } from '../../domain/issuance';
import { ISSUANCE_STATUSES, listIssuances, retryIssuance } from '../../operations/issuances';
import { positiveInt, print, printJson, REFUSED_EXIT, table, withDatabase, withDatabaseAndTemporal } from '../context';

/**
 * `cak issuances list [--state S]` and `cak issuances retry <issuanceId>`. A retry starts a new
 * run only for a failed issuance whose failure was transient and whose staged items are still
 * there; anything else is refused (exit 4) with the reason: the client must resubmit
 * (src/operations/issuances.ts, docs/issuance.md).
 */
export function registerIssuanceCommands(program: Command): void {
  const issuances = program.command('issuances').description('issuances: list them by status, retry failed ones');

  issuances
    .command('list')
    .description('list issuances, oldest update first (--state failed: with the failure and whether it is retryable)')
    .addOption(new Option('--state <status>', 'only this status').choices([...ISSUANCE_STATUSES]))
    .option('--limit <n>', 'at most this many (1-1000)', positiveInt(1000), 100)
    .option('--json', 'print JSON')
    .action(async (opts: { state?: IssuanceStatus; limit: number; json?: boolean }) => {
      await withDatabase(async (_config, { db }) => {
        const listed = await listIssuances(db, { ...(opts.state ? { status: opts.state } : {}), limit: opts.limit });
        if (opts.json) return printJson({ issuances: listed });
        if (listed.length === 0) return print('no issuances');
        print(
          table([
            ['ISSUANCE', 'STATUS', 'SCHEMA', 'FAILED STEP', 'ERROR', 'RETRYABLE', 'UPDATED'],
            ...listed.map((i) => [
              i.issuanceId,
              i.status,
              i.schemaId,
              i.failedStep ?? '-',
              i.error ? `${i.error.type}: ${i.error.message}` : '-',
              i.retryable === undefined ? '-' : i.retryable ? 'yes' : 'no',
              i.updatedAt.toISOString(),
            ]),
          ]),
        );
      });
    });

  issuances
    .command('retry')
    .description(
      'retry a failed issuance: a new run when the failure was transient and its staged items remain, else refused',
    )
    .argument('<issuanceId>', 'the issuance (iss_...)')
    .option('--json', 'print JSON')
    .action(async (issuanceId: string, opts: { json?: boolean }) => {
      await withDatabaseAndTemporal(async (config, { db }, temporal) => {
        const result = await retryIssuance(
          {
            db,
            temporal,
            taskQueue: config.TEMPORAL_TASK_QUEUE,
            codecKeyring: parseKeyring(config.CAK_CODEC_KEYS),
            gridfsThresholdBytes: config.GRIDFS_THRESHOLD_BYTES,
          },
          issuanceId,
        );
        if (opts.json) printJson(result);
        else if (result.outcome === 'started')
          print(`${issuanceId}: retry started (${result.workflowId}, run ${result.runId})`);
        else if (result.outcome === 'already-running')
          print(`${issuanceId}: a run is already going (${result.workflowId})`);
        else print(`${issuanceId}: not retried (${result.code}): ${result.message}`);
        if (result.outcome === 'refused') process.exitCode = REFUSED_EXIT;
      });
    });
}
