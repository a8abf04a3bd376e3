#!/usr/bin/env node
'use strict';
/* eslint-disable @typescript-eslint/no-require-imports -- CommonJS, so it runs with no loader at all */
/* global __dirname */
/**
 * The `cak` bin (package.json "bin"), for `npx cak`, `npm link` and the Docker image. It runs the
 * compiled CLI, dist/cli/cak.js, when that exists and is not older than the sources (the image has
 * only dist; a checkout where `npm run build` ran before an edit has a stale one), and otherwise the
 * TypeScript sources through @swc-node/register, as `npm run cak` does. CAK_CLI_RUNTIME=dist|src
 * forces one. It runs from any folder: paths given on the command line are the caller's, the
 * project's own files are found from here (src/cli/paths.ts).
 */
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join, resolve } = require('node:path');

const root = resolve(__dirname, '..');
const built = join(root, 'dist', 'cli', 'cak.js');
const source = join(root, 'src', 'cli', 'cak.ts');

/** The newest modification time under a folder (0 when it does not exist). */
function newestMtime(dir) {
  let newest = 0;
  let entries;
  try {
    entries = readdirSync(dir, { withFileTypes: true });
  } catch {
    return 0;
  }
  for (const entry of entries) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

function runtime() {
  const forced = process.env.CAK_CLI_RUNTIME;
  if (forced === 'dist' || forced === 'src') return forced;
  if (!existsSync(built)) return 'src';
  if (!existsSync(source)) return 'dist';
  return statSync(built).mtimeMs >= newestMtime(join(root, 'src')) ? 'dist' : 'src';
}

function fail(message) {
  process.stderr.write(`cak: ${message}\n`);
  process.exit(1);
}

function load() {
  if (runtime() === 'dist') {
    if (!existsSync(built)) fail(`${built} is missing: run \`npm run build\` in ${root}`);
    return require(built);
  }
  // @swc-node/register reads tsconfig.json from the working directory unless told where it is.
  process.env.SWC_NODE_PROJECT = process.env.SWC_NODE_PROJECT || join(root, 'tsconfig.json');
  let register;
  try {
    register = require.resolve('@swc-node/register', { paths: [root] });
  } catch {
    fail(
      `no dist/cli/cak.js and no @swc-node/register: run \`npm ci\` (with dev dependencies) or \`npm run build\` in ${root}`,
    );
  }
  require(register);
  return require(source);
}

load().main(process.argv);
