/**
 * Metric 2, second part: time to a shell prompt, in a terminal (a pseudo-terminal here), as a user gets
 * one. For the four client paths, from spawning `ssh ...` / `mssh ssh ...` with no command until the
 * remote login shell's prompt arrives on the terminal. For `mssh-tui`, the "Enter to a shell
 * prompt": the picker runs (started once, logged in, host list shown, filter typed), and the clock runs
 * from the Enter key on the selected machine until the prompt; `exit` brings the picker back for the
 * next round. The target sshd's sessions get a HOME whose .profile sets a known prompt
 * (lib/sshd.ts PROMPT_MARK). One untimed warm-up each, then median of the rounds, interleaved.
 */
import { NULL_HOST, TARGET_HOST, type BenchEnv } from '../lib/env.js';
import { commandFor, tuiCommand, type PathId } from '../lib/paths.js';
import { PtyProc } from '../lib/pty-proc.js';
import { PROMPT_MARK } from '../lib/sshd.js';
import type { Recorder } from '../lib/report.js';
import { median, percentile, round } from '../lib/stats.js';

/** The TUI's column in the tables (not a PathId: it has no command line of its own per session). */
export const TUI_PATH = 'mssh-tui' as const;
type Way = PathId | typeof TUI_PATH;

const ms = (from: bigint, to: bigint): number => Number(to - from) / 1e6;

async function onceProcess(env: BenchEnv, path: PathId): Promise<number> {
  const t0 = process.hrtime.bigint();
  const p = new PtyProc(commandFor(env, path, null));
  try {
    const t1 = await p.until(() => p.raw.includes(PROMPT_MARK), 30_000, `${path}: shell prompt`);
    p.type('exit\r');
    const code = await p.exit(10_000);
    if (code !== 0) throw new Error(`${path}: exit status ${code} after "exit" ${p.describe()}`);
    return ms(t0, t1);
  } finally {
    p.kill();
  }
}

const FILTER = 'bench-t';

class Picker {
  private constructor(readonly p: PtyProc) {}

  static async start(env: BenchEnv): Promise<Picker> {
    const p = new PtyProc(tuiCommand(env));
    try {
      const listed = new RegExp(`online\\s+${TARGET_HOST}`);
      await p.until(() => listed.test(p.screen()), 30_000, 'mssh-tui: the picker lists the target online');
      p.type(FILTER);
      await p.until(
        () => p.screen().includes(`Filter: ${FILTER}`) && !p.screen().includes(NULL_HOST),
        10_000,
        'mssh-tui: the filter narrows the list to the target',
      );
      return new Picker(p);
    } catch (e) {
      p.kill();
      throw e;
    }
  }

  /** Enter on the selected machine until the shell prompt; then `exit` and wait for the picker. */
  async once(): Promise<number> {
    const from = this.p.raw.length;
    const t0 = process.hrtime.bigint();
    this.p.type('\r');
    const t1 = await this.p.until(
      () => this.p.raw.indexOf(PROMPT_MARK, from) >= 0,
      30_000,
      'mssh-tui: shell prompt after Enter',
    );
    this.p.type('exit\r');
    await this.p.until(
      () => this.p.screen().includes(`Filter: ${FILTER}`),
      15_000,
      'mssh-tui: the picker back after exit',
    );
    return ms(t0, t1);
  }

  async stop(): Promise<void> {
    this.p.type('q');
    await this.p.exit(5_000).catch(() => this.p.kill());
  }
}

export async function runPrompt(
  env: BenchEnv,
  rec: Recorder,
  paths: PathId[],
  opts: { rounds: number; tui: boolean },
): Promise<void> {
  const ways: Way[] = [...paths, ...(opts.tui ? [TUI_PATH as Way] : [])];
  const samples = new Map<Way, number[]>(ways.map((w) => [w, []]));
  const errors = new Map<Way, string>();
  let picker: Picker | undefined;
  const once = async (w: Way): Promise<number> => {
    if (w !== TUI_PATH) return onceProcess(env, w);
    picker ??= await Picker.start(env);
    return picker.once();
  };
  try {
    // One untimed warm-up each (page cache, the CLI's code cache, first token check, the picker's start).
    for (const w of ways) await once(w).catch((e: Error) => errors.set(w, e.message));
    for (let r = 0; r < opts.rounds; r++) {
      const order = ways.map((_, i) => ways[(i + r) % ways.length]!);
      for (const w of order) {
        if (errors.has(w)) continue;
        try {
          samples.get(w)!.push(await once(w));
        } catch (e) {
          errors.set(w, (e as Error).message);
        }
      }
    }
  } finally {
    await picker?.stop();
  }
  for (const w of ways) {
    const s = samples.get(w)!;
    rec.add({
      metric: 'prompt_ms',
      path: w,
      value: round(median(s), 1),
      unit: 'ms',
      better: 'lower',
      ok: !errors.has(w) && s.length === opts.rounds,
      error: errors.get(w),
      samples: s.map((x) => round(x, 1)),
      extra: {
        rounds: opts.rounds,
        min: round(Math.min(...s), 1),
        p90: round(percentile(s, 90), 1),
        from: w === TUI_PATH ? 'Enter in the picker' : 'process spawn',
      },
    });
  }
}
