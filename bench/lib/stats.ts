export function sorted(xs: number[]): number[] {
  return [...xs].sort((a, b) => a - b);
}

/** Percentile by nearest rank (p in 0..100) of a non-empty sample. */
export function percentile(xs: number[], p: number): number {
  if (!xs.length) return NaN;
  const s = sorted(xs);
  const rank = Math.ceil((p / 100) * s.length);
  return s[Math.min(s.length - 1, Math.max(0, rank - 1))]!;
}

export function median(xs: number[]): number {
  if (!xs.length) return NaN;
  const s = sorted(xs);
  const mid = s.length >> 1;
  return s.length % 2 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
