import type { Command } from 'commander';
import { platformFromConfig } from '../../platform';
import { issuerSettingsClient } from '../../platform/issuer-settings';
import { cliConfig } from '../paths';

/**
 * `cak platform register-callback --url <https url>`: sets our global callback URL on the AIR
 * platform (POST /issuer/modify {callbackUrl}); `cak platform status`: what the platform has.
 * Both authenticate with a Partner JWT minted from PARTNER_SIGNING_KEYS, against AIR_PLATFORM_URL.
 */
export function registerPlatformCommands(program: Command): void {
  const platform = program.command('platform').description('our settings on the AIR platform');
  const client = () => {
    const config = cliConfig();
    return issuerSettingsClient({
      baseUrl: config.AIR_PLATFORM_URL,
      timeoutMs: config.PLATFORM_TIMEOUT_MS,
      partnerTokens: platformFromConfig(config).partnerTokens,
    });
  };

  platform
    .command('register-callback')
    .description('set the global authorization-callback URL (https; plain http only on loopback, for local runs)')
    .requiredOption('--url <url>', 'e.g. https://issuer.example/v1/cak/callbacks')
    .action(async (opts: { url: string }) => {
      await client().setCallbackUrl(opts.url);
      process.stdout.write(`callback URL set: ${opts.url}\n`);
    });

  platform
    .command('status')
    .description('print what the platform holds for us (callback URL, signing scheme, callback counts) as JSON')
    .action(async () => {
      process.stdout.write(`${JSON.stringify(await client().status(), null, 2)}\n`);
    });
}
