/**
 * "Did you mean ...?" for machine names: the known names closest to a mistyped one.
 */

/** Edit distance with adjacent transpositions (optimal string alignment): `laptpo` → `laptop` is 1. */
export function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0]![j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let v = Math.min(d[i - 1]![j]! + 1, d[i]![j - 1]! + 1, d[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) v = Math.min(v, d[i - 2]![j - 2]! + 1);
      d[i]![j] = v;
    }
  }
  return d[a.length]![b.length]!;
}

/**
 * Up to `max` of `known` close to `name`: edit distance at most 1 for names up to 4 characters, else 2,
 * or `known` starts with `name` (a name cut short); nearest first, then by name.
 */
export function suggestNames(name: string, known: readonly string[], max = 3): string[] {
  const limit = name.length <= 4 ? 1 : 2;
  return known
    .filter((k) => k !== name)
    .map((k) => ({
      k,
      d: k.startsWith(name) && name.length >= 3 ? Math.min(editDistance(name, k), limit) : editDistance(name, k),
    }))
    .filter((x) => x.d <= limit)
    .sort((a, b) => a.d - b.d || (a.k < b.k ? -1 : a.k > b.k ? 1 : 0))
    .slice(0, max)
    .map((x) => x.k);
}

/** ` Did you mean laptop?` / ` Did you mean web-1 or web-2?`, or '' when there is nothing close. */
export function didYouMean(names: string[]): string {
  if (names.length === 0) return '';
  const quoted = names.map((n) => `\`${n}\``);
  return `Did you mean ${quoted.length === 1 ? quoted[0] : `${quoted.slice(0, -1).join(', ')} or ${quoted.at(-1)}`}?`;
}
