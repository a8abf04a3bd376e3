import { Option, type Command } from 'commander';
import type { AuthorizationState, AuthorizationViewState } from '../../domain/authorization';
import { authorizationIdFor, callbackPayloadSchema } from '../../domain/callback';
import { auditRepository } from '../../storage/audit';
import {
  AUTHORIZATION_STATES,
  listAuthorizations,
  redriveAuthorization,
  setRevocation,
  temporalRedriver,
  type RedriveResult,
} from '../../operations/authorizations';
import { authorizationsRepository } from '../../storage/authorizations';
import { positiveInt, print, printJson, REFUSED_EXIT, table, withDatabase, withDatabaseAndTemporal } from '../context';
import { UsageError } from '../exit-codes';

/**
 * `cak authorizations list [--state S] [--user U] [--verifier V] [--schema S] [--json]` (filtered in
 * the database query; --json: one JSON array), `cak authorizations redrive <id> | --all-unrouted |
 * --all-no-data`, and `cak authorizations revoke|reinstate --user U --verifier V --schema S`: the
 * admin API's operations (src/operations/authorizations.ts), run directly against the database and
 * Temporal.
 */
export function registerAuthorizationCommands(program: Command): void {
  const authorizations = program
    .command('authorizations')
    .description(
      'authorization callbacks: list them by state, re-drive unrouted and no-data ones, revoke and reinstate',
    );

  authorizations
    .command('list')
    .description('list authorizations, oldest update first (re-drive candidates: --state unrouted or no-data)')
    .addOption(new Option('--state <state>', 'only this state').choices([...AUTHORIZATION_STATES]))
    .option('--user <userId>', "only this user's")
    .option('--verifier <verifierDid>', "only this Verifier's")
    .option('--schema <schemaId>', 'only this schema')
    .option('--limit <n>', 'at most this many (1-500)', positiveInt(500), 100)
    .option('--json', 'print one JSON array')
    .action(
      async (opts: {
        state?: AuthorizationViewState;
        user?: string;
        verifier?: string;
        schema?: string;
        limit: number;
        json?: boolean;
      }) => {
        await withDatabase(async ({ db }) => {
          const listed = await listAuthorizations(authorizationsRepository(db), {
            ...(opts.state ? { state: opts.state } : {}),
            ...(opts.user !== undefined ? { userId: opts.user } : {}),
            ...(opts.verifier !== undefined ? { verifierDid: opts.verifier } : {}),
            ...(opts.schema !== undefined ? { schemaId: opts.schema } : {}),
            limit: opts.limit,
          });
          if (opts.json) return printJson(listed);
          if (listed.length === 0) return print('no authorizations');
          print(
            table([
              ['AUTHORIZATION', 'STATE', 'SCHEMA', 'USER', 'VERIFIER', 'DELIVERIES', 'REDRIVEN', 'UPDATED'],
              ...listed.map((a) => [
                a.authorizationId,
                a.state,
                a.schemaId,
                a.userId,
                a.verifierDid,
                String(a.deliveries),
                String(a.redriven),
                a.updatedAt.toISOString(),
              ]),
            ]),
          );
        });
      },
    );

  authorizations
    .command('redrive')
    .description(
      're-drive unrouted / no-data authorizations whose run still waits (after adding the route, or storing the data)',
    )
    .argument('[authorizationId]', 'one authorization (auth_...)')
    .option('--all-unrouted', 'every unrouted authorization')
    .option('--all-no-data', 'every no-data authorization')
    .option('--limit <n>', 'with --all-*: at most this many per state (1-10000)', positiveInt(10_000), 1000)
    .option('--json', 'print JSON')
    .action(
      async (
        id: string | undefined,
        opts: { allUnrouted?: boolean; allNoData?: boolean; limit: number; json?: boolean },
      ) => {
        const states: AuthorizationState[] = [
          ...(opts.allUnrouted ? (['unrouted'] as const) : []),
          ...(opts.allNoData ? (['no-data'] as const) : []),
        ];
        if ((id === undefined) === (states.length === 0)) {
          throw new UsageError('name one authorization id, or pass --all-unrouted and/or --all-no-data');
        }
        await withDatabaseAndTemporal(async ({ db, temporal }) => {
          const repo = authorizationsRepository(db);
          const redrive = temporalRedriver(temporal);
          const ids =
            id !== undefined
              ? [id]
              : (await Promise.all(states.map((state) => repo.list({ state }, opts.limit)))).flatMap((docs) =>
                  docs.map((d) => d._id),
                );
          const results: RedriveResult[] = [];
          for (const authorizationId of ids) results.push(await redriveAuthorization(repo, redrive, authorizationId));
          const signalled = results.filter((r) => r.outcome === 'signalled').length;
          if (opts.json) printJson({ signalled, results });
          else {
            for (const r of results) print(`${r.authorizationId}: ${describe(r)}`);
            print(`${signalled} of ${results.length} re-driven`);
          }
          if (signalled < results.length) process.exitCode = REFUSED_EXIT;
        });
      },
    );

  registerRevocationCommand(authorizations, 'revoke');
  registerRevocationCommand(authorizations, 'reinstate');
}

function registerRevocationCommand(authorizations: Command, action: 'revoke' | 'reinstate'): void {
  authorizations
    .command(action)
    .description(
      action === 'revoke'
        ? 'revoke an authorization: no access now, nor after later consents, until it is reinstated'
        : 'lift a revocation: access is again what the current access window allows',
    )
    .requiredOption('--user <userId>', 'the userId of the callback')
    .requiredOption('--verifier <verifierDid>', 'the verifierDid of the callback')
    .requiredOption('--schema <schemaId>', 'the schemaId of the callback')
    .option('--by <name>', 'who does it (recorded in the audit event)', 'cli')
    .action(async (opts: { user: string; verifier: string; schema: string; by: string }) => {
      const key = callbackPayloadSchema.parse({ userId: opts.user, verifierDid: opts.verifier, schemaId: opts.schema });
      await withDatabase(async ({ config, keyrings, db }) => {
        const authorizationId = authorizationIdFor(config.ID_HMAC_SECRET, key);
        const result = await setRevocation(
          authorizationsRepository(db),
          auditRepository(db, keyrings.audit),
          authorizationId,
          action,
          opts.by,
        );
        if (result.outcome === 'not-found') {
          print(`${authorizationId}: no such authorization`);
          process.exitCode = REFUSED_EXIT;
          return;
        }
        const done = action === 'revoke' ? 'revoked' : 'reinstated';
        print(
          `${authorizationId}: ${result.outcome === 'changed' ? done : `already ${action === 'revoke' ? 'revoked' : 'not revoked'}`}`,
        );
      });
    });
}

function describe(result: RedriveResult): string {
  switch (result.outcome) {
    case 'signalled':
      return `re-drive signalled to ${result.workflowId}`;
    case 'not-found':
      return 'no such authorization';
    case 'not-redrivable':
      return `not re-driven: it is ${result.state} (only unrouted and no-data are)`;
    case 'run-closed':
      return `not re-driven: its run no longer waits (AUTHORIZATION_REDRIVE_WINDOW_HOURS passed); see docs/callbacks.md`;
  }
}
