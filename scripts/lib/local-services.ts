/**
 * Brings up the two real services the system needs on one machine: the Temporal dev server and a
 * MongoDB wire-protocol database (FerretDB on SQLite, or a mongod found on PATH).
 *
 * Resolution order for each: an address given in the environment is used as is; else a binary on
 * PATH; else the cached build in `<tools>/bin`; else it is built there from the Go module proxy at a
 * pinned version. Servers we start are detached, log to `<data>/logs`, and are recorded in
 * `<data>/run/<name>.json` so that `down` stops only what `up` started.
 */
import { spawn, spawnSync } from 'node:child_process';
import {
  closeSync,
  cpSync,
  chmodSync,
  existsSync,
  mkdirSync,
  openSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { delimiter, join, resolve } from 'node:path';
import { Connection } from '@temporalio/client';
import { MongoClient } from 'mongodb';

const TEMPORAL_CLI_VERSION = 'v1.5.1';
const FERRETDB_VERSION = 'v1.24.2';

/** Custom search attributes the workflows set; registered at server start. All pseudonymous ids, never PII. */
const SEARCH_ATTRIBUTES = ['CakUserId', 'CakSchemaId', 'CakVerifierDid', 'CakIssuerDid'] as const;

type Say = (line: string) => void;

export interface Paths {
  dataDir: string;
  toolsDir: string;
}

interface RunRecord {
  pid: number;
  binary: string;
  address: string;
  startedAt: string;
}

class ServiceError extends Error {
  constructor(
    readonly code: 'GO_MISSING' | 'BUILD_FAILED' | 'NOT_READY' | 'SPAWN_FAILED',
    message: string,
  ) {
    super(message);
    this.name = 'ServiceError';
    Object.setPrototypeOf(this, ServiceError.prototype);
  }
}

// ---------------------------------------------------------------------------------------------
// Binaries

function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir && existsSync(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

function requireGo(): string {
  const go = findOnPath('go') ?? (existsSync('/usr/local/go/bin/go') ? '/usr/local/go/bin/go' : undefined);
  if (!go) {
    throw new ServiceError(
      'GO_MISSING',
      'Go (1.22 or newer) is needed once, to build the local Temporal and FerretDB servers. ' +
        'Install it (https://go.dev/dl/ or `apt-get install golang`), or point TEMPORAL_ADDRESS and MONGODB_URI at running servers.',
    );
  }
  return go;
}

function run(cmd: string, args: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }): string {
  const result = spawnSync(cmd, args, { ...opts, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.status !== 0) {
    throw new ServiceError('BUILD_FAILED', `${cmd} ${args.join(' ')} failed:\n${result.stderr || result.stdout}`);
  }
  return result.stdout;
}

function buildTemporal(paths: Paths, say: Say): string {
  const go = requireGo();
  const bin = resolve(paths.toolsDir, 'bin');
  say(`temporal: building github.com/temporalio/cli ${TEMPORAL_CLI_VERSION} with go install into ${bin}`);
  say('temporal: first build only; it takes 3-6 minutes on 2 cores. Later runs reuse the binary.');
  const started = Date.now();
  run(go, ['install', `github.com/temporalio/cli/cmd/temporal@${TEMPORAL_CLI_VERSION}`], {
    env: { ...process.env, GOBIN: bin, CGO_ENABLED: '0' },
  });
  say(`temporal: built in ${Math.round((Date.now() - started) / 1000)} s`);
  return join(bin, 'temporal');
}

/**
 * FerretDB's `go install` output panics at start ("Invalid build/version/version.txt"): the module
 * zip lacks the generated version file its release builds embed. So we fetch the same pinned module
 * through the proxy (`go mod download`), add that one file, and `go build` its own cmd/ferretdb.
 */
function buildFerretDb(paths: Paths, say: Say): string {
  const go = requireGo();
  const bin = resolve(paths.toolsDir, 'bin');
  const src = resolve(paths.toolsDir, 'src', `ferretdb-${FERRETDB_VERSION}`);
  say(`ferretdb: building github.com/FerretDB/FerretDB ${FERRETDB_VERSION} from the Go module proxy into ${bin}`);
  say('ferretdb: first build only; it takes 1-3 minutes on 2 cores.');
  const started = Date.now();
  const downloaded = JSON.parse(
    run(go, ['mod', 'download', '-json', `github.com/FerretDB/FerretDB@${FERRETDB_VERSION}`], {}),
  ) as { Dir?: string };
  if (!downloaded.Dir) throw new ServiceError('BUILD_FAILED', 'go mod download returned no module directory');
  rmSync(src, { recursive: true, force: true });
  cpSync(downloaded.Dir, src, { recursive: true });
  chmodRecursive(src);
  writeFileSync(join(src, 'build', 'version', 'version.txt'), `${FERRETDB_VERSION}\n`);
  mkdirSync(bin, { recursive: true });
  run(go, ['build', '-trimpath', '-o', join(bin, 'ferretdb'), './cmd/ferretdb'], {
    cwd: src,
    env: { ...process.env, CGO_ENABLED: '0' },
  });
  rmSync(src, { recursive: true, force: true });
  say(`ferretdb: built in ${Math.round((Date.now() - started) / 1000)} s`);
  return join(bin, 'ferretdb');
}

function chmodRecursive(dir: string): void {
  // Module cache files are read-only; the copy must be writable to add a file and to be removed later.
  spawnSync('chmod', ['-R', 'u+w', dir]);
  chmodSync(dir, 0o755);
}

export function resolveTemporalBinary(paths: Paths, say: Say): string {
  const cached = resolve(paths.toolsDir, 'bin', 'temporal');
  return findOnPath('temporal') ?? (existsSync(cached) ? cached : buildTemporal(paths, say));
}

function resolveDatabaseBinary(paths: Paths, say: Say): { kind: 'ferretdb' | 'mongod'; path: string } {
  const onPath = findOnPath('ferretdb');
  if (onPath) return { kind: 'ferretdb', path: onPath };
  const mongod = findOnPath('mongod');
  if (mongod) return { kind: 'mongod', path: mongod };
  const cached = resolve(paths.toolsDir, 'bin', 'ferretdb');
  return { kind: 'ferretdb', path: existsSync(cached) ? cached : buildFerretDb(paths, say) };
}

// ---------------------------------------------------------------------------------------------
// Readiness probes

export async function temporalReady(address: string, namespace = 'default'): Promise<boolean> {
  let connection: Connection | undefined;
  try {
    connection = await Connection.connect({ address, connectTimeout: 1_000 });
    await connection.workflowService.describeNamespace({ namespace });
    return true;
  } catch {
    return false;
  } finally {
    await connection?.close().catch(() => undefined);
  }
}

export async function mongoReady(uri: string): Promise<boolean> {
  const client = new MongoClient(uri, { serverSelectionTimeoutMS: 1_000, connectTimeoutMS: 1_000 });
  try {
    await client.db('admin').command({ ping: 1 });
    return true;
  } catch {
    return false;
  } finally {
    await client.close().catch(() => undefined);
  }
}

export async function waitUntil(
  what: string,
  probe: () => Promise<boolean>,
  timeoutMs: number,
  logFile?: string,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await probe()) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  const tail = logFile && existsSync(logFile) ? readFileSync(logFile, 'utf8').split('\n').slice(-20).join('\n') : '';
  throw new ServiceError(
    'NOT_READY',
    `${what} was not ready after ${timeoutMs / 1000}s.${tail ? `\nLast log lines (${logFile}):\n${tail}` : ''}`,
  );
}

/** Registers our search attributes on a server we did not start (ours get them at start-up). */
export async function ensureSearchAttributes(address: string, namespace: string): Promise<void> {
  const connection = await Connection.connect({ address });
  try {
    const existing = await connection.operatorService.listSearchAttributes({ namespace });
    const missing = SEARCH_ATTRIBUTES.filter((name) => !(name in (existing.customAttributes ?? {})));
    if (missing.length === 0) return;
    await connection.operatorService.addSearchAttributes({
      namespace,
      searchAttributes: Object.fromEntries(missing.map((name) => [name, 2 /* INDEXED_VALUE_TYPE_KEYWORD */])),
    });
  } finally {
    await connection.close();
  }
}

// ---------------------------------------------------------------------------------------------
// Process records

function recordPath(paths: Paths, name: string): string {
  return resolve(paths.dataDir, 'run', `${name}.json`);
}

export function readRecord(paths: Paths, name: string): RunRecord | undefined {
  try {
    const record = JSON.parse(readFileSync(recordPath(paths, name), 'utf8')) as RunRecord;
    return isAlive(record.pid) ? record : undefined;
  } catch {
    return undefined;
  }
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function spawnDetached(paths: Paths, name: string, binary: string, args: string[], address: string): RunRecord {
  mkdirSync(resolve(paths.dataDir, 'logs'), { recursive: true });
  mkdirSync(resolve(paths.dataDir, 'run'), { recursive: true });
  const logFile = logPath(paths, name);
  const out = openSync(logFile, 'a');
  const child = spawn(binary, args, { detached: true, stdio: ['ignore', out, out] });
  closeSync(out);
  if (child.pid === undefined) throw new ServiceError('SPAWN_FAILED', `could not start ${binary}`);
  child.unref();
  const record: RunRecord = { pid: child.pid, binary, address, startedAt: new Date().toISOString() };
  writeFileSync(recordPath(paths, name), JSON.stringify(record, null, 2));
  return record;
}

function logPath(paths: Paths, name: string): string {
  return resolve(paths.dataDir, 'logs', `${name}.log`);
}

/** Stops a server this module started (by its record); returns false when there was none. */
export async function stopService(paths: Paths, name: string, timeoutMs = 15_000): Promise<boolean> {
  const record = readRecord(paths, name);
  rmSync(recordPath(paths, name), { force: true });
  if (!record) return false;
  const signal = (sig: NodeJS.Signals) => {
    try {
      process.kill(-record.pid, sig); // the whole process group: the CLI may have children
    } catch {
      try {
        process.kill(record.pid, sig);
      } catch {
        /* already gone */
      }
    }
  };
  signal('SIGTERM');
  const deadline = Date.now() + timeoutMs;
  while (isAlive(record.pid) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  if (isAlive(record.pid)) signal('SIGKILL');
  return true;
}

// ---------------------------------------------------------------------------------------------
// Starting each service

interface TemporalOptions {
  port: number;
  uiPort: number;
  namespace: string;
  codecEndpoint?: string;
  name?: string;
}

export async function startTemporal(
  paths: Paths,
  options: TemporalOptions,
  say: Say,
): Promise<{ address: string; started: boolean }> {
  const name = options.name ?? 'temporal';
  const address = `127.0.0.1:${options.port}`;
  const mine = readRecord(paths, name);
  if (await temporalReady(address, options.namespace)) {
    say(
      `temporal: already running at ${address}${mine ? ` (pid ${mine.pid}, started by this script)` : ' (not started by this script; reusing it)'}`,
    );
    if (!mine) await ensureSearchAttributes(address, options.namespace);
    return { address, started: false };
  }
  const binary = resolveTemporalBinary(paths, say);
  const dbDir = resolve(paths.dataDir, name);
  mkdirSync(dbDir, { recursive: true });
  const args = [
    'server',
    'start-dev',
    '--ip',
    '127.0.0.1',
    '--port',
    String(options.port),
    '--ui-port',
    String(options.uiPort),
    '--db-filename',
    join(dbDir, 'temporal.db'),
    '--namespace',
    options.namespace,
    '--log-level',
    'warn',
    ...SEARCH_ATTRIBUTES.flatMap((attr) => ['--search-attribute', `${attr}=Keyword`]),
    ...(options.codecEndpoint ? ['--ui-codec-endpoint', options.codecEndpoint] : []),
  ];
  say(`temporal: starting ${binary} on ${address} (Web UI http://127.0.0.1:${options.uiPort}, state in ${dbDir})`);
  const record = spawnDetached(paths, name, binary, args, address);
  await waitUntil(
    `Temporal at ${address} (pid ${record.pid})`,
    () => temporalReady(address, options.namespace),
    90_000,
    logPath(paths, name),
  );
  return { address, started: true };
}

interface DatabaseOptions {
  port: number;
  name?: string;
}

export async function startDatabase(
  paths: Paths,
  options: DatabaseOptions,
  say: Say,
): Promise<{ uri: string; started: boolean }> {
  const name = options.name ?? 'database';
  const uri = `mongodb://127.0.0.1:${options.port}/`;
  const mine = readRecord(paths, name);
  if (await mongoReady(uri)) {
    say(
      `database: already running at ${uri}${mine ? ` (pid ${mine.pid}, started by this script)` : ' (not started by this script; reusing it)'}`,
    );
    return { uri, started: false };
  }
  const { kind, path: binary } = resolveDatabaseBinary(paths, say);
  const dir = resolve(paths.dataDir, name);
  mkdirSync(dir, { recursive: true });
  const args =
    kind === 'ferretdb'
      ? [
          '--handler=sqlite',
          `--sqlite-url=file:${dir}/`,
          `--state-dir=${dir}`,
          `--listen-addr=127.0.0.1:${options.port}`,
          '--telemetry=disable',
          '--debug-addr=-',
          '--log-level=warn',
        ]
      : ['--dbpath', dir, '--bind_ip', '127.0.0.1', '--port', String(options.port)];
  say(`database: starting ${kind} (${binary}) on ${uri} (data in ${dir})`);
  const record = spawnDetached(paths, name, binary, args, uri);
  await waitUntil(`${kind} at ${uri} (pid ${record.pid})`, () => mongoReady(uri), 60_000, logPath(paths, name));
  return { uri, started: true };
}
