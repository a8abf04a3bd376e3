/**
 * `npm start`: the whole system on one machine. Brings up the local services, then runs the worker,
 * the API and (unless a real platform is configured) the AIR platform emulator as child processes.
 * SIGINT/SIGTERM are passed to every child; the worker finishes or hands back in-flight activities
 * before it exits.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { loadConfig } from '../src/config';
import { servicesUp } from './services';

const say = (line: string) => process.stderr.write(`[start] ${line}\n`);

interface Part {
  name: string;
  entry: string;
}

async function main(): Promise<void> {
  const config = loadConfig();
  await servicesUp(config);

  const parts: Part[] = [
    { name: 'worker', entry: 'src/workers/worker.ts' },
    { name: 'api', entry: 'src/api/server.ts' },
  ];
  const emulator = config.EMULATOR_ENABLED && !config.explicit.platform;
  if (emulator) parts.push({ name: 'emulator', entry: 'src/emulator/server.ts' });

  const children = new Map<string, ChildProcess>();
  let stopping = false;
  const stopAll = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping ${[...children.keys()].join(', ')}`);
    for (const child of children.values()) child.kill(signal);
  };

  for (const part of parts) {
    const child = spawn(process.execPath, ['-r', '@swc-node/register', part.entry], {
      stdio: 'inherit',
      env: process.env,
    });
    children.set(part.name, child);
    child.once('exit', (code, signal) => {
      children.delete(part.name);
      if (!stopping) {
        say(`${part.name} exited unexpectedly (${signal ?? `code ${code}`}); stopping the rest`);
        process.exitCode = 1;
        stopAll('SIGTERM');
      }
      if (children.size === 0) process.exit();
    });
  }
  process.on('SIGINT', () => stopAll('SIGINT'));
  process.on('SIGTERM', () => stopAll('SIGTERM'));

  say(`API            http://${config.API_HOST}:${config.API_PORT}  (health: /healthz, /readyz)`);
  say(`Temporal Web UI ${config.TEMPORAL_UI_URL}`);
  say(
    emulator ? `AIR emulator   ${config.AIR_PLATFORM_URL}` : `AIR platform   ${config.AIR_PLATFORM_URL} (emulator off)`,
  );
  say('Ctrl-C stops the worker, API and emulator; `npm run services:down` stops Temporal and the database.');
}

main().catch((err: unknown) => {
  say(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
