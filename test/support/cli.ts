import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

/** The `cak` bin as installed (package.json "bin"), by absolute path. */
export const CAK_BIN = resolve(__dirname, '..', '..', 'bin', 'cak.js');

export interface CakResult {
  status: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the `cak` CLI in a child process without blocking this one (the API and emulator it may talk
 * to run here), as a user would: the bin shim by absolute path, from a folder outside the project (a
 * fresh temp folder, removed afterwards, unless `options.cwd` names one), so nothing works only from
 * the project root. `env` is added to this process's environment (LOG_LEVEL silent).
 */
export function runCak(
  args: string[],
  env: NodeJS.ProcessEnv = {},
  options: { cwd?: string; timeoutMs?: number } = {},
): Promise<CakResult> {
  const cwd = options.cwd ?? mkdtempSync(join(tmpdir(), 'cak-cwd-'));
  return new Promise((done) => {
    execFile(
      process.execPath,
      [CAK_BIN, ...args],
      {
        cwd,
        // npm test sets INIT_CWD and npm_lifecycle_event for its own script: not ours to inherit
        env: { ...process.env, INIT_CWD: undefined, npm_lifecycle_event: undefined, LOG_LEVEL: 'silent', ...env },
        encoding: 'utf8',
        timeout: options.timeoutMs ?? 60_000,
        maxBuffer: 64 * 1024 * 1024,
      },
      (err, stdout, stderr) => {
        if (options.cwd === undefined) rmSync(cwd, { recursive: true, force: true });
        done({ status: err ? Number(err.code ?? 1) : 0, stdout, stderr });
      },
    );
  });
}
