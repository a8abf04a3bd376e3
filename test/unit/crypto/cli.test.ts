import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { secp256k1 } from '@noble/curves/secp256k1';

const run = promisify(execFile);
const cak = (args: string[]) =>
  run(process.execPath, ['-r', '@swc-node/register', resolve('src/cli/cak.ts'), ...args], { encoding: 'utf8' });

describe('cak CLI', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cak-cli-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('keygen, encrypt and decrypt raw files and base64 on secp256k1', async () => {
    const keys = JSON.parse((await cak(['keygen', '--curve', 'secp256k1'])).stdout) as Record<string, string>;
    const plain = join(dir, 'in.bin');
    writeFileSync(plain, Buffer.from([0, 1, 2, 255, 10]));
    await cak([
      'encrypt',
      '--curve',
      'secp256k1',
      '--public-key',
      keys.publicKey!,
      '--in',
      plain,
      '--out',
      join(dir, 'p'),
    ]);
    await cak([
      'decrypt',
      '--curve',
      'secp256k1',
      '--private-key',
      keys.privateKey!,
      '--in',
      join(dir, 'p'),
      '--out',
      join(dir, 'out'),
    ]);
    expect(readFileSync(join(dir, 'out')).equals(readFileSync(plain))).toBe(true);
    await cak([
      'encrypt',
      '--curve',
      'secp256k1',
      '--public-key',
      keys.publicKey!,
      '--in',
      plain,
      '--out',
      join(dir, 'b'),
      '--base64',
    ]);
    expect(readFileSync(join(dir, 'b'), 'utf8')).toMatch(/^[A-Za-z0-9+/=]+\n$/);
    writeFileSync(join(dir, 'key'), keys.privateKey!);
    const args = ['decrypt', '--curve', 'secp256k1', '--private-key-file', join(dir, 'key'), '--in', join(dir, 'b')];
    await cak([...args, '--base64', '--out', join(dir, 'out2')]);
    expect(readFileSync(join(dir, 'out2')).equals(readFileSync(plain))).toBe(true);
  });

  it('refuses a curve-ambiguous key without --curve, exit code 2 and the error code', async () => {
    let key = '';
    for (;;) {
      key = Buffer.from(secp256k1.getPublicKey(secp256k1.utils.randomPrivateKey(), true)).toString('hex');
      const failed = await cak(['encrypt', '--public-key', key, '--in', __filename]).then(
        () => null,
        (err: { code: number; stderr: string }) => err,
      );
      if (failed) {
        expect(failed.code).toBe(2);
        expect(failed.stderr).toContain('KEY_CURVE_AMBIGUOUS');
        return;
      }
    }
  });
});
