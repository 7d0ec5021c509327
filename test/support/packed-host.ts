import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort, REPO_ROOT } from './process';
import { waitFor } from './wait';

/**
 * Keel as the package a Nest team installs, tried as that team would (test/package*.process-spec.ts):
 * `npm pack` of this repository, installed from the registry into a fresh Nest application in a
 * temp folder, whose one source file the spec writes; the host runs as a child process and is
 * spoken to over real HTTP.
 *
 * better-sqlite3 and its dependencies are copied into each host from this repository's
 * node_modules before the install when the versions match: npm keeps packages that are already
 * there, and the host is spared a two-minute compile of SQLite (the prebuilt binaries are not
 * reachable from this machine).
 *
 * Every host started is tracked: `killHosts()` in afterEach SIGKILLs what is still running.
 */

const run = promisify(execFile);
export const INSTALL_TIMEOUT_MS = 8 * 60_000;

export interface Host {
  dir: string;
  main: string;
}

export interface Running {
  child: ChildProcess;
  port: number;
  output: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function npm(dir: string, args: string[]): Promise<string> {
  const { stdout, stderr } = await run('npm', [...args, '--no-audit', '--no-fund', '--prefer-offline'], {
    cwd: dir,
    maxBuffer: 64 * 1024 * 1024,
    timeout: INSTALL_TIMEOUT_MS,
    env: { ...process.env, npm_config_update_notifier: 'false' },
  });
  return `${stdout}\n${stderr}`;
}

/** `npm pack` of this repository (its dist/ is fresh: Jest's global setup rebuilds a stale one). */
export async function packKeel(into: string): Promise<string> {
  const { stdout } = await run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', into], { cwd: REPO_ROOT, maxBuffer: 16 * 1024 * 1024 });
  const [packed] = JSON.parse(stdout) as Array<{ filename: string; files: Array<{ path: string }> }>;
  return join(into, packed.filename);
}

/** A host folder with its package.json and its one source file (`main.mjs` or `main.cjs`), not installed yet. */
export function newHost(root: string, name: string, module: 'commonjs' | 'module', dependencies: Record<string, string>, source: string): Host {
  const dir = join(root, name);
  mkdirSync(join(dir, 'node_modules'), { recursive: true });
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name, version: '1.0.0', private: true, type: module, dependencies }, null, 2));
  const main = module === 'module' ? 'main.mjs' : 'main.cjs';
  writeFileSync(join(dir, main), source);
  const ours = JSON.parse(readFileSync(join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  if (manifest('better-sqlite3').version === ours.dependencies['better-sqlite3']) {
    for (const name of closureOf('better-sqlite3')) cpSync(join(REPO_ROOT, 'node_modules', name), join(dir, 'node_modules', name), { recursive: true });
  }
  return { dir, main };
}

function manifest(name: string): { version: string; dependencies?: Record<string, string> } {
  return JSON.parse(readFileSync(join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8')) as { version: string; dependencies?: Record<string, string> };
}

/** `name` and every package it depends on, as this repository's node_modules holds them (hoisted). */
function closureOf(name: string, seen = new Set<string>()): Set<string> {
  if (seen.has(name) || !existsSync(join(REPO_ROOT, 'node_modules', name, 'package.json'))) return seen;
  seen.add(name);
  for (const dep of Object.keys(manifest(name).dependencies ?? {})) closureOf(dep, seen);
  return seen;
}

/** What npm said about engines and peers, but engine warnings of packages outside Keel's tree (the host's own Nest). */
export async function installComplaints(host: Host, output: string): Promise<string[]> {
  const complaints = output.split('\n').filter((line) => /ERESOLVE|peer dep|overriding peer|conflicting peer/i.test(line));
  const engines = [...output.matchAll(/EBADENGINE\s+package: '([^']+)@[^@']+'/g)].map((m) => m[1]);
  for (const name of new Set(engines)) {
    const { stdout } = await run('npm', ['ls', name, '--json', '--all'], { cwd: host.dir }).catch((error: { stdout: string }) => ({ stdout: error.stdout }));
    const tree = JSON.parse(stdout) as { dependencies?: Record<string, unknown> };
    if (tree.dependencies?.keel !== undefined) complaints.push(`EBADENGINE ${name}, in Keel's dependencies`);
  }
  return complaints;
}

/** Every version of `name` in the host's tree, and whether a copy sits inside Keel's folder. */
export async function copiesOf(host: Host, name: string): Promise<{ versions: string[]; nested: boolean }> {
  const { stdout } = await run('npm', ['ls', name, '--json', '--all'], { cwd: host.dir });
  const versions = new Set<string>();
  const walk = (deps: Record<string, { version?: string; dependencies?: Record<string, unknown> }> | undefined): void => {
    for (const [dep, node] of Object.entries(deps ?? {})) {
      if (dep === name && node.version) versions.add(node.version);
      walk(node.dependencies as never);
    }
  };
  walk((JSON.parse(stdout) as { dependencies?: never }).dependencies);
  return { versions: [...versions], nested: existsSync(join(host.dir, 'node_modules', 'keel', 'node_modules', ...name.split('/'))) };
}

/** `npm install` of the tarball: nothing said about engines or peers, and one @nestjs/core, the host's. */
export async function installKeel(host: Host, tarball: string, nestMajor: number): Promise<void> {
  const installed = await npm(host.dir, ['install', tarball]);
  expect(await installComplaints(host, installed)).toEqual([]);
  const core = await copiesOf(host, '@nestjs/core');
  expect(core.versions).toHaveLength(1);
  expect(core.versions[0].split('.')[0]).toBe(String(nestMajor));
  expect(core.nested).toBe(false);
}

const running = new Set<ChildProcess>();

/**
 * Runs the host (`node main.*`, or `command`) on a free port with PATH, HOME, PORT and `env` alone,
 * and resolves once its port answers; rejects with its output if it exits first.
 */
export async function start(host: Host, env: Record<string, string>, command: string[] = ['node', host.main]): Promise<Running> {
  const port = await freePort();
  let output = '';
  const child = spawn(command[0], command.slice(1), {
    cwd: host.dir,
    env: { PATH: process.env.PATH, HOME: process.env.HOME, PORT: String(port), ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  running.add(child);
  await waitFor(
    async () => {
      if (child.exitCode !== null || child.signalCode !== null) throw new Error(`the host exited before it listened:\n${output}`);
      return fetch(`http://127.0.0.1:${port}/`).then(
        () => true,
        () => false,
      );
    },
    `the host to listen on ${port}`,
    { timeoutMs: 60_000 },
  );
  return { child, port, output: () => output, exited };
}

async function stop(app: Running): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  app.child.kill('SIGTERM');
  const exit = await app.exited;
  running.delete(app.child);
  return exit;
}

/** SIGKILLs every host still running. For afterEach. */
export function killHosts(): void {
  for (const child of running) child.kill('SIGKILL');
  running.clear();
}

export function call(app: Running, path: string, init: RequestInit = {}): Promise<Response> {
  return fetch(`http://127.0.0.1:${app.port}${path}`, init);
}

/** SIGTERM, and the host stops as Nest's shutdown hooks stop it, without an error. `workers`: Keel ran workers there, which say they stopped. */
export async function checkCleanStop(app: Running, { workers = true }: { workers?: boolean } = {}): Promise<void> {
  const exit = await stop(app);
  // Nest's shutdown hook closes the application, then raises the signal again.
  expect(exit.signal === 'SIGTERM' || exit.code === 0).toBe(true);
  if (workers) expect(app.output()).toContain('workers stopped');
  expect(app.output()).not.toMatch(/\bERROR\b|Unhandled|TypeError/);
}
