/** Run fn(0..count-1) with at most `concurrency` in flight; stops starting new ones after `deadline` (ms epoch). */
export async function pool<T>(
  count: number,
  concurrency: number,
  deadline: number,
  fn: (i: number) => Promise<T>,
): Promise<PromiseSettledResult<T>[]> {
  const results: PromiseSettledResult<T>[] = [];
  let next = 0;
  const worker = async () => {
    for (;;) {
      const i = next++;
      if (i >= count || Date.now() > deadline) return;
      try {
        results[i] = { status: 'fulfilled', value: await fn(i) };
      } catch (reason) {
        results[i] = { status: 'rejected', reason };
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  return results.filter(Boolean);
}

/** Reject after ms with `what` unless p settles first. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let t: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(t)),
    new Promise<never>((_, reject) => {
      t = setTimeout(() => reject(new Error(`${what} timed out after ${ms} ms`)), ms);
    }),
  ]);
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
