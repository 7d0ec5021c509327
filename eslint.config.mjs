// ESLint for src/ and test/ (type-aware) and the plain JavaScript beside them (bench/, test/support/*.js,
// this file, jest.config.js). The layering of src/ is a lint rule (boundaries/dependencies below), so
// `npm test` teaches it: see "Layers" in docs/decisions.md.
import js from '@eslint/js';
import boundaries from 'eslint-plugin-boundaries';
import tseslint from 'typescript-eslint';
import { defineConfig } from 'eslint/config';

// Each folder of src/ is an element; the files directly in src/ (KeelModule, AppModule, the app
// setup, the public surface, main.ts) are "root", the top of the tree. The first match wins.
const FOLDERS = [
  'core',
  'handlers',
  'store',
  'queue',
  'recovery',
  'workers',
  'jobs',
  'schedules',
  'types',
  'events',
  'config',
  'lifecycle',
  'metrics',
  'logging',
  'health',
  'auth',
  'gate',
  'common',
  'dashboard',
  'tracing',
];
const ELEMENTS = [
  ...FOLDERS.map((type) => ({ type, pattern: `src/${type}`, partialMatch: false })),
  { type: 'root', pattern: 'src', partialMatch: false },
  { type: 'test', pattern: 'test', partialMatch: false },
];
// Single files the layers care about.
const FILES = [
  { category: 'main', pattern: 'src/main.ts' },
  { category: 'metrics-http', pattern: 'src/metrics/{metrics.controller,metrics-http.module}.ts' },
];

const to = (types, categories) => [...(types ? [{ to: { element: { types } } }] : []), ...(categories ? [{ to: { file: { categories } } }] : [])];
const fromTypes = (types) => ({ element: { types } });

const LAYERS = {
  default: 'allow',
  policies: [
    {
      from: fromTypes('core'),
      disallow: to({ noneOf: ['core'] }),
      message: 'src/core is the domain core: it imports none of our modules',
    },
    {
      from: fromTypes('handlers'),
      disallow: to({ noneOf: ['handlers', 'core', 'config', 'common', 'logging'] }),
      message: 'the handler registry is read by the queue and every layer above: it imports only core, config, common and logging',
    },
    {
      from: fromTypes('store'),
      disallow: to({ noneOf: ['store', 'core', 'config', 'lifecycle', 'common', 'logging'] }),
      message: 'a store imports only core, config, lifecycle, common and logging: what reacts to its commits subscribes to its commit stream',
    },
    {
      from: fromTypes('queue'),
      disallow: to({ anyOf: ['workers', 'recovery', 'jobs'] }),
      message: 'the queue is below workers, recovery and the REST feature (src/jobs)',
    },
    {
      from: fromTypes('recovery'),
      disallow: to({ anyOf: ['workers', 'jobs'] }),
      message: 'recovery is below the workers and the REST feature (src/jobs)',
    },
    {
      from: fromTypes('workers'),
      disallow: to({ anyOf: ['jobs', 'health', 'auth'] }, 'metrics-http'),
      message: 'workers are below the REST feature, health, auth and the metrics controller',
    },
    {
      from: fromTypes({ anyOf: ['core', 'handlers', 'store', 'queue', 'recovery', 'workers', 'jobs'] }),
      disallow: to({ anyOf: ['schedules'] }),
      message: 'schedules sit on the REST feature (src/jobs): the layers below never import them',
    },
    {
      from: fromTypes({ anyOf: ['core', 'handlers', 'store', 'queue', 'recovery', 'workers', 'jobs', 'schedules'] }),
      disallow: to({ anyOf: ['types'] }),
      message: 'the job types routes (src/types) sit on the workers: the layers below never import them',
    },
    {
      from: fromTypes('tracing'),
      disallow: to({ noneOf: ['tracing', 'core'] }),
      message: 'tracing wraps what the layers do in spans: it imports only the domain core',
    },
    {
      from: fromTypes('dashboard'),
      disallow: to({ noneOf: ['dashboard', 'auth', 'common'] }),
      message: 'the dashboard is a client of the HTTP API: it imports only auth and common, no service',
    },
    {
      from: fromTypes({ noneOf: ['dashboard', 'root', 'test'] }),
      disallow: to({ anyOf: ['dashboard'] }),
      message: 'the dashboard sits on top: only KeelModule imports it',
    },
    {
      from: fromTypes({ anyOf: ['core', 'handlers', 'store', 'queue', 'recovery', 'workers'] }),
      disallow: to({ anyOf: ['root'] }),
      message: 'KeelModule, AppModule and the app setup sit on top: the layers below never import them',
    },
    {
      from: fromTypes({ noneOf: ['test'] }),
      disallow: to(null, 'main'),
      message: 'src/main.ts starts the server when it is loaded: nothing imports it',
    },
  ],
};

