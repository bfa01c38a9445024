/**
 * The picker's filter box: words with `=` are label pairs (`env=prod`: the machine must carry the key,
 * with a value starting with what is typed so far, so the list narrows while typing), every other word
 * is the fuzzy name query (fuzzy.ts). `env=prod web` shows the machines labelled env=prod whose names
 * match "web".
 */
export interface PickerFilter {
  /** The fuzzy query over names (the words without `=`, joined by nothing: names have no spaces). */
  query: string;
  labels: Array<[key: string, valuePrefix: string]>;
}

export function splitPickerFilter(filter: string): PickerFilter {
  const words = filter.split(/\s+/).filter((w) => w !== '');
  const labels: Array<[string, string]> = [];
  const rest: string[] = [];
  for (const w of words) {
    const i = w.indexOf('=');
    if (i > 0) labels.push([w.slice(0, i), w.slice(i + 1)]);
    else rest.push(w);
  }
  return { query: rest.join(''), labels };
}

export function matchesPickerLabels(host: { labels?: Record<string, string> }, f: PickerFilter): boolean {
  const labels = host.labels ?? {};
  for (const [k, v] of f.labels) {
    if (!Object.hasOwn(labels, k) || !labels[k]!.startsWith(v)) return false;
  }
  return true;
}
