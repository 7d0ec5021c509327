// Drains of two built checkouts, alternating (A B, then B A, ...), each round's B/A ratio, and the
// median of the ratios: on a host whose speed moves between rounds, a round is compared with the
// drain beside it, not with a figure from another hour.
//   node bench/drain-pair.mjs <checkoutA> <checkoutB> [rounds=8] [jobs=50000]
//   KEEL_DRAIN_STORE=postgres node bench/drain-pair.mjs ...     (drain.mjs's settings pass through)
// Prints a line per round (jobs/s and server CPU per job of each) and the medians.
import { execFileSync } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const [a, b] = process.argv.slice(2, 4).map((dir) => path.resolve(dir));
const rounds = Number(process.argv[4] ?? 8);
const jobs = String(process.argv[5] ?? 50_000);
if (!a || !b) throw new Error('usage: node bench/drain-pair.mjs <checkoutA> <checkoutB> [rounds] [jobs]');
const drain = path.join(path.dirname(fileURLToPath(import.meta.url)), 'drain.mjs');

const run = (checkout) => JSON.parse(execFileSync(process.execPath, [drain, jobs, checkout], { encoding: 'utf8' }).trim().split('\n').pop());
const median = (values) => {
  const sorted = [...values].sort((x, y) => x - y);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

const ratios = [];
const cpuRatios = [];
for (let round = 1; round <= rounds; round++) {
  const [first, second] = round % 2 ? [a, b] : [b, a];
  const results = new Map([
    [first, run(first)],
    [second, run(second)],
  ]);
  const [ra, rb] = [results.get(a), results.get(b)];
  ratios.push(rb.jobsPerSecond / ra.jobsPerSecond);
  cpuRatios.push(ra.cpuUsPerJob / rb.cpuUsPerJob);
  console.log(
    `round ${round}: A ${ra.jobsPerSecond} jobs/s ${ra.cpuUsPerJob} µs/job, B ${rb.jobsPerSecond} jobs/s ${rb.cpuUsPerJob} µs/job, ` +
      `B/A ${ratios.at(-1).toFixed(2)} (CPU ${cpuRatios.at(-1).toFixed(2)})`,
  );
}
console.log(`median B/A: ${median(ratios).toFixed(3)} in jobs/s, ${median(cpuRatios).toFixed(3)} in CPU per job (A's over B's)`);
