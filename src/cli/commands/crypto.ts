import { readFile, writeFile } from 'node:fs/promises';
import { Option, type Command } from 'commander';
import { eciesDecrypt, eciesEncrypt } from '../../crypto/ecies';
import {
  CryptoError,
  CURVES,
  generateKeyPair,
  parsePrivateKey,
  parsePublicKey,
  parsePublicKeyUnknownCurve,
  type Curve,
} from '../../crypto/keys';
import { UsageError } from '../exit-codes';
import { userPath } from '../paths';

/**
 * keygen, encrypt, decrypt: raw bytes in and out by default, base64 text with --base64. File paths
 * are the caller's (relative to the folder `cak` was run from, INIT_CWD under `npm run cak`).
 */
export function registerCryptoCommands(program: Command): void {
  const curveOption = () =>
    new Option('--curve <curve>', 'secp256r1 (the platform default) or secp256k1').choices([...CURVES]);

  program
    .command('keygen')
    .description('print a fresh CAK key pair as JSON (hex: 65-byte uncompressed public key, 32-byte private key)')
    .addOption(curveOption().default('secp256r1'))
    .action((opts: { curve: Curve }) => {
      const { publicKey, privateKey } = generateKeyPair(opts.curve);
      const json = { curve: opts.curve, publicKey: publicKey.toString('hex'), privateKey: privateKey.toString('hex') };
      process.stdout.write(`${JSON.stringify(json, null, 2)}\n`);
    });

  program
    .command('encrypt')
    .description('encrypt to a CAK public key (cak-ecies-v1)')
    .addOption(curveOption())
    .requiredOption('--public-key <key>', 'hex (0x optional) or base64, SEC1 compressed or uncompressed')
    .option('--in <file>', 'plaintext file (default: stdin)')
    .option('--out <file>', 'package file (default: stdout)')
    .option('--base64', 'write the package as base64 text')
    .action(async (opts: IoOptions & { curve?: Curve; publicKey: string }) => {
      // Without --curve the key must be valid on exactly one curve: never guess between the two.
      const key = opts.curve ? parsePublicKey(opts.publicKey, opts.curve) : parsePublicKeyUnknownCurve(opts.publicKey);
      const pkg = eciesEncrypt(key, await readInput(opts.in));
      await writeOutput(opts.out, opts.base64 ? Buffer.from(`${pkg.toString('base64')}\n`) : pkg);
    });

  program
    .command('decrypt')
    .description('decrypt a cak-ecies-v1 package with a CAK private key')
    .addOption(curveOption().default('secp256r1'))
    .option('--private-key <key>', 'hex (0x optional) or base64, 32 bytes')
    .option('--private-key-file <file>', 'read the private key from a file instead of the command line')
    .option('--in <file>', 'package file (default: stdin)')
    .option('--out <file>', 'plaintext file (default: stdout)')
    .option('--base64', 'read the package as base64 text')
    .action(async (opts: IoOptions & { curve: Curve; privateKey?: string; privateKeyFile?: string }) => {
      const keyText = opts.privateKeyFile
        ? (await readUserFile('--private-key-file', opts.privateKeyFile)).toString('utf8')
        : opts.privateKey;
      if (keyText === undefined) throw new CryptoError('KEY_EMPTY', 'pass --private-key or --private-key-file');
      const key = parsePrivateKey(keyText, opts.curve);
      const input = await readInput(opts.in);
      const pkg = opts.base64 ? decodeBase64(input) : input;
      await writeOutput(opts.out, eciesDecrypt(key, pkg));
    });
}

interface IoOptions {
  in?: string;
  out?: string;
  base64?: boolean;
}

function decodeBase64(input: Buffer): Buffer {
  const text = input.toString('utf8').replace(/\s+/g, '');
  const bytes = Buffer.from(text, 'base64');
  if (bytes.toString('base64') !== text) throw new CryptoError('CIPHERTEXT_INVALID', 'input is not valid base64');
  return bytes;
}

/** A file named on the command line, in the caller's folder; one that cannot be read is a usage error (exit 2). */
async function readUserFile(option: string, file: string): Promise<Buffer> {
  const path = userPath(file);
  try {
    return await readFile(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR') {
      throw new UsageError(`${option} ${file}: cannot read ${path} (${code})`);
    }
    throw err;
  }
}

async function readInput(file: string | undefined): Promise<Buffer> {
  if (file !== undefined) return readUserFile('--in', file);
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

async function writeOutput(file: string | undefined, bytes: Buffer): Promise<void> {
  if (file !== undefined) {
    await writeFile(userPath(file), bytes);
    return;
  }
  await new Promise<void>((resolve, reject) => process.stdout.write(bytes, (err) => (err ? reject(err) : resolve())));
}
