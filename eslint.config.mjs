// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

const layer = (name) => [`../${name}`, `../${name}/*`, `./${name}`, `./${name}/*`];
const banned = (layers, message, allowTypeImports = false) => ({
  group: layers.flatMap(layer),
  message,
  allowTypeImports,
});
const TOP = ['api', 'workers', 'cli', 'emulator'];

function layerRules() {
  const rule = (files, patterns) => ({
    files,
    rules: { '@typescript-eslint/no-restricted-imports': ['error', { patterns }] },
  });
  return [
    rule(
      ['src/workflows/**/*.ts'],
      [
        {
          group: [
            'node:*',
            'fs',
            'path',
            'crypto',
            'http',
            'https',
            'net',
            'os',
            'child_process',
            'mongodb',
            'express',
          ],
          message: 'Workflow code must be deterministic: no Node built-ins, no I/O modules.',
        },
        banned(
          [
            'storage',
            'crypto',
            'platform',
            'routing',
            'operations',
            'observability',
            'temporal',
            'net',
            'config',
            ...TOP,
          ],
          'Workflows import domain only.',
        ),
        banned(['activities'], 'Workflows name their activities by type only.', true),
      ],
    ),
    rule(
      ['src/domain/**/*.ts'],
      [
        banned(
          [
            'crypto',
            'storage',
            'platform',
            'routing',
            'activities',
            'workflows',
            'operations',
            'observability',
            'temporal',
            'net',
            'config',
            ...TOP,
          ],
          'domain is the bottom layer: pure types and rules, no imports from other layers.',
        ),
      ],
    ),
    rule(
      ['src/crypto/**/*.ts', 'src/platform/**/*.ts', 'src/routing/**/*.ts'],
      [
        banned(['storage', 'activities', 'operations', ...TOP], 'crypto, platform and routing import domain only.'),
        banned(['workflows'], 'Only a type of a workflow may be named here.', true),
      ],
    ),
    rule(
      ['src/storage/**/*.ts'],
      [
        banned(
          ['crypto', 'platform', 'routing', 'activities', 'operations', ...TOP],
          'storage imports domain only (never crypto: it stores what callers sealed).',
        ),
        banned(['workflows'], 'Only a type of a workflow may be named here.', true),
      ],
    ),
    rule(
      ['src/api/**/*.ts'],
      [
        banned(
          ['activities', 'workers', 'cli', 'emulator'],
          'api imports crypto, storage, platform, routing and operations: never activities or workers.',
        ),
        banned(['workflows'], 'Start workflows by type: import type { ... } from the workflows.', true),
      ],
    ),
    rule(
      ['src/activities/**/*.ts', 'src/operations/**/*.ts'],
      [
        banned(['api', 'workers', 'cli', 'emulator'], 'Nothing imports api or workers.'),
        banned(['workflows'], 'Start workflows by type: import type { ... } from the workflows.', true),
      ],
    ),
    rule(
      [
        'src/cli/**/*.ts',
        'src/emulator/**/*.ts',
        'src/workers/**/*.ts',
        'src/observability/**/*.ts',
        'src/temporal/**/*.ts',
        'src/net/**/*.ts',
      ],
      [banned(['api', 'workers'], 'Nothing imports api or workers.')],
    ),
  ];
}

export default tseslint.config(
  { ignores: ['node_modules/', 'dist/', '.tools/', '.data/', 'coverage/', 'test/artifacts/'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: true,
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { fixStyle: 'inline-type-imports' }],
      eqeqeq: ['error', 'always'],
    },
  },
  // Imports go one way (docs/architecture: domain <- crypto, storage, platform, routing <- activities,
  // api, operations <- workers, cli). Type-only imports are allowed where they carry no code: a
  // workflow names its activities' types, a client names the workflow it starts.
  ...layerRules(),
  {
    files: ['test/**/*.ts', 'bench/**/*.ts'],
    rules: {
      '@typescript-eslint/no-non-null-assertion': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
    },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
    languageOptions: {
      parserOptions: { projectService: false, program: null, project: false },
      globals: { module: 'writable', require: 'readonly', process: 'readonly', console: 'readonly' },
    },
  },
);
