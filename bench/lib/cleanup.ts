/**
 * One place that undoes everything the benchmark set up, in reverse order, exactly once: on success, on
 * a thrown error, on Ctrl-C / SIGTERM and on the global time limit.
 */

type Step = { what: string; fn: () => void | Promise<void> };

const steps: Step[] = [];
let running: Promise<void> | undefined;

/** Register an undo step; steps run last-registered first. */
export function onCleanup(what: string, fn: () => void | Promise<void>): void {
  steps.push({ what, fn });
}

/** Run every registered step (each bounded to 15 s); safe to call more than once. */
export function cleanup(): Promise<void> {
  running ??= (async () => {
    for (const step of steps.reverse()) {
      let timer: NodeJS.Timeout | undefined;
      try {
        await Promise.race([
          Promise.resolve().then(step.fn),
          new Promise<void>((_, reject) => {
            timer = setTimeout(() => reject(new Error('timed out after 15 s')), 15_000);
          }),
        ]);
      } catch (e) {
        process.stderr.write(`bench: cleanup step "${step.what}" failed: ${(e as Error).message}\n`);
      } finally {
        clearTimeout(timer);
      }
    }
    steps.length = 0;
  })();
  return running;
}

/** Clean up and exit on SIGINT/SIGTERM, and after `limitMs` whatever happens. */
export function installExitHandlers(limitMs: number): void {
  const bail = (why: string, code: number) => {
    process.stderr.write(`\nbench: ${why}; cleaning up...\n`);
    const hard = setTimeout(() => process.exit(code), 60_000);
    hard.unref();
    void cleanup().finally(() => process.exit(code));
  };
  process.once('SIGINT', () => bail('interrupted', 130));
  process.once('SIGTERM', () => bail('terminated', 143));
  process.once('SIGHUP', () => bail('hang-up', 129));
  const limit = setTimeout(() => bail(`time limit of ${Math.round(limitMs / 1000)} s reached`, 124), limitMs);
  limit.unref();
}
