// /metrics on the edge: each run object reports its own run (the core's Prometheus text), and
// the Worker merges them into one exposition. Series labelled by run never collide; the
// unlabelled ones (bytes and frames in and out) are counted per object and summed here. An
// object that was evicted and woke starts those at zero again, which Prometheus reads as a
// counter reset.

interface Family {
  header: string[];
  series: Map<string, number>;
}

/** One Prometheus text exposition from several: families kept in first-seen order, one HELP
 * and TYPE each, equal series summed. */
export function mergeExpositions(texts: readonly string[]): string {
  const families = new Map<string, Family>();
  const family = (name: string) => {
    let f = families.get(name);
    if (!f) {
      f = { header: [], series: new Map() };
      families.set(name, f);
    }
    return f;
  };
  for (const text of texts)
    for (const line of text.split("\n")) {
      if (line === "") continue;
      const comment = line.match(/^# (HELP|TYPE) (\S+)/);
      if (comment) {
        const f = family(comment[2]!);
        if (!f.header.some((h) => h.startsWith(`# ${comment[1]} `))) f.header.push(line);
        continue;
      }
      const sample = line.match(/^([a-zA-Z_:][\w:]*)(\{.*\})? (\S+)$/);
      if (!sample) continue;
      const series = family(sample[1]!).series;
      const key = `${sample[1]}${sample[2] ?? ""}`;
      series.set(key, (series.get(key) ?? 0) + Number(sample[3]));
    }
  const lines: string[] = [];
  for (const f of families.values()) {
    lines.push(...f.header);
    for (const [key, value] of f.series) lines.push(`${key} ${value}`);
  }
  return `${lines.join("\n")}\n`;
}
