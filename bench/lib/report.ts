/**
 * Results: one JSON object per metric and path (JSON lines in bench/results/), and the tables printed
 * at the end (with the ratio mssh/baseline and the target of issue 8).
 */
import { appendFileSync, mkdirSync } from 'node:fs';
import { cpus, totalmem, release } from 'node:os';
import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { round } from './stats.js';

export interface Result {
  /** Stable metric id, e.g. "bulk_mbps". */
  metric: string;
  /** direct | jump | mssh-ssh | mssh-proxy | mssh (in-process through the relay) | ... */
  path: string;
  /** Variant of the metric (e.g. "1 client conn" for concurrency). */
  variant?: string;
  value: number;
  unit: string;
  better: 'higher' | 'lower';
  ok: boolean;
  error?: string;
  samples?: number[];
  extra?: Record<string, unknown>;
}

export interface Machine {
  cpu: string;
  cpus: number;
  memGiB: number;
  kernel: string;
  node: string;
  openssh: string;
  postgres: string;
}

/** The commit measured, and whether the working tree had uncommitted changes to the programs. */
export function gitInfo(root: string): { commit: string; dirty: string[] } {
  try {
    const commit = execFileSync('git', ['rev-parse', '--short', 'HEAD'], { cwd: root, encoding: 'utf8' }).trim();
    const dirty = execFileSync('git', ['status', '--porcelain', '--', 'apps', 'libs', 'migrations'], {
      cwd: root,
      encoding: 'utf8',
    })
      .split('\n')
      .filter(Boolean)
      .map((l) => l.slice(3));
    return { commit, dirty };
  } catch {
    return { commit: 'unknown', dirty: [] };
  }
}

export function machineInfo(): Machine {
  let openssh: string;
  try {
    openssh = execFileSync('/usr/bin/ssh', ['-V'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).trim();
  } catch (e) {
    openssh = String((e as { stderr?: string }).stderr ?? '').trim();
  }
  if (!openssh) {
    try {
      openssh = execFileSync('sh', ['-c', '/usr/bin/ssh -V 2>&1'], { encoding: 'utf8' }).trim();
    } catch {
      /* unknown */
    }
  }
  let postgres = '';
  try {
    postgres = execFileSync('sh', ['-c', 'ls /usr/lib/postgresql 2>/dev/null | sort -n | tail -1'], {
      encoding: 'utf8',
    }).trim();
  } catch {
    /* unknown */
  }
  return {
    cpu: cpus()[0]?.model ?? 'unknown',
    cpus: cpus().length,
    memGiB: round(totalmem() / 2 ** 30, 1),
    kernel: release(),
    node: process.version,
    openssh,
    postgres: postgres ? `PostgreSQL ${postgres}` : 'unknown',
  };
}

export class Recorder {
  readonly results: Result[] = [];
  constructor(
    private readonly file: string,
    private readonly common: Record<string, unknown>,
  ) {
    mkdirSync(join(file, '..'), { recursive: true });
  }
  add(r: Result): void {
    this.results.push(r);
    const line = { ...this.common, ...r, value: Number.isFinite(r.value) ? r.value : null };
    appendFileSync(this.file, JSON.stringify(line) + '\n');
    const shown = Number.isFinite(r.value) ? `${fmt(r.value)} ${r.unit}` : 'n/a';
    process.stderr.write(
      `bench:   ${r.metric}${r.variant ? ` [${r.variant}]` : ''} ${r.path}: ${shown}${r.ok ? '' : `  FAILED: ${r.error ?? ''}`}\n`,
    );
  }
  find(metric: string, path: string, variant?: string): Result | undefined {
    return this.results.find((r) => r.metric === metric && r.path === path && r.variant === variant);
  }
}

export function fmt(x: number | undefined): string {
  if (x === undefined || !Number.isFinite(x)) return '-';
  const a = Math.abs(x);
  if (a >= 1000) return String(Math.round(x));
  if (a >= 100) return x.toFixed(0);
  if (a >= 10) return x.toFixed(1);
  return x.toFixed(2);
}

function cell(r: Result | undefined): string {
  if (!r) return '-';
  if (!r.ok) return Number.isFinite(r.value) ? `${fmt(r.value)}!` : 'FAIL';
  return fmt(r.value);
}

function ratio(a: Result | undefined, b: Result | undefined): string {
  if (!a || !b || !Number.isFinite(a.value) || !Number.isFinite(b.value) || b.value === 0) return '-';
  return `${(a.value / b.value).toFixed(2)}x`;
}

export interface Row {
  label: string;
  metric: string;
  variant?: string;
  target?: string;
}

/** A markdown table; `cols` are [header, path] pairs, `ratios` are [header, path, baselinePath]. */
export function table(
  rec: Recorder,
  rows: Row[],
  cols: [string, string][],
  ratios: [string, string, string][],
): string {
  const header = ['metric', ...cols.map((c) => c[0]), ...ratios.map((r) => r[0]), 'target'];
  const lines = rows
    .filter((row) => cols.some(([, p]) => rec.find(row.metric, p, row.variant)))
    .map((row) => {
      const unit = cols.map(([, p]) => rec.find(row.metric, p, row.variant)).find(Boolean)?.unit ?? '';
      return [
        `${row.label} (${unit})`,
        ...cols.map(([, p]) => cell(rec.find(row.metric, p, row.variant))),
        ...ratios.map(([, p, base]) =>
          ratio(rec.find(row.metric, p, row.variant), rec.find(row.metric, base, row.variant)),
        ),
        row.target ?? '',
      ];
    });
  if (!lines.length) return '';
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const fmtLine = (l: string[]) =>
    `| ${l.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  return [
    fmtLine(header),
    `|${widths.map((w, i) => (i === 0 ? ':' : '-') + '-'.repeat(w) + (i === 0 ? '-' : ':')).join('|')}|`,
    ...lines.map(fmtLine),
  ].join('\n');
}
