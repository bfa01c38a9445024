/**
 * Fuzzy filter and ranking for the picker. A name matches when the query's characters appear in it in
 * order (not necessarily together), case-insensitive. Matches are ranked, best first:
 *
 *   1. exact:  the name is the query                       (`web-15` → web-15)
 *   2. prefix: the name starts with the query              (`web-15` → web-150 … web-159)
 *   3. fuzzy, by score:
 *      a. fewest runs: the query falls into as few contiguous pieces of the name as possible
 *         (`w29` is `w` + `29` in web-029, but `w` + `2` + `9` in web-209)
 *      b. the match reaches the end of the name (`w29`: web-029 before web-290)
 *   4. then by name.
 *
 * So among web-000 … web-300, `w29` puts web-029 first (web-129, web-229 follow, then web-290 …).
 */

export interface FuzzyScore {
  /** 0 exact, 1 prefix, 2 fuzzy. */
  tier: 0 | 1 | 2;
  /** Contiguous pieces of the name the query matched (1 for exact, prefix and substring matches). */
  runs: number;
  /** True when the last matched character is the name's last character. */
  atEnd: boolean;
  /** Matched positions, for highlighting. */
  positions: number[];
}

/**
 * The match with the fewest runs (and, among those, one that reaches the end of the text), or null.
 * Dynamic programming over (query index, text index); names are short (at most 63 characters).
 */
export function fuzzyScore(query: string, text: string): FuzzyScore | null {
  const q = query.toLowerCase();
  const t = text.toLowerCase();
  const m = q.length;
  const n = t.length;
  if (m === 0) return { tier: 1, runs: 0, atEnd: false, positions: [] };
  if (m > n) return null;
  if (t === q) return { tier: 0, runs: 1, atEnd: true, positions: [...Array(m).keys()] };
  if (t.startsWith(q)) return { tier: 1, runs: 1, atEnd: false, positions: [...Array(m).keys()] };
  // runs[i][j]: fewest runs matching q[0..i] with q[i] at t[j] (Infinity when impossible); from[i][j]: where q[i-1] went.
  const INF = Number.POSITIVE_INFINITY;
  const runs: number[][] = [];
  const from: number[][] = [];
  for (let i = 0; i < m; i++) {
    const row = new Array<number>(n).fill(INF);
    const back = new Array<number>(n).fill(-1);
    let bestBefore = INF; // min over k < j-1 of runs[i-1][k]
    let bestBeforeAt = -1;
    for (let j = 0; j < n; j++) {
      if (i > 0 && j >= 2 && runs[i - 1]![j - 2]! < bestBefore) {
        bestBefore = runs[i - 1]![j - 2]!;
        bestBeforeAt = j - 2;
      }
      if (t[j] !== q[i]) continue;
      if (i === 0) {
        row[j] = 1;
        continue;
      }
      const cont = j >= 1 ? runs[i - 1]![j - 1]! : INF;
      const jump = bestBefore + 1;
      if (cont <= jump && cont < INF) {
        row[j] = cont;
        back[j] = j - 1;
      } else if (jump < INF) {
        row[j] = jump;
        back[j] = bestBeforeAt;
      }
    }
    runs.push(row);
    from.push(back);
  }
  let end = -1;
  let best = INF;
  for (let j = 0; j < n; j++) {
    const r = runs[m - 1]![j]!;
    // Fewest runs; on a tie the later end wins (so the end of the name when it can be reached).
    if (r < INF && r <= best) {
      best = r;
      end = j;
    }
  }
  if (end < 0) return null;
  const positions = new Array<number>(m);
  for (let i = m - 1, j = end; i >= 0; i--) {
    positions[i] = j;
    j = from[i]![j]!;
  }
  return { tier: 2, runs: best, atEnd: end === n - 1, positions };
}

/** The matched positions (for highlighting), or null when the query does not match. */
export function fuzzyMatch(query: string, text: string): number[] | null {
  return fuzzyScore(query, text)?.positions ?? null;
}

/** Orders two scored names by the ranking above: negative when `a` comes first. */
export function compareMatches(a: { name: string; score: FuzzyScore }, b: { name: string; score: FuzzyScore }): number {
  return (
    a.score.tier - b.score.tier ||
    a.score.runs - b.score.runs ||
    Number(b.score.atEnd) - Number(a.score.atEnd) ||
    (a.name < b.name ? -1 : a.name > b.name ? 1 : 0)
  );
}

/** The items whose name matches `query`, best first (all of them by name when the query is empty). */
export function rankByName<T>(
  query: string,
  items: readonly T[],
  nameOf: (item: T) => string,
): Array<{ item: T; positions: number[] }> {
  const scored: Array<{ item: T; name: string; score: FuzzyScore }> = [];
  for (const item of items) {
    const name = nameOf(item);
    const score = fuzzyScore(query, name);
    if (score) scored.push({ item, name, score });
  }
  scored.sort(compareMatches);
  return scored.map(({ item, score }) => ({ item, positions: score.positions }));
}
