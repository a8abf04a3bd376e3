import { writeFile } from 'node:fs/promises';
import type { Command } from 'commander';
import { callbackPayloadSchema } from '../../domain/callback';
import { verifiersRepository } from '../../storage/verifiers';
import { positiveInt, print, printJson, withDatabase } from '../context';
import { UsageError } from '../exit-codes';
import { cliConfig, userPath } from '../paths';
import { readCakKeyFile, verifierFetch, type FetchedFile } from '../verifier-fetch';
import {
  generateVerifierKey,
  keyIdOf,
  publicJwk,
  readVerifierKey,
  verifierToken,
  VERIFIER_TOKEN_TTL_SECONDS,
} from '../verifier-keys';

/**
 * The Verifier's side (docs/callbacks.md, "Verifier access"; docs/cli.md):
 *   cak verifier keygen [--out <file>] [--kid <kid>]          a P-256 key for the Verifier's JWTs
 *   cak verifier register-key --verifier-did D --verifier-key F   the operator's step: registers its public half
 *   cak verifier token --verifier-did D --verifier-key F      a Verifier JWT, for curl
 *   cak verifier fetch --verifier-did D --verifier-key F --user U --schema S --cak-key F --out DIR [--api URL] [--json]
 */

const REGISTER_FIRST = [
  "First an operator registers the Verifier's public key (once):",
  '  cak verifier register-key --verifier-did <did> --verifier-key <file>',
  '  (or PUT /v1/admin/verifiers/keys {verifierDid, jwk: {kty, crv, x, y, kid}} with an admin token).',
].join('\n');

const CONSENT_FIRST = [
  "The user must have consented, and the platform's callback reached the issuer: otherwise the API",
  'answers 403 AUTHORIZATION_REQUIRED and this exits 4 with that code. Locally the emulator plays the',
  'consent and hands out the CAK private key: docs/cli.md, "A Verifier fetches the data".',
].join('\n');

const VERIFIER_KEY_FORMATS =
  'a P-256 key file: JWK JSON ({kty: "EC", crv: "P-256", x, y, d[, kid]}, e.g. from "cak verifier keygen"), ' +
  'or PEM (PKCS#8 "BEGIN PRIVATE KEY", SEC1 "BEGIN EC PRIVATE KEY")';

/** The API this deployment's configuration names: http://API_HOST:API_PORT (loopback for a wildcard host). */
function configuredApiUrl(): string {
  let config;
  try {
    config = cliConfig();
  } catch (err) {
    throw new UsageError(
      `pass --api <url>: the configuration does not load (${err instanceof Error ? err.message : String(err)})`,
    );
  }
  const wildcard = ['0.0.0.0', '::', '[::]'].includes(config.API_HOST);
  const host = wildcard ? '127.0.0.1' : config.API_HOST.includes(':') ? `[${config.API_HOST}]` : config.API_HOST;
  return `http://${host}:${config.API_PORT}`;
}

function describeFile(file: FetchedFile): string {
  return `wrote ${file.path} (${file.itemId}, ${file.contentType}, ${file.bytes} bytes${file.checked ? ', package checked' : ''})`;
}

