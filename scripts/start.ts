/**
 * `npm start`: the whole system on one machine. Brings up the local services, then runs the worker,
 * the API and (unless a real platform is configured) the AIR platform emulator as child processes.
 * SIGINT/SIGTERM are passed to every child; the worker finishes or hands back in-flight activities
 * before it exits.
 *
 * Logs: each child writes JSON lines (pino) to a pipe. Every line is appended to
 * `<CAK_DATA_DIR>/logs/<part>.log` (api, worker, emulator; JSON lines: a line that is not JSON, such
 * as a crash's stack trace on stderr, is wrapped in one) and shown: pretty-printed (pino-pretty) when
 * stdout is a terminal, outside production; otherwise as it came, JSON. stdout carries the
 * children's stdout, stderr their stderr and this script's own notes.
 *
 * Outside production, once the API answers, the credentials and ids a newcomer needs are printed
 * once (stderr): each taken from the loaded configuration and schema registry, and a secret only
 * when it is a public development default (src/config.ts `isDevelopmentSecret`, the test that
 * production refuses them by); a value of your own is named, never shown.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { isColorSupported, prettyFactory } from 'pino-pretty';
import { hashApiKey } from '../src/api/auth';
import {
  DEV_ADMIN_TOKEN,
  DEV_API_KEY,
  isDevelopmentSecret,
  loadConfig,
  parseClientScopes,
  type Config,
} from '../src/config';
import { parseSecrets } from '../src/platform/callback-signature';
import { loadSchemaRegistry } from '../src/routing/schema-registry';
import { servicesUp } from './services';

const say = (line: string) => process.stderr.write(`[start] ${line}\n`);

interface Part {
  name: string;
  entry: string;
}

type Prettify = (line: string) => string;

/** Pretty on a terminal outside production; JSON (as the children wrote it) otherwise. */
function prettifier(config: Config): Prettify | undefined {
  if (config.NODE_ENV === 'production' || !process.stdout.isTTY) return undefined;
  return prettyFactory({
    colorize: isColorSupported,
    translateTime: 'SYS:HH:MM:ss.l',
    // `name` (api, worker, emulator) stays; `component` repeats it, `service` is always cak-issuer
    ignore: 'pid,hostname,service,component',
    singleLine: true,
  });
}

function isJsonLine(line: string): boolean {
  if (!line.startsWith('{')) return false;
  try {
    return typeof JSON.parse(line) === 'object';
  } catch {
    return false;
  }
}

/**
 * One child stream, line by line: appended to the part's log file (a line that is not JSON wrapped
 * in a pino-shaped one), and written to `to`, pretty or as it came. Resolves when the stream ends.
 */
function relay(
  part: string,
  from: Readable,
  to: NodeJS.WriteStream,
  file: WriteStream,
  prettify: Prettify | undefined,
): Promise<void> {
  const stream = to === process.stderr ? 'stderr' : 'stdout';
  const lines = createInterface({ input: from, crlfDelay: Infinity });
  lines.on('line', (line) => {
    const json = isJsonLine(line);
    const record = json
      ? line
      : JSON.stringify({
          level: stream === 'stderr' ? 40 : 30,
          time: new Date().toISOString(),
          service: 'cak-issuer',
          component: part,
          name: part,
          stream,
          msg: line,
        });
    file.write(`${record}\n`);
    if (!prettify) to.write(`${line}\n`);
    else to.write(json ? prettify(line) : `[${part}] ${line}\n`);
  });
  return new Promise((done) => lines.once('close', done));
}

/** `host` as something a local client can connect to (a wildcard listen address is reached on loopback). */
const reachable = (host: string) => (host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host);

async function waitForHealth(url: string, stopped: () => boolean, timeoutMs = 60_000): Promise<boolean> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until && !stopped()) {
    try {
      if ((await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(1_000) })).ok) return true;
    } catch {
      /* not listening yet */
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return false;
}

/** Entries `id:sha256hex(secret)`: the id, and the secret when it is the development default of that kind. */
function hashedEntries(spec: string, devSecret: string): { id: string; secret?: string }[] {
  return spec.split(',').map((entry) => {
    const [id = '', hash = ''] = entry.split(':');
    return isDevelopmentSecret(hash) && hashApiKey(devSecret) === hash ? { id, secret: devSecret } : { id };
  });
}

