/**
 * Fuzzy filter for the picker: the query's characters must appear in the text in order (not necessarily
 * together), case-insensitive. Returns the matched positions (for highlighting) or null.
 */
export function fuzzyMatch(query: string, text: string): number[] | null {
  const q = query.toLowerCase();
  const t = text.toLowerCase();
  const positions: number[] = [];
  let from = 0;
  for (const ch of q) {
    const at = t.indexOf(ch, from);
    if (at < 0) return null;
    positions.push(at);
    from = at + 1;
  }
  return positions;
}
