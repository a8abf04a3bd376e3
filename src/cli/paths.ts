import { realpathSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import { loadConfig, type Config } from '../config';

/**
 * Where `cak` resolves paths, so it works from any folder:
 * - paths the caller gives (`--in`, `--out`, key files) against the caller's folder: the working
 *   directory, or, under `npm run cak -- ...` (npm runs the script from the project root and puts the
 *   caller's folder in INIT_CWD), INIT_CWD;
 * - the project's own files (the schema registry and the local state folders, when their variables
 *   are unset or relative) against the project root, as the API and worker see them under `npm start`.
 * Configuration is the environment only (src/config.ts), as for the API and worker: no .env file is read.
 */

/** The project root: this file is src/cli/paths.ts, or dist/cli/paths.js once built. */
export const PROJECT_ROOT = resolve(__dirname, '..', '..');

function samePath(a: string, b: string): boolean {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return resolve(a) === resolve(b);
  }
}

/** The folder the user ran `cak` from. */
export function callerCwd(env: NodeJS.ProcessEnv = process.env, cwd = process.cwd()): string {
  // Only our own `npm run cak`: an INIT_CWD inherited from some other npm script (npm test, a
  // user's script whose commands run from its package root) says nothing about this process.
  const viaNpmRunCak = env.npm_lifecycle_event === 'cak' && !!env.INIT_CWD && samePath(cwd, PROJECT_ROOT);
  return viaNpmRunCak ? resolve(env.INIT_CWD!) : cwd;
}

/** A path the user typed, made absolute against the folder they ran `cak` from. */
export function userPath(path: string): string {
  return resolve(callerCwd(), path);
}

/** Configuration variables naming project files or folders (relative values are the project's). */
const PROJECT_PATHS = {
  SCHEMA_REGISTRY_PATH: 'config/schemas.yaml',
  CAK_DATA_DIR: '.data',
  CAK_TOOLS_DIR: '.tools',
} as const;

/** The environment with the project-relative paths anchored at the project root. */
export function projectEnv(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const anchored: NodeJS.ProcessEnv = { ...env };
  for (const [name, fallback] of Object.entries(PROJECT_PATHS)) {
    const value = env[name] || fallback;
    anchored[name] = isAbsolute(value) ? value : resolve(PROJECT_ROOT, value);
  }
  return anchored;
}

/** The same configuration as the API and worker (src/config.ts), wherever `cak` runs from. */
export function cliConfig(env: NodeJS.ProcessEnv = process.env): Config {
  return loadConfig(projectEnv(env));
}
