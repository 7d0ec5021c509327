// Jest globalSetup: the process specs run the BUILT server (node dist/main.js), so a run that may
// include one first makes sure dist/ is not older than src/, and builds it (`npm run build`) when
// it is or when it is missing. Silent when dist/ is fresh. `npm test` builds before jest anyway.
const { execFileSync } = require('node:child_process');
const { existsSync, readdirSync, statSync } = require('node:fs');
const { join, relative } = require('node:path');

const ROOT = join(__dirname, '..', '..');
const MAIN_JS = join(ROOT, 'dist', 'main.js');

/** The newest modification under src/ that the build reads: sources (not specs) and folders (a file removed or renamed). */
function newestSource() {
  let newest = { path: join(ROOT, 'tsconfig.json'), mtimeMs: statSync(join(ROOT, 'tsconfig.json')).mtimeMs };
  const consider = (path) => {
    const { mtimeMs } = statSync(path);
    if (mtimeMs > newest.mtimeMs) newest = { path, mtimeMs };
  };
  consider(join(ROOT, 'tsconfig.build.json'));
  const walk = (dir) => {
    consider(dir);
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, entry.name);
      if (entry.isDirectory()) walk(path);
      else if (entry.name.endsWith('.ts') && !entry.name.endsWith('.spec.ts')) consider(path);
    }
  };
  walk(join(ROOT, 'src'));
  return newest;
}

/** Whether the run may include a process spec: no path pattern, or one matching a process spec. */
function mayRunProcessSpecs(globalConfig) {
  try {
    const patterns = globalConfig.testPathPatterns;
    if (!patterns || !patterns.isSet()) return true;
    const executor = patterns.toExecutor({ rootDir: globalConfig.rootDir });
    const specs = readdirSync(join(ROOT, 'test')).filter((name) => name.endsWith('.process-spec.ts'));
    return specs.some((name) => executor.isMatch(join(ROOT, 'test', name)));
  } catch {
    return true;
  }
}

module.exports = async function buildIfStale(globalConfig) {
  if (!mayRunProcessSpecs(globalConfig)) return;
  const source = newestSource();
  const built = existsSync(MAIN_JS) ? statSync(MAIN_JS).mtimeMs : undefined;
  if (built !== undefined && built >= source.mtimeMs) return;
  const why = built === undefined ? 'dist/main.js is missing' : `dist/ is older than ${relative(ROOT, source.path)}`;
  process.stderr.write(`\n${why}: npm run build (the process specs run dist/main.js)\n`);
  try {
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (err) {
    throw new Error(`npm run build failed:\n${err.stdout ?? ''}${err.stderr ?? ''}`, { cause: err });
  }
};