export default defineConfig(
  { ignores: ['dist/**', 'coverage/**', 'node_modules/**', 'bench/node_modules/**', 'bench/results/**', 'data/**'] },

  js.configs.recommended,
  {
    rules: {
      // A `let` assigned once, after the closures that read it are created, cannot be a const.
      'prefer-const': ['error', { ignoreReadBeforeAssign: true }],
    },
  },

  {
    files: ['**/*.ts'],
    extends: [tseslint.configs.recommendedTypeChecked],
    languageOptions: {
      parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      // A promise nobody awaits loses its rejection: mark a deliberate one with `void`.
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      // Stores and handlers implement Promise-returning contracts with async methods that need no
      // await (SQLite): async keeps a throw a rejection, as callers expect.
      '@typescript-eslint/require-await': 'off',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
    },
  },
  {
    files: ['test/**/*.ts', 'src/**/*.spec.ts'],
    rules: {
      // Specs read JSON response bodies (supertest, fetch) and jest matchers, which are `any` by
      // design; checking every member access on them would bury the findings that matter.
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-unsafe-argument': 'off',
      '@typescript-eslint/no-unsafe-assignment': 'off',
      '@typescript-eslint/no-unsafe-call': 'off',
      '@typescript-eslint/no-unsafe-member-access': 'off',
      '@typescript-eslint/no-unsafe-return': 'off',
    },
  },

  {
    files: ['src/**/*.ts', 'test/**/*.ts'],
    plugins: { boundaries },
    settings: {
      'boundaries/elements': ELEMENTS,
      'boundaries/files': FILES,
      // Relative imports of .ts files; packages are outside the rule anyway.
      'import/resolver': { node: { extensions: ['.ts', '.js', '.json'] } },
    },
    rules: {
      'boundaries/dependencies': ['error', LAYERS],
    },
  },

  {
    files: ['**/*.{js,cjs,mjs}'],
    languageOptions: {
      globals: {
        process: 'readonly',
        console: 'readonly',
        Buffer: 'readonly',
        URL: 'readonly',
        AbortController: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        setInterval: 'readonly',
        clearInterval: 'readonly',
        setImmediate: 'readonly',
        fetch: 'readonly',
        performance: 'readonly',
      },
    },
  },
  {
    files: ['**/*.{js,cjs}'],
    languageOptions: {
      sourceType: 'commonjs',
      globals: { require: 'readonly', module: 'writable', exports: 'writable', __dirname: 'readonly', __filename: 'readonly' },
    },
  },
  {
    // The dashboard's files run in the browser as ES modules, served as they are (no build).
    files: ['dashboard/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: {
        document: 'readonly',
        sessionStorage: 'readonly',
        fetch: 'readonly',
        setTimeout: 'readonly',
        clearTimeout: 'readonly',
        AbortController: 'readonly',
        TextDecoderStream: 'readonly',
        URLSearchParams: 'readonly',
        CSS: 'readonly',
        reportError: 'readonly',
      },
    },
  },
);