export function registerVerifierCommands(program: Command): void {
  const verifier = program
    .command('verifier')
    .description("the Verifier's side: a key, its registration, a JWT, and fetch + decrypt a user's data in one go");

  verifier
    .command('keygen')
    .description(
      "a fresh ES256 (P-256) key for a Verifier's JWTs, as a private JWK with a kid (its RFC 7638 thumbprint)",
    )
    .option('--out <file>', 'write the private JWK here (mode 600; refuses to overwrite) and print the public JWK')
    .option('--kid <kid>', 'key id (default: the thumbprint)')
    .action(async (opts: { out?: string; kid?: string }) => {
      const jwk = await generateVerifierKey(opts.kid);
      if (opts.out === undefined) return printJson(jwk);
      const path = userPath(opts.out);
      try {
        await writeFile(path, `${JSON.stringify(jwk, null, 2)}\n`, { mode: 0o600, flag: 'wx' });
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'EEXIST') throw new UsageError(`--out ${opts.out}: already exists`);
        throw err;
      }
      process.stderr.write(`private key written to ${path}; its public JWK (to register):\n`);
      const { d: _d, ...publicHalf } = jwk;
      printJson(publicHalf);
    });

  verifier
    .command('register-key')
    .description(
      "register a Verifier's public key so its JWTs are accepted (what PUT /v1/admin/verifiers/keys does; " +
        'the database directly, like the other operator commands); replaces a key with the same kid',
    )
    .requiredOption('--verifier-did <did>', 'the Verifier (did:<method>:<id>)')
    .requiredOption('--verifier-key <file>', 'its public key: a JWK or PEM (BEGIN PUBLIC KEY), or its private key file')
    .option('--kid <kid>', "key id (default: the JWK's kid, else the key's RFC 7638 thumbprint)")
    .option('--json', 'print JSON')
    .action(async (opts: { verifierDid: string; verifierKey: string; kid?: string; json?: boolean }) => {
      // what PUT /v1/admin/verifiers/keys accepts: a DID as callbacks carry it, a P-256 JWK, a kid
      const did = callbackPayloadSchema.shape.verifierDid.safeParse(opts.verifierDid);
      if (!did.success) throw new UsageError(`--verifier-did: ${did.error.issues[0]?.message ?? 'not a DID'}`);
      const key = await readVerifierKey(userPath(opts.verifierKey), opts.verifierKey);
      const registered = { verifierDid: did.data, jwk: { ...publicJwk(key), kid: await keyIdOf(key, opts.kid) } };
      await withDatabase(async ({ db }) => {
        await verifiersRepository(db).putKey(registered.verifierDid, registered.jwk);
      });
      if (opts.json) return printJson(registered);
      print(`registered key ${registered.jwk.kid} for ${registered.verifierDid}`);
    });

  verifier
    .command('token')
    .description(
      'print a Verifier JWT for GET /v1/verifier/data (ES256; iss = sub = the verifierDid; aud "cak-issuer")',
    )
    .requiredOption('--verifier-did <did>', 'the Verifier (the JWT iss and sub)')
    .requiredOption('--verifier-key <file>', VERIFIER_KEY_FORMATS)
    .option('--ttl <seconds>', 'lifetime (1-600)', positiveInt(600), VERIFIER_TOKEN_TTL_SECONDS)
    .action(async (opts: { verifierDid: string; verifierKey: string; ttl: number }) => {
      const key = await readVerifierKey(userPath(opts.verifierKey), opts.verifierKey);
      print(await verifierToken(opts.verifierDid, key, { ttlSeconds: opts.ttl, shownAs: opts.verifierKey }));
    });

  verifier
    .command('fetch')
    .description(
      "fetch a user's data as a Verifier and decrypt it: mint the Verifier JWT, GET the manifest, download every " +
        'package by its signed URL, check its size / sha256 when the manifest gives them, decrypt with the CAK private ' +
        'key, write one file per item into --out (<itemId>.<ext>, mode 600)',
    )
    .requiredOption('--verifier-did <did>', 'the Verifier (the JWT iss and sub)')
    .requiredOption('--verifier-key <file>', VERIFIER_KEY_FORMATS)
    .requiredOption('--user <userId>', 'the user who consented')
    .requiredOption('--schema <schemaId>', 'the schema consented to')
    .requiredOption(
      '--cak-key <file>',
      'the CAK private key the verification SDK handed over: hex or base64 (as for "cak decrypt --private-key-file"), ' +
        'or JSON with "cakPrivateKey" (the emulator\'s answer) or "privateKey"',
    )
    .requiredOption('--out <dir>', 'folder for the decrypted files (created if missing; files in it are replaced)')
    .option(
      '--api <url>',
      'the issuer API (default: http://API_HOST:API_PORT of the configuration, http://127.0.0.1:3000)',
    )
    .option('--json', 'print a JSON report instead of one line per file')
    .addHelpText('after', `\n${REGISTER_FIRST}\n${CONSENT_FIRST}`)
    .action(
      async (opts: {
        verifierDid: string;
        verifierKey: string;
        user: string;
        schema: string;
        cakKey: string;
        out: string;
        api?: string;
        json?: boolean;
      }) => {
        const [verifierKey, cakKey] = await Promise.all([
          readVerifierKey(userPath(opts.verifierKey), opts.verifierKey),
          readCakKeyFile(userPath(opts.cakKey), opts.cakKey),
        ]);
        if (!verifierKey.privateKey) {
          throw new UsageError(
            `--verifier-key ${opts.verifierKey}: holds only a public key; signing needs the private key`,
          );
        }
        const report = await verifierFetch({
          apiUrl: opts.api ?? configuredApiUrl(),
          verifierDid: opts.verifierDid,
          verifierKey,
          userId: opts.user,
          schemaId: opts.schema,
          cakKey,
          outDir: userPath(opts.out),
          ...(opts.json ? {} : { onFile: (file: FetchedFile) => print(describeFile(file)) }),
        });
        if (opts.json) return printJson(report);
        print(
          `${report.files.length} file(s) decrypted into ${report.outDir} ` +
            `(record ${report.recordId} version ${report.version}, authorization ${report.authorizationId})`,
        );
      },
    );
}