/** What a newcomer needs to issue, make a consent and look inside runs: every value from `config` and the registry. */
function developmentBanner(config: Config, emulator: boolean): string[] {
  const api = `http://${reachable(config.API_HOST)}:${config.API_PORT}`;
  const platform = config.AIR_PLATFORM_URL;
  const notShown = (variable: string) => `(your own, from ${variable}; not shown)`;
  const registry = loadSchemaRegistry(config.SCHEMA_REGISTRY_PATH, config.ISSUER_DIDS);
  const scopes = parseClientScopes(config.API_CLIENT_SCOPES);
  const lines: string[] = [];
  const row = (what: string, value: string) => lines.push(`  ${what.padEnd(18)} ${value}`);

  lines.push('', `== local development credentials (public development defaults: production refuses them) ==`);
  row('API', `${api}  (OpenAPI: ${api}/openapi.json)`);
  for (const { id, secret } of hashedEntries(config.API_KEYS, DEV_API_KEY)) {
    const grants = scopes
      .filter((s) => s.clientId === id)
      .map((s) => s.issuerDid + (s.schemaId ? `/${s.schemaId}` : ''))
      .join(', ');
    row(
      'API key',
      `client "${id}": x-api-key: ${secret ?? notShown('API_KEYS')}  (may issue for ${grants || 'nothing'})`,
    );
  }
  for (const { id, secret } of hashedEntries(config.ADMIN_TOKENS, DEV_ADMIN_TOKEN)) {
    row('admin token', `"${id}": Authorization: Bearer ${secret ?? notShown('ADMIN_TOKENS')}  (/v1/admin/...)`);
  }
  const codecTokens = config.CODEC_AUTH_TOKENS.filter(isDevelopmentSecret);
  row(
    'codec token',
    `${codecTokens[0] ?? notShown('CODEC_AUTH_TOKENS')}  (sign in at ${api}/codec/session; docs/operations.md)`,
  );
  if (config.CALLBACK_SIGNATURE_SCHEME === 'standard-webhooks') {
    const secrets = parseSecrets(config.CALLBACK_SECRETS).filter(isDevelopmentSecret);
    row('callback secret', `${secrets[0] ?? notShown('CALLBACK_SECRETS')}  (Standard Webhooks)`);
  } else {
    row('callback signing', `jws-es256, keys from ${config.PLATFORM_JWKS_URL}`);
  }
  row('issuer DID', config.ISSUER_DIDS.join(', '));
  row('Temporal Web UI', `${config.TEMPORAL_UI_URL}/namespaces/${config.TEMPORAL_NAMESPACE}/workflows`);
  row('logs', `${relative(process.cwd(), resolve(config.CAK_DATA_DIR, 'logs')) || '.'}/<api|worker|emulator>.log`);

  lines.push(
    '',
    `  programs (${config.SCHEMA_REGISTRY_PATH}): credentialId -> schemaId, issuer, item kinds, callback route`,
  );
  const schemaRows = registry.schemaIds().flatMap((schemaId) => {
    const entry = registry.get(schemaId)!;
    const route = registry.route(schemaId);
    const routed = route ? `${route.handlers.join('+')} (${route.accessWindow})` : 'unrouted';
    return entry.programs.map((program) => [
      program,
      schemaId,
      entry.issuerDid,
      entry.allowedItemKinds.join(','),
      routed,
    ]);
  });
  const widths = [0, 1, 2, 3].map((i) => Math.max(...schemaRows.map((r) => r[i]!.length)));
  for (const r of schemaRows) lines.push(`    ${r.map((cell, i) => cell.padEnd(widths[i] ?? 0)).join('  ')}`);

  const [first] = schemaRows;
  if (first) {
    const [credentialId, schemaId, issuerDid] = first;
    const issue = {
      userId: 'user-123',
      issuerDid,
      credentialId,
      schemaId,
      credentialSubject: {},
      fields: { name: 'Ada' },
    };
    lines.push('', '  issue (x-api-key):');
    lines.push(`    POST ${api}/v1/issuances ${JSON.stringify(issue)}`);
    lines.push(`    GET  ${api}/v1/issuances/<issuanceId>   (status, workflowId, webUiUrl)`);
  }
  if (emulator) {
    const routed = schemaRows.find((r) => r[4] !== 'unrouted') ?? first;
    const callbackUrl = `${api}/v1/cak/callbacks`;
    lines.push('', `  make a consent (the AIR platform emulator, ${platform}):`);
    lines.push(
      `    1. register our callback URL once per emulator run: npm run cak -- platform register-callback --url ${callbackUrl}`,
      `       (that is POST ${platform}/issuer/modify ${JSON.stringify({ callbackUrl })}`,
      `        with x-partner-auth: a Partner JWT from POST ${api}/v1/partner-tokens {"scope":"issue"})`,
      `    2. a Verifier starts: POST ${platform}/verifier/verify/initialize ${JSON.stringify({ issuerDid: routed?.[2] ?? config.ISSUER_DIDS[0] })}`,
      '       -> callbackRecordId',
      `    3. the user consents: POST ${platform}/emulator/verifier/consent ${JSON.stringify({
        callbackRecordId: '<from 2>',
        userId: 'user-123',
        verifierDid: 'did:air:id:verifier-1',
        schemaId: routed?.[1] ?? '<schemaId>',
      })}`,
      '       -> cakPrivateKey; the signed callback goes to our API',
      `       delivery: GET ${platform}/emulator/callbacks/<callbackRecordId>`,
    );
  }
  lines.push('');
  return lines;
}

