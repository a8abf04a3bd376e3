import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { callerCwd, PROJECT_ROOT, projectEnv } from '../../src/cli/paths';
import { CAK_BIN, runCak } from '../support/cli';

jest.setTimeout(120_000);

const ROOT = resolve(__dirname, '..', '..');

/**
 * `cak` works from any folder: the paths a user types resolve against the folder they ran it from
 * (the working directory, or INIT_CWD under `npm run cak`), the project's own files against the
 * project. Every run here is the bin shim by absolute path, from outside the project.
 */
describe('cak from any folder', () => {
  let dir: string;
  let key: { publicKey: string; privateKey: string };
  const plain = Buffer.from('relative paths are the caller\u2019s\n');

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cak-paths-'));
    const keygen = await runCak(['keygen']);
    expect(keygen.status).toBe(0);
    key = JSON.parse(keygen.stdout) as typeof key;
  });

  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  /** A fresh folder under `dir` holding plain.txt and key.txt. */
  function workspace(name: string): string {
    const folder = join(dir, name);
    mkdirSync(join(folder, 'nested'), { recursive: true });
    writeFileSync(join(folder, 'plain.txt'), plain);
    writeFileSync(join(folder, 'key.txt'), `${key.privateKey}\n`);
    return folder;
  }

  it('resolves --in, --out and --private-key-file against the working directory', async () => {
    const folder = workspace('cwd');
    const enc = await runCak(
      ['encrypt', '--public-key', key.publicKey, '--in', 'plain.txt', '--out', 'nested/p.bin'],
      {},
      { cwd: folder },
    );
    expect(enc).toMatchObject({ status: 0, stderr: '' });
    const dec = await runCak(
      ['decrypt', '--private-key-file', '../key.txt', '--in', 'p.bin', '--out', 'out.txt'],
      {},
      { cwd: join(folder, 'nested') },
    );
    expect(dec).toMatchObject({ status: 0, stderr: '' });
    expect(readFileSync(join(folder, 'nested', 'out.txt'))).toEqual(plain);
    expect(existsSync(join(ROOT, 'out.txt'))).toBe(false);
  });

  it('resolves them against INIT_CWD when run as `npm run cak` (from the project root, npm_lifecycle_event=cak)', async () => {
    const folder = workspace('init-cwd');
    const npmEnv = { INIT_CWD: folder, npm_lifecycle_event: 'cak' };
    const enc = await runCak(
      ['encrypt', '--public-key', key.publicKey, '--in', 'plain.txt', '--out', 'nested/p.bin', '--base64'],
      npmEnv,
      { cwd: ROOT },
    );
    expect(enc).toMatchObject({ status: 0, stderr: '' });
    const dec = await runCak(
      ['decrypt', '--private-key-file', 'key.txt', '--in', 'nested/p.bin', '--base64', '--out', 'nested/out.txt'],
      npmEnv,
      { cwd: ROOT },
    );
    expect(dec).toMatchObject({ status: 0, stderr: '' });
    expect(readFileSync(join(folder, 'nested', 'out.txt'))).toEqual(plain);
    expect(existsSync(join(ROOT, 'nested'))).toBe(false);
  });

  it('ignores an INIT_CWD inherited from another npm script (e.g. npm test): the working directory wins', async () => {
    const folder = workspace('inherited');
    const elsewhere = workspace('elsewhere');
    const out = await runCak(
      ['encrypt', '--public-key', key.publicKey, '--in', 'plain.txt', '--out', 'p.bin'],
      { INIT_CWD: elsewhere, npm_lifecycle_event: 'test' },
      { cwd: folder },
    );
    expect(out.status).toBe(0);
    expect(existsSync(join(folder, 'p.bin'))).toBe(true);
    expect(existsSync(join(elsewhere, 'p.bin'))).toBe(false);
  });

  it('through the real `npm run cak -- ...` from another folder (npm --prefix): the caller\u2019s folder', async () => {
    const folder = workspace('npm');
    const npm = (args: string[]) =>
      new Promise<{ code: number; stderr: string }>((done) => {
        execFile(
          'npm',
          ['--prefix', ROOT, 'run', '-s', 'cak', '--', ...args],
          { cwd: folder, env: { ...process.env, LOG_LEVEL: 'silent' }, encoding: 'utf8', timeout: 60_000 },
          (err, _stdout, stderr) => done({ code: err ? Number(err.code ?? 1) : 0, stderr }),
        );
      });
    expect(
      await npm(['encrypt', '--public-key', key.publicKey, '--in', 'plain.txt', '--out', 'nested/npm.bin']),
    ).toEqual({ code: 0, stderr: '' });
    expect(
      await npm(['decrypt', '--private-key-file', 'key.txt', '--in', 'nested/npm.bin', '--out', 'npm.txt']),
    ).toEqual({ code: 0, stderr: '' });
    expect(readFileSync(join(folder, 'npm.txt'))).toEqual(plain);
    expect(existsSync(join(ROOT, 'npm.txt'))).toBe(false);
  });

  it('a missing input file is named as the caller gave it, resolved in their folder', async () => {
    const folder = workspace('missing');
    const out = await runCak(['decrypt', '--private-key', key.privateKey, '--in', 'nope.bin'], {}, { cwd: folder });
    expect(out.status).toBe(2); // a usage error: the argument names no readable file
    expect(out.stderr).toContain(`--in nope.bin: cannot read ${join(folder, 'nope.bin')} (ENOENT)`);
  });

  it('anchors the project-relative configuration (schema registry, local state) at the project, not the caller', () => {
    const env = projectEnv({ CAK_DATA_DIR: '/abs/data', SCHEMA_REGISTRY_PATH: 'config/other.yaml' });
    expect(env).toMatchObject({
      SCHEMA_REGISTRY_PATH: join(PROJECT_ROOT, 'config', 'other.yaml'),
      CAK_DATA_DIR: '/abs/data',
      CAK_TOOLS_DIR: join(PROJECT_ROOT, '.tools'),
    });
    expect(projectEnv({}).SCHEMA_REGISTRY_PATH).toBe(join(ROOT, 'config', 'schemas.yaml'));
    expect(existsSync(projectEnv({}).SCHEMA_REGISTRY_PATH!)).toBe(true);
    // INIT_CWD counts only for our own npm script, run from the project root
    expect(callerCwd({ INIT_CWD: '/caller', npm_lifecycle_event: 'cak' }, ROOT)).toBe('/caller');
    expect(callerCwd({ INIT_CWD: '/caller', npm_lifecycle_event: 'cak' }, '/somewhere')).toBe('/somewhere');
    expect(callerCwd({ INIT_CWD: '/caller', npm_lifecycle_event: 'test' }, ROOT)).toBe(ROOT);
  });

  it('the bin shim is executable and runs from any folder', async () => {
    expect(readFileSync(CAK_BIN, 'utf8').startsWith('#!/usr/bin/env node\n')).toBe(true);
    const out = await new Promise<{ code: number; stdout: string }>((done) =>
      execFile(CAK_BIN, ['--help'], { cwd: dir, encoding: 'utf8' }, (err, stdout) =>
        done({ code: err ? Number(err.code ?? 1) : 0, stdout }),
      ),
    );
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('Exit codes:');
  });
});
