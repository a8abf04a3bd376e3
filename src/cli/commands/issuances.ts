import { Option, type Command } from 'commander';
import type { IssuanceStatus } from '../../domain/issuance';
import { getIssuance, ISSUANCE_STATUSES, listIssuances, retryIssuance } from '../../operations/issuances';
import {
  positiveInt,
  print,
  printJson,
  REFUSED_EXIT,
  table,
  withDatabase,
  withDatabaseAndTemporal,
  workflowUiUrl,
} from '../context';

/**
 * `cak issuances list [--state S] [--user U] [--schema S] [--json]` (filtered in the database query;
 * --json: one JSON array), `cak issuances status <issuanceId>` (the steps, the run's workflowId and
 * its Temporal Web UI page) and `cak issuances retry <issuanceId>`. A retry starts a new run only for
 * a failed issuance whose failure was transient and whose staged items are still there; anything
 * else is refused (exit 4) with the reason: the client must resubmit (src/operations/issuances.ts,
 * docs/issuance.md).
 */
export function registerIssuanceCommands(program: Command): void {
  const issuances = program
    .command('issuances')
    .description('issuances: list them by status, user or schema, show one, retry failed ones');

  issuances
    .command('list')
    .description('list issuances, oldest update first (--state failed: with the failure and whether it is retryable)')
    .addOption(new Option('--state <status>', 'only this status').choices([...ISSUANCE_STATUSES]))
    .option('--user <userId>', "only this user's")
    .option('--schema <schemaId>', 'only this schema')
    .option('--limit <n>', 'at most this many (1-1000)', positiveInt(1000), 100)
    .option('--json', 'print one JSON array')
    .action(async (opts: { state?: IssuanceStatus; user?: string; schema?: string; limit: number; json?: boolean }) => {
      await withDatabase(async ({ db }) => {
        const listed = await listIssuances(db, {
          ...(opts.state ? { status: opts.state } : {}),
          ...(opts.user !== undefined ? { userId: opts.user } : {}),
          ...(opts.schema !== undefined ? { schemaId: opts.schema } : {}),
          limit: opts.limit,
        });
        if (opts.json) return printJson(listed);
        if (listed.length === 0) return print('no issuances');
        print(
          table([
            ['ISSUANCE', 'STATUS', 'SCHEMA', 'USER', 'FAILED STEP', 'ERROR', 'RETRYABLE', 'UPDATED'],
            ...listed.map((i) => [
              i.issuanceId,
              i.status,
              i.schemaId,
              i.userId,
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
    .command('status')
    .description(
      "one issuance: status, steps, items, record version, failure, and its run's workflowId with the Temporal Web UI link",
    )
    .argument('<issuanceId>', 'the issuance (iss_...)')
    .option('--json', 'print JSON')
    .action(async (issuanceId: string, opts: { json?: boolean }) => {
      await withDatabase(async ({ config, db }) => {
        const found = await getIssuance(db, issuanceId);
        if (!found) {
          process.stderr.write(`cak: ${issuanceId}: no such issuance\n`);
          process.exitCode = REFUSED_EXIT;
          return;
        }
        const detail = { ...found, webUi: workflowUiUrl(config, found.workflowId) };
        if (opts.json) return printJson(detail);
        const steps = Object.entries(detail.steps).map(([step, s]) => `${step} ${s.state}`);
        print(
          table([
            ['issuance', detail.issuanceId],
            ['status', detail.status],
            ['user', detail.userId],
            ['issuer', detail.issuerDid],
            ['schema', detail.schemaId],
            ['items', detail.itemKinds.join(', ') || '-'],
            ['steps', steps.join(', ') || '-'],
            ['version', detail.version === undefined ? '-' : String(detail.version)],
            [
              'error',
              detail.error
                ? `${detail.error.type}: ${detail.error.message} (${detail.retryable ? 'retryable' : 'not retryable'})`
                : '-',
            ],
            ['created', detail.createdAt.toISOString()],
            ['updated', detail.updatedAt.toISOString()],
            ['workflow', detail.workflowId],
            ['web UI', detail.webUi],
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
      await withDatabaseAndTemporal(async ({ config, keyrings, db, temporal }) => {
        const result = await retryIssuance(
          {
            db,
            temporal,
            taskQueue: config.TEMPORAL_TASK_QUEUE,
            codecKeyring: keyrings.codec,
            gridfsThresholdBytes: config.GRIDFS_THRESHOLD_BYTES,
          },
          issuanceId,
        );
        if (opts.json) printJson(result);
        else if (result.outcome === 'started')
          print(
            `${issuanceId}: retry started (${result.workflowId}, run ${result.runId}): ${workflowUiUrl(config, result.workflowId)}`,
          );
        else if (result.outcome === 'already-running')
          print(`${issuanceId}: a run is already going (${result.workflowId})`);
        else print(`${issuanceId}: not retried (${result.code}): ${result.message}`);
        if (result.outcome === 'refused') process.exitCode = REFUSED_EXIT;
      });
    });
}
