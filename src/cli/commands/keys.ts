import type { Command } from 'commander';
import type { Config } from '../../config';
import { parseKeyring, type Keyring } from '../../crypto/keyring';
import {
  generateKeyringEntry,
  generateWebhookSecret,
  packageKeyCounts,
  rewrapPackages,
  type KeyCounts,
  type RewrapReport,
} from '../../operations/keys';
import { stagingRepository } from '../../storage/staging';
import { positiveInt, print, printJson, REFUSED_EXIT, withDatabase } from '../context';
import { UsageError } from '../exit-codes';

/**
 * Key rotation without downtime (docs/crypto.md): `cak keys generate` prints new key material,
 * `cak keys status` shows the active keys and where the stored packages stand, `cak keys rewrap`
 * moves every stored package's outer layer to the active managed key.
 */
export function registerKeyCommands(program: Command): void {
  const keys = program
    .command('keys')
    .description('key rotation: generate keys, show key status, rewrap stored packages to the active key');

  keys
    .command('generate')
    .description(
      'print a new keyring entry kid:base64 (for CAK_MANAGED_KEYS / CAK_CODEC_KEYS: prepend it), or a whsec_ secret',
    )
    .option('--kid <kid>', 'key id ([A-Za-z0-9._-]{1,64}; default k<yyyymmdd>-<8 hex>)')
    .option('--webhook-secret', 'print a Standard Webhooks secret (CALLBACK_SECRETS, NOTIFY_SECRET) instead')
    .action((opts: { kid?: string; webhookSecret?: boolean }) => {
      if (opts.webhookSecret) {
        if (opts.kid !== undefined) throw new UsageError('--kid does not apply to --webhook-secret');
        return print(generateWebhookSecret());
      }
      const entry = generateKeyringEntry(opts.kid);
      try {
        parseKeyring(entry); // refuses a bad --kid
      } catch (err) {
        throw new UsageError(`--kid: ${err instanceof Error ? err.message : String(err)}`);
      }
      print(entry);
    });

  keys
    .command('status')
    .description('active codec and managed keys, and stored packages per outer-layer key')
    .option('--json', 'print JSON')
    .action(async (opts: { json?: boolean }) => {
      await withDatabase(async ({ config, keyrings, db }) => {
        const managed = keyrings.managed;
        const status = {
          codec: describeKeyring(keyrings.codec),
          managed: describeKeyring(managed),
          callbacks: callbackStatus(config),
          packages: await packageKeyCounts(db, config.GRIDFS_THRESHOLD_BYTES),
          stagingEntries: await stagingRepository(db, config.GRIDFS_THRESHOLD_BYTES).count(),
        };
        if (opts.json) return printJson(status);
        print(
          `codec keys (CAK_CODEC_KEYS):     active ${status.codec.active}; keyring ${status.codec.kids.join(', ')}`,
        );
        print(
          `managed keys (CAK_MANAGED_KEYS): active ${status.managed.active}; keyring ${status.managed.kids.join(', ')}`,
        );
        print(
          `callbacks: ${status.callbacks.scheme}` +
            (status.callbacks.secrets !== undefined ? `, ${status.callbacks.secrets} secret(s) accepted` : ''),
        );
        print('stored packages per outer key:');
        printCounts(status.packages, managed);
        print(`staging entries (sealed, expire after STAGING_TTL_SECONDS): ${status.stagingEntries}`);
      });
    });

  keys
    .command('rewrap')
    .description(
      'rewrap every committed package not under the active managed key (inner layer untouched; verified; resumable)',
    )
    .option('--dry-run', 'count and check what would be rewrapped; write nothing')
    .option('--batch <n>', 'packages read per page (1-10000)', positiveInt(10_000), 200)
    .option('--json', 'print the report as JSON')
    .action(async (opts: { dryRun?: boolean; batch: number; json?: boolean }) => {
      await withDatabase(async ({ config, keyrings, db }) => {
        const keyring = keyrings.managed;
        const report = await rewrapPackages(db, keyring, {
          thresholdBytes: config.GRIDFS_THRESHOLD_BYTES,
          batchSize: opts.batch,
          dryRun: opts.dryRun ?? false,
          ...(opts.json
            ? {}
            : {
                onProgress: (r: RewrapReport) =>
                  process.stderr.write(`... ${r.scanned} scanned, ${r.rewrapped} rewrapped\n`),
              }),
        });
        if (opts.json) printJson(report);
        else printRewrap(report, keyring);
        if (report.failed.length > 0) process.exitCode = REFUSED_EXIT;
      });
    });
}

function describeKeyring(keyring: Keyring) {
  return { active: keyring.activeKeyId, kids: [...keyring.keys.keys()] };
}

function callbackStatus(config: Config): { scheme: string; secrets?: number } {
  if (config.CALLBACK_SIGNATURE_SCHEME !== 'standard-webhooks') return { scheme: config.CALLBACK_SIGNATURE_SCHEME };
  return {
    scheme: config.CALLBACK_SIGNATURE_SCHEME,
    secrets: config.CALLBACK_SECRETS.split(/[ ,]+/).filter(Boolean).length,
  };
}

function printCounts(counts: KeyCounts, keyring: Keyring): void {
  const kids = Object.keys(counts).sort();
  if (kids.length === 0) return print('  (none)');
  for (const kid of kids) {
    const note = kid === keyring.activeKeyId ? ' (active)' : keyring.keys.has(kid) ? '' : ' (NOT IN THE KEYRING)';
    print(`  ${kid}${note}: ${counts[kid]!.committed} committed, ${counts[kid]!.pending} pending`);
  }
}

function printRewrap(report: RewrapReport, keyring: Keyring): void {
  print(`before:`);
  printCounts(report.before, keyring);
  print(
    `${report.dryRun ? 'dry run: would rewrap' : 'rewrapped'} ${report.rewrapped} of ${report.scanned} committed ` +
      `packages to ${report.activeKeyId}; ${report.alreadyActive} already on it, ${report.pendingSkipped} pending ` +
      `skipped, ${report.vanished} deleted meanwhile, ${report.failed.length} failed`,
  );
  for (const f of report.failed) print(`  FAILED ${f.packageId} (${f.keyId}): ${f.error}`);
  print(`after:`);
  printCounts(report.after, keyring);
}
