import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Config } from '../../src/config';
import { callbackConfig, startSystem, type System } from '../support/system';

/**
 * The README's "Try it" section, run as written: every ```sh block of it, in order, in one bash
 * (`set -euo pipefail`), against a stack of this test's own (the real API, the AIR emulator and a
 * worker on spare ports, its own database and task queue). The commands take their addresses from
 * `API`, `EMULATOR` and `UI` (defaulting to `npm start`'s), and the CLI its configuration from the
 * environment, so a developer's `npm start` on the default ports is never touched.
 */

const README = resolve(__dirname, '../../README.md');

/** The ```sh blocks of a README section, in order. */
function sectionBlocks(markdown: string, heading: string): string[] {
  const start = markdown.indexOf(`\n## ${heading}\n`);
  if (start < 0) throw new Error(`README has no "## ${heading}" section`);
  const rest = markdown.slice(start + heading.length + 5);
  const end = rest.search(/\n## /);
  const section = end < 0 ? rest : rest.slice(0, end);
  return [...section.matchAll(/^```(?:sh|bash)\n([\s\S]*?)^```$/gm)].map((m) => m[1]!);
}

function runBash(script: string, env: NodeJS.ProcessEnv): Promise<{ code: number | null; output: string }> {
  return new Promise((resolvePromise) => {
    const child = spawn('bash', ['-c', script], { cwd: resolve(__dirname, '../..'), env });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
    const timer = setTimeout(() => child.kill('SIGKILL'), 150_000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolvePromise({ code, output });
    });
  });
}

describe('README "Try it"', () => {
  let config: Config;
  let stack: System;
  let tmp: string; // the README's `mktemp -d` lands here (TMPDIR), removed afterwards

  beforeAll(async () => {
    tmp = mkdtempSync(join(tmpdir(), 'cak-try-it-'));
    config = await callbackConfig();
    stack = await startSystem({ config, sealLoop: true, registerCallbackUrl: true });
  }, 120_000);

  afterAll(async () => {
    await stack?.close();
    if (tmp) rmSync(tmp, { recursive: true, force: true });
  });

  it('every command block runs as written, and the data comes back byte for byte', async () => {
    const blocks = sectionBlocks(readFileSync(README, 'utf8'), 'Try it');
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    // Each block announces itself, so a failure names the block it happened in.
    const script = [
      'set -euo pipefail',
      ...blocks.map((block, i) => `echo '### README "Try it" block ${i + 1} of ${blocks.length}'\n${block}`),
    ].join('\n');
    const { code, output } = await runBash(script, {
      ...process.env,
      // the commands' variables (README: API=${API:-...})
      API: stack.api.url,
      EMULATOR: stack.emulator.url,
      UI: config.TEMPORAL_UI_URL,
      // the CLI's configuration: this stack's database, emulator and API
      MONGODB_DB: config.MONGODB_DB,
      AIR_PLATFORM_URL: stack.emulator.url,
      API_PORT: String(config.API_PORT),
      TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
      LOG_LEVEL: 'silent',
      TMPDIR: tmp,
    });
    const lastBlock = [...output.matchAll(/### README "Try it" block (\d+)/g)].pop()?.[1] ?? '?';
    const report = `exit ${code} in block ${lastBlock}; output:\n${output.slice(-6000)}`;
    expect({ code, report }).toEqual({ code: 0, report: expect.any(String) });
    // What the commands print when they did what the README says (an `a && echo b` line does not
    // stop bash when `a` fails, so its echo is checked here).
    for (const expected of [
      'no plaintext in the database files',
      '"status":"completed"',
      '"webUiUrl":"',
      'callback URL set',
      'active',
      'decrypted = issued',
      'fetched = issued',
      'audit chain intact',
    ]) {
      expect({ expected, found: output.includes(expected), report }).toEqual({ expected, found: true, report });
    }
  }, 180_000);
});
