// A small text corpus with structure to learn (a few lines, over and over, in varying order) and
// a tiny GPT for it: the text runs' tests train on these in seconds, in Node and in workerd.
import { decodeShard, encodeTextShard, gptSpec } from "@pangea/shared";
import type { Store } from "../core/ports.ts";
import type { RunConfigInput } from "../core/run-config.ts";
import { Simulation } from "./simulation.ts";

const LINES = [
  "to be or not to be, that is the question.\n",
  "all the world's a stage, and all the men and women merely players.\n",
  "now is the winter of our discontent.\n",
  "a horse! a horse! my kingdom for a horse!\n",
];
/** The corpus as the text file a researcher would bring. */
export const linesText = Array.from(
  { length: 240 },
  (_, i) => LINES[(i * 7 + (i >> 2)) % LINES.length],
).join("");
/** The corpus as a text shard (its bytes), and decoded. */
export const linesShard = encodeTextShard(linesText);
export const lines = decodeShard(linesShard, "lines");
export const linesVocabulary = lines.kind === "text" ? lines.corpus.vocabulary.length : 0;
/** One block, two heads, width 16, context 16. */
export const tinyGpt = gptSpec(
  { vocabSize: linesVocabulary, contextLength: 16, layers: 1, heads: 2, width: 16 },
  { seed: 5, name: "tiny-gpt" },
);

/**
 * A simulation (over `store`, or in memory) that has the corpus as dataset "lines", and a
 * synchronous tiny-GPT run on it: 8 windows per lease, 2 updates per version, unless `config`
 * says otherwise.
 */
export function linesRun(config: RunConfigInput = {}, store?: Store) {
  const sim = new Simulation(store, { datasets: { lines: () => linesShard } });
  const run = sim.coordinator.createRun({
    name: "lines",
    model: tinyGpt,
    dataset: "lines",
    batchSize: 8,
    strategy: { kind: "synchronous", targetUpdates: 2, stragglerMs: 5000 },
    ...config,
  });
  return { sim, run };
}
