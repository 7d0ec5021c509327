// The functions and files with the most self time in a V8 CPU profile:
//   node bench/profile-top.mjs <file.cpuprofile> [rows=30]
import fs from 'node:fs';

const profile = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const rows = Number(process.argv[3] ?? 30);
const nodes = new Map(profile.nodes.map((node) => [node.id, node]));
const selfTime = new Map();
profile.samples.forEach((id, i) => selfTime.set(id, (selfTime.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0)));

const byFunction = new Map();
const byFile = new Map();
let total = 0;
const add = (map, key, t) => map.set(key, (map.get(key) ?? 0) + t);
for (const [id, t] of selfTime) {
  const { functionName, url, lineNumber } = nodes.get(id).callFrame;
  const file = url.replace(/.*node_modules\/((@[^/]+\/)?[^/]+).*/, '$1').replace(/.*\/dist\//, 'dist/');
  add(byFunction, `${functionName || '(anonymous)'} ${file || ''}:${lineNumber}`, t);
  add(byFile, file || functionName, t);
  total += t;
}
const print = (title, map) => {
  console.log(title);
  for (const [key, t] of [...map].sort((a, b) => b[1] - a[1]).slice(0, rows)) console.log(`${((100 * t) / total).toFixed(1).padStart(6)}%  ${key}`);
};
print('self time by function', byFunction);
print('\nself time by file', byFile);
