// Builds the optional native addon (native/ec_point.c) with node-gyp. Run by `npm install` / `npm ci`
// (the root package's install script) and by `npm run build:native`.
//
// Never fails the install: without a C compiler, Python or node's headers the addon is simply
// absent and src/crypto falls back to pure node:crypto (slower for small messages, same bytes).
// Plain JavaScript on purpose: it runs before dev dependencies (TypeScript) are guaranteed to exist.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';

const TIME_LIMIT_MS = 180_000;

function nodeGypScript() {
  // npm tells its lifecycle scripts where its bundled node-gyp is; outside npm, look next to npm.
  if (process.env.npm_config_node_gyp && existsSync(process.env.npm_config_node_gyp)) {
    return process.env.npm_config_node_gyp;
  }
  const besideNpm = join(
    dirname(process.execPath),
    '..',
    'lib',
    'node_modules',
    'npm',
    'node_modules',
    'node-gyp',
    'bin',
    'node-gyp.js',
  );
  return existsSync(besideNpm) ? besideNpm : null;
}

// The headers (node_api.h and node's own OpenSSL headers) ship with node itself, in
// <prefix>/include/node; pointing node-gyp there means it downloads nothing.
function nodeDir() {
  if (process.env.npm_config_nodedir) return process.env.npm_config_nodedir;
  const prefix = join(dirname(process.execPath), '..');
  return existsSync(join(prefix, 'include', 'node', 'node_api.h')) ? prefix : null;
}

function main() {
  if (process.env.CAK_SKIP_NATIVE_BUILD === '1') {
    console.log('cak native addon: skipped (CAK_SKIP_NATIVE_BUILD=1)');
    return;
  }
  const gyp = nodeGypScript();
  if (!gyp) {
    console.warn('cak native addon: not built (node-gyp not found); using the node:crypto fallback');
    return;
  }
  const dir = nodeDir();
  const args = [gyp, 'rebuild', ...(dir ? [`--nodedir=${dir}`] : [])];
  const started = Date.now();
  const result = spawnSync(process.execPath, args, {
    cwd: import.meta.dirname,
    encoding: 'utf8',
    timeout: TIME_LIMIT_MS,
  });
  if (result.status === 0) {
    console.log(`cak native addon: built in ${Date.now() - started} ms`);
    return;
  }
  const output = `${result.stdout ?? ''}${result.stderr ?? ''}`.trim().split('\n').slice(-15).join('\n');
  console.warn(
    `cak native addon: not built (${result.error ? result.error.message : `node-gyp exited ${result.status}`}); ` +
      `using the node:crypto fallback. Last lines:\n${output}`,
  );
}

main();