async function main(): Promise<void> {
  const config = loadConfig();
  await servicesUp(config);
  const prettify = prettifier(config);
  const logsDir = resolve(config.CAK_DATA_DIR, 'logs');
  mkdirSync(logsDir, { recursive: true });
  // A closed stdout or stderr (`npm start | head`) must not crash the supervisor of the children.
  for (const out of [process.stdout, process.stderr]) out.on('error', () => undefined);

  const parts: Part[] = [
    { name: 'worker', entry: 'src/workers/worker.ts' },
    { name: 'api', entry: 'src/api/server.ts' },
  ];
  const emulator = config.EMULATOR_ENABLED && !config.explicit.platform;
  if (emulator) parts.push({ name: 'emulator', entry: 'src/emulator/server.ts' });

  const children = new Map<string, ChildProcess>();
  const files: WriteStream[] = [];
  let stopping = false;
  const stopAll = (signal: NodeJS.Signals) => {
    if (stopping) return;
    stopping = true;
    say(`${signal}: stopping ${[...children.keys()].join(', ')}`);
    for (const child of children.values()) child.kill(signal);
  };
  const exitWhenDone = async () => {
    await Promise.all(files.map((file) => new Promise<void>((done) => file.end(done))));
    process.exit();
  };

  for (const part of parts) {
    const child = spawn(process.execPath, ['-r', '@swc-node/register', part.entry], {
      stdio: ['inherit', 'pipe', 'pipe'],
      env: process.env,
    });
    const file = createWriteStream(join(logsDir, `${part.name}.log`), { flags: 'a' });
    files.push(file);
    const relayed = Promise.all([
      relay(part.name, child.stdout, process.stdout, file, prettify),
      relay(part.name, child.stderr, process.stderr, file, prettify),
    ]);
    children.set(part.name, child);
    // 'close': the process has exited and its output has been read to the end.
    child.once('close', (code, signal) => {
      void relayed.then(() => {
        children.delete(part.name);
        if (!stopping) {
          say(`${part.name} exited unexpectedly (${signal ?? `code ${code}`}); stopping the rest`);
          process.exitCode = 1;
          stopAll('SIGTERM');
        }
        if (children.size === 0) void exitWhenDone();
      });
    });
  }
  process.on('SIGINT', () => stopAll('SIGINT'));
  process.on('SIGTERM', () => stopAll('SIGTERM'));

  say(`API            http://${config.API_HOST}:${config.API_PORT}  (health: /healthz, /readyz)`);
  say(`Temporal Web UI ${config.TEMPORAL_UI_URL}`);
  say(
    emulator ? `AIR emulator   ${config.AIR_PLATFORM_URL}` : `AIR platform   ${config.AIR_PLATFORM_URL} (emulator off)`,
  );
  say(
    `logs           ${relative(process.cwd(), logsDir) || '.'}/{${parts.map((p) => p.name).join(',')}}.log (JSON lines)`,
  );
  say('Ctrl-C stops the worker, API and emulator; `npm run services:down` stops Temporal and the database.');

  if (config.NODE_ENV !== 'production') {
    // After the start-up chatter: once the API, the worker (unless its port is picked at random) and the emulator answer.
    const waitFor = [
      `http://${reachable(config.API_HOST)}:${config.API_PORT}`,
      ...(config.WORKER_HEALTH_PORT > 0
        ? [`http://${reachable(config.WORKER_HEALTH_HOST)}:${config.WORKER_HEALTH_PORT}`]
        : []),
      ...(emulator ? [config.AIR_PLATFORM_URL] : []),
    ];
    const down: string[] = [];
    for (const url of waitFor) if (!(await waitForHealth(url, () => stopping))) down.push(url);
    if (stopping) return;
    if (down.length > 0) say(`no answer from ${down.join(', ')} (/healthz) within a minute; the credentials anyway:`);
    process.stderr.write(`${developmentBanner(config, emulator).join('\n')}\n`);
  }
}

main().catch((err: unknown) => {
  say(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
