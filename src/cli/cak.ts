#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { ConfigError } from '../config';
import { CryptoError } from '../crypto/keys';
import { registerAuditCommands } from './commands/audit';
import { registerAuthorizationCommands } from './commands/authorizations';
import { registerCryptoCommands } from './commands/crypto';
import { registerIssuanceCommands } from './commands/issuances';
import { registerKeyCommands } from './commands/keys';
import { registerPlatformCommands } from './commands/platform';
import { registerVerifierCommands } from './commands/verifier';
import { CheckFailedError, EXIT, exitCodesHelp, RefusedError, UsageError, type ExitCode } from './exit-codes';

/**
 * `cak`: the Verifier's reference tool, our interop probe, and the operator commands (README
 * "Operator commands", docs/cli.md). Each command group is its own module. Run it as `npm run cak --`,
 * `npx cak` or `cak` (bin/cak.js); it works from any folder (src/cli/paths.ts). Exit codes:
 * src/cli/exit-codes.ts.
 */
export function buildProgram(): Command {
  // exitOverride before the groups are added: every subcommand inherits it, so usage errors reach
  // `main` (exit 2) instead of commander's own exit 1.
  const program = new Command('cak').description('CAK issuer tools').showHelpAfterError().exitOverride();
  program.addHelpText('afterAll', `\n${exitCodesHelp()}\nMore: docs/cli.md`);
  registerCryptoCommands(program);
  registerAuditCommands(program);
  registerAuthorizationCommands(program);
  registerIssuanceCommands(program);
  registerKeyCommands(program);
  registerPlatformCommands(program);
  registerVerifierCommands(program);
  return program;
}

/** The exit status for an error that ended a command, after printing it to stderr. */
export function reportError(err: unknown): ExitCode {
  const say = (line: string) => process.stderr.write(`cak: ${line}\n`);
  if (err instanceof CommanderError) {
    // commander has printed the message (and the help) itself
    return err.code === 'commander.helpDisplayed' || err.code === 'commander.version' ? EXIT.OK : EXIT.USAGE;
  }
  if (err instanceof UsageError) {
    say(`${err.message} (see --help)`);
    return EXIT.USAGE;
  }
  if (err instanceof CryptoError) {
    say(`${err.code}: ${err.message}`);
    return EXIT.USAGE;
  }
  if (err instanceof CheckFailedError) {
    say(`${err.code}: ${err.message}`);
    return EXIT.CHECK_FAILED;
  }
  if (err instanceof RefusedError) {
    say(err.message.includes(err.code) ? err.message : `${err.code}: ${err.message}`);
    return EXIT.REFUSED;
  }
  if (err instanceof ConfigError) {
    say(err.message);
    return EXIT.ERROR;
  }
  say(err instanceof Error ? err.message : String(err));
  return EXIT.ERROR;
}

/**
 * Runs `cak` with these arguments (process.argv form); bin/cak.js calls it. A command that ends
 * normally sets process.exitCode (0, 3 or 4) and lets the process wind down; an error exits at once
 * with its status, as nothing it left open (a half-made connection) may keep the process alive.
 */
export async function main(argv: readonly string[] = process.argv): Promise<void> {
  try {
    await buildProgram().parseAsync([...argv]);
  } catch (err) {
    process.exit(reportError(err));
  }
}

if (require.main === module) void main();
