/**
 * Summarise V8 CPU profiles (`*.cpuprofile`, as written by `node --cpu-prof`, e.g. by
 * `npm run bench -- --profile DIR`): self time per function and per file, heaviest first.
 *
 *   node --import tsx bench/profile-summary.ts FILE.cpuprofile [--top N] [--window FROM-TO]
 *
 * Prints a per-second timeline of how busy the process was, then self time per function and per
 * file; --window restricts the totals to seconds FROM..TO after the profile started (e.g. the seconds
 * the timeline shows a metric ran).
 */
import { readFileSync } from 'node:fs';
import { relative } from 'node:path';

interface Node {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
}
interface Profile {
  nodes: Node[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

const args = process.argv.slice(2);
const file = args.find((a, i) => !a.startsWith('--') && args[i - 1] !== '--top' && args[i - 1] !== '--window');
const topIdx = args.indexOf('--top');
const top = topIdx >= 0 ? Number(args[topIdx + 1]) : 25;
const winIdx = args.indexOf('--window');
const [winFrom, winTo] = winIdx >= 0 ? args[winIdx + 1]!.split('-').map(Number) : [0, Infinity];
if (!file) {
  process.stderr.write('usage: profile-summary.ts FILE.cpuprofile [--top N]\n');
  process.exit(2);
}
const p = JSON.parse(readFileSync(file, 'utf8')) as Profile;
const byId = new Map(p.nodes.map((n) => [n.id, n]));
const selfUs = new Map<number, number>();
const idleIds = new Set(p.nodes.filter((n) => n.callFrame.functionName === '(idle)').map((n) => n.id));
const busyPerSecond: number[] = [];
let t = 0;
for (let i = 0; i < p.samples.length; i++) {
  const dt = p.timeDeltas[i] ?? 0;
  t += dt;
  const sec = Math.floor(t / 1e6);
  if (!idleIds.has(p.samples[i]!)) busyPerSecond[sec] = (busyPerSecond[sec] ?? 0) + dt;
  if (t / 1e6 < winFrom! || t / 1e6 > winTo!) continue;
  selfUs.set(p.samples[i]!, (selfUs.get(p.samples[i]!) ?? 0) + dt);
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);

const short = (url: string) => {
  if (!url) return '(native)';
  const path = url.replace(/^file:\/\//, '');
  const nm = path.lastIndexOf('node_modules/');
  if (nm >= 0) return path.slice(nm + 'node_modules/'.length);
  return path.startsWith('/') ? relative(process.cwd(), path) : path;
};

const fnTotals = new Map<string, number>();
const fileTotals = new Map<string, number>();
for (const [id, us] of selfUs) {
  const n = byId.get(id)!;
  const f = n.callFrame;
  const key = `${f.functionName || '(anonymous)'}  ${short(f.url)}${f.url ? `:${f.lineNumber + 1}` : ''}`;
  fnTotals.set(key, (fnTotals.get(key) ?? 0) + us);
  const fk = f.url ? short(f.url).replace(/:\d+$/, '') : f.functionName || '(native)';
  fileTotals.set(fk, (fileTotals.get(fk) ?? 0) + us);
}
process.stdout.on('error', () => process.exit(0));
const pct = (us: number) => `${((100 * us) / total).toFixed(1).padStart(5)}%`;
const print = (title: string, m: Map<string, number>) => {
  process.stdout.write(`\n${title}\n`);
  for (const [k, us] of [...m].sort((a, b) => b[1] - a[1]).slice(0, top))
    process.stdout.write(`${pct(us)} ${(us / 1000).toFixed(0).padStart(7)} ms  ${k}\n`);
};
process.stdout.write(
  `${file}: ${(total / 1e6).toFixed(2)} s sampled over ${((p.endTime - p.startTime) / 1e6).toFixed(2)} s\n`,
);
process.stdout.write(
  `busy % per second: ${Array.from(busyPerSecond, (us, i) => `${i}:${Math.round((us ?? 0) / 1e4)}`).join(' ')}\n`,
);
print('self time by function', fnTotals);
print('self time by file', fileTotals);
