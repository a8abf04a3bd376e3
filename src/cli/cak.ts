#!/usr/bin/env node
import { Command } from 'commander';
import { CryptoError } from '../crypto/keys';
import { registerAuditCommands } from './commands/audit';
import { registerAuthorizationCommands } from './commands/authorizations';
import { registerCryptoCommands } from './commands/crypto';
import { registerIssuanceCommands } from './commands/issuances';
import { registerKeyCommands } from './commands/keys';
import { registerPlatformCommands } from './commands/platform';

/**
 * `cak`: the Verifier's reference tool, our interop probe, and the operator commands (README
 * "Operator commands"). Each command group is its own module.
 */
export function buildProgram(): Command {
  const program = new Command('cak').description('CAK issuer tools').showHelpAfterError();
  registerCryptoCommands(program);
  registerAuditCommands(program);
  registerAuthorizationCommands(program);
  registerIssuanceCommands(program);
  registerKeyCommands(program);
  registerPlatformCommands(program);
  return program;
}

if (require.main === module) {
  buildProgram()
    .parseAsync(process.argv)
    .catch((err: unknown) => {
      if (err instanceof CryptoError) {
        process.stderr.write(`cak: ${err.code}: ${err.message}\n`);
        process.exit(2);
      }
      process.stderr.write(`cak: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exit(1);
    });
}
