// `pnpm bench:diloco`: synchronous data parallel against DiLoCo (local SGD: AdamW inner steps on
// the workers, Nesterov outer momentum on the coordinator) for the same token budget, on a small
// character GPT over Tiny Shakespeare. Headless CPU workers and the real coordinator core in one
// process (the Simulation: real codec, real frames), so the figures are the algorithm's, not the
// machine's: the final validation loss (the coordinator's own evaluation, on 32 held-out
// windows) and the bytes through the coordinator per training token.
//
// Every configuration takes the same number of worker steps (workers × versions × H) on batches
// of B windows of T characters, so the token budget is equal; only how often they talk differs.
import { gptSpec } from "@pangea/shared";
import { tinyShakespeareShard } from "@pangea/shared/text-node";
import type { RunConfigInput } from "../src/core/run-config.ts";
import { Simulation } from "../src/testing/simulation.ts";

const WORKERS = 4;
const B = 8;
const T = 32;
/** Worker steps per worker: the token budget is WORKERS × STEPS × B × T. */
const STEPS = Number(process.env.DILOCO_STEPS ?? 512);
const model = gptSpec(
  { vocabSize: 65, contextLength: T, layers: 2, heads: 2, width: 32 },
  { seed: 3, name: "bench-gpt-2x32" },
);

function run(label: string, config: RunConfigInput, innerSteps: number) {
  const sim = new Simulation(undefined, { datasets: { shakespeare: tinyShakespeareShard } });
  const versions = Math.ceil(STEPS / innerSteps);
  const r = sim.coordinator.createRun({
    name: label,
    model,
    dataset: "shakespeare",
    batchSize: B,
    evaluateEvery: versions,
    stop: { versions },
    leaseMs: 3_600_000,
    ...config,
  });
  for (let i = 0; i < WORKERS; i++) sim.addWorker({ runId: r.id });
  const started = performance.now();
  sim.runUntil(() => r.record.state === "finished");
  const c = sim.coordinator.counters;
  const tokens = WORKERS * versions * innerSteps * B * T;
  return {
    label,
    versions: r.record.version,
    loss: r.record.evaluation?.loss ?? Number.NaN,
    bytesPerToken: (c.bytesIn + c.bytesOut) / tokens,
    seconds: (performance.now() - started) / 1000,
    tokens,
  };
}

// DILOCO_SYNC=0 leaves the synchronous run out (to run configurations side by side, one per
// core); DILOCO_H picks the inner-step counts; DILOCO_INNER_LR the workers' AdamW rate;
// DILOCO_OUTER_LR and DILOCO_OUTER_MOMENTUM the coordinator's Nesterov step (DiLoCo's 0.7, 0.9).
const sync =
  process.env.DILOCO_SYNC === "0"
    ? undefined
    : run(
        "synchronous",
        {
          strategy: { kind: "synchronous", targetUpdates: WORKERS, stragglerMs: 60_000 },
          optimizer: { kind: "adamw", learningRate: 3e-3, beta2: 0.99, warmupVersions: 20 },
        },
        1,
      );
const rows = sync ? [sync] : [];
const HS = (process.env.DILOCO_H ?? "8,32,128").split(",").filter(Boolean).map(Number);
const innerRate = Number(process.env.DILOCO_INNER_LR ?? 3e-3);
const outerRate = Number(process.env.DILOCO_OUTER_LR ?? 0.7);
const outerMomentum = Number(process.env.DILOCO_OUTER_MOMENTUM ?? 0.9);
for (const H of HS) {
  rows.push(
    run(
      `DiLoCo H=${H}`,
      {
        strategy: { kind: "localSgd", innerSteps: H, targetUpdates: WORKERS, stragglerMs: 60_000 },
        local: { kind: "adamw", learningRate: innerRate },
        // DiLoCo's outer optimizer: SGD with Nesterov momentum (by default DiLoCo's 0.7 and 0.9).
        optimizer: {
          kind: "sgd",
          learningRate: outerRate,
          momentum: outerMomentum,
          nesterov: true,
        },
      },
      H,
    ),
  );
}

console.log(
  `\nDiLoCo against synchronous data parallel: ${WORKERS} workers, ${model.name} (${T}-character windows, batch ${B}, inner AdamW ${innerRate}, outer Nesterov ${outerRate} / ${outerMomentum}), ${(rows[0]?.tokens ?? 0).toLocaleString("en-US")} training tokens each\n`,
);
console.log(
  "| strategy | versions | validation loss (nats) | vs sync | bytes/token | fewer bytes | s |",
);
console.log("|---|---:|---:|---:|---:|---:|---:|");
const vsSync = (r: (typeof rows)[number]) =>
  sync
    ? [
        `${((100 * (r.loss - sync.loss)) / sync.loss).toFixed(1)}%`,
        `${(sync.bytesPerToken / r.bytesPerToken).toFixed(1)}×`,
      ]
    : ["–", "–"];
for (const r of rows) {
  const [loss, bytes] = vsSync(r);
  console.log(
    `| ${r.label} | ${r.versions} | ${r.loss.toFixed(4)} | ${loss} | ${r.bytesPerToken.toFixed(1)} | ${bytes} | ${r.seconds.toFixed(0)} |`,
  );
}
