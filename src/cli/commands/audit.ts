import type { Command } from 'commander';
import { auditRepository } from '../../storage/audit';
import { withDatabase } from '../context';
import { EXIT } from '../exit-codes';

/** Exit status of `cak audit verify` when the chain is broken (0 = intact, 1 = could not check). */
const AUDIT_BROKEN_EXIT = EXIT.CHECK_FAILED;

/**
 * `cak audit verify`: walks the sealed, keyed audit chain from its first event, names the first
 * broken link, and says how many appended events wait to be sealed.
 */
export function registerAuditCommands(program: Command): void {
  const audit = program.command('audit').description('the append-only, keyed audit chain: verify it');
  audit
    .command('verify')
    .description('recompute every keyed link (needs CAK_AUDIT_KEYS); exit 3 naming the first broken event')
    .option('--json', 'print the report as JSON')
    .action(async (opts: { json?: boolean }) => {
      await withDatabase(async ({ keyrings, db }) => {
        const report = await auditRepository(db, keyrings.audit).verifyChain();
        if (opts.json) process.stdout.write(`${JSON.stringify(report)}\n`);
        else if (report.ok)
          process.stdout.write(
            `audit chain intact: ${report.events} events, tip ${report.tipHash}; ${report.unsealed} waiting to be sealed\n`,
          );
        else {
          process.stdout.write(
            `audit chain BROKEN at seq ${report.seq} (event ${report.eventId}): ${report.reason}; ` +
              `${report.events} events before it verify\n`,
          );
        }
        if (!report.ok) process.exitCode = AUDIT_BROKEN_EXIT;
      });
    });
}
