import { spawn, type ChildProcess } from 'node:child_process';
import { hostname } from 'node:os';
import type { Config } from '../../src/config';

/**
 * A real worker in a child process (test/support/worker-process.ts), on a config's task queue,
 * database and AIR platform URL, for tests that SIGKILL it mid-run.
 */
export interface WorkerChild {
  process: ChildProcess;
  /** the Temporal identity the SDK gives the worker by default (`<pid>@<host>`): how histories name it */
  identity: string;
  /** resolves with the signal (or exit code) the process ended with */
  exited: Promise<NodeJS.Signals | number | null>;
  /** SIGKILL, then wait for the process to be gone; a no-op once it has exited */
  kill(): Promise<NodeJS.Signals | number | null>;
}

/** Spawns the worker and waits (at most `readyTimeoutMs`) until it says `worker-ready`. */
export async function spawnWorkerChild(
  config: Pick<Config, 'TEMPORAL_TASK_QUEUE' | 'MONGODB_DB' | 'AIR_PLATFORM_URL' | 'GRIDFS_THRESHOLD_BYTES'>,
  options: { env?: NodeJS.ProcessEnv; readyTimeoutMs?: number } = {},
): Promise<WorkerChild> {
  const child = spawn(process.execPath, ['-r', '@swc-node/register', 'test/support/worker-process.ts'], {
    env: {
      ...process.env,
      LOG_LEVEL: 'silent',
      TEMPORAL_TASK_QUEUE: config.TEMPORAL_TASK_QUEUE,
      MONGODB_DB: config.MONGODB_DB,
      AIR_PLATFORM_URL: config.AIR_PLATFORM_URL,
      GRIDFS_THRESHOLD_BYTES: String(config.GRIDFS_THRESHOLD_BYTES),
      WORKER_HEALTH_PORT: '0',
      ...options.env,
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let ended: NodeJS.Signals | number | null | undefined;
  const exited = new Promise<NodeJS.Signals | number | null>((resolve) =>
    child.once('exit', (code, signal) => {
      ended = signal ?? code;
      resolve(ended);
    }),
  );
  const kill = async () => {
    if (ended === undefined) child.kill('SIGKILL');
    return exited;
  };
  const timeoutMs = options.readyTimeoutMs ?? 60_000;
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`worker child not ready in ${timeoutMs} ms`)), timeoutMs);
      child.stdout.on('data', (chunk: Buffer) => {
        out += chunk.toString('utf8');
        if (out.includes('worker-ready\n')) {
          clearTimeout(timer);
          resolve();
        }
      });
      void exited.then((how) => {
        clearTimeout(timer);
        reject(new Error(`worker child exited (${String(how)}) before it was ready (see its stderr above)`));
      });
    });
  } catch (err) {
    await kill();
    throw err;
  }
  child.stdout.resume(); // keep draining it
  return { process: child, identity: `${child.pid}@${hostname()}`, exited, kill };
}
