// Robust aggregation against attackers who stay inside the honest spread: an MNIST run in the
// simulation (real codec, real core, CPU reference workers) where a fraction of the sessions
// collude (ALIE or IPM, worker/collusion.ts). Shared by the core suite and `pnpm bench:attacks`.
import { gptSpec } from "@pangea/shared";
import type { CoordinatorOptions } from "../core/coordinator.ts";
import type { Store } from "../core/ports.ts";
import type { AggregationConfig } from "../core/run-config.ts";
import { alieZ, Collusion, type CollusionAttack } from "../worker/collusion.ts";
import { linesShard, tinyGpt } from "./lines.ts";
import { Simulation } from "./simulation.ts";

export type AttackName = "none" | "alie" | "ipm";

export interface AttackedRunOptions {
  aggregation: Partial<AggregationConfig>;
  attack: AttackName;
  /** The colluding share of the sessions (0.1 = 2 of 20). */
  fraction: number;
  workers?: number;
  versions?: number;
  batchSize?: number;
  /** ALIE's z; the paper's z_max for these counts when absent. */
  z?: number;
  /**
   * "gpt": a small character GPT on Tiny Shakespeare instead of the MNIST MLP; its dataset must
   * come in `datasets` (Node's text-node loader, which the core suite does not import).
   * "lines": the tiny GPT on the lines corpus (testing/lines.ts), for the core suite.
   */
  task?: "mnist" | "gpt" | "lines";
  datasets?: CoordinatorOptions["datasets"];
}

/** The GPT of the attack bench: 2 layers × 32 wide, 2 heads, context 32, 4 windows a batch. */
export const ATTACK_GPT = gptSpec(
  { vocabSize: 65, contextLength: 32, layers: 2, heads: 2, width: 32 },
  { seed: 3, name: "attack-gpt-2x32" },
);

/** The settings every row of the attack table shares (README: "Attacks inside the spread"). */
export const ATTACK_RUN = { workers: 20, versions: 150, batchSize: 32, epsilon: 0.1 } as const;

export function attackedRun(store: Store, o: AttackedRunOptions) {
  const workers = o.workers ?? ATTACK_RUN.workers;
  const versions = o.versions ?? ATTACK_RUN.versions;
  const attackers = o.attack === "none" ? 0 : Math.round(o.fraction * workers);
  const attack: CollusionAttack =
    o.attack === "ipm"
      ? { kind: "ipm", epsilon: ATTACK_RUN.epsilon }
      : { kind: "alie", z: o.z ?? alieZ(workers, Math.max(1, attackers)) };
  const gpt = o.task === "gpt";
  const datasets = o.task === "lines" ? { lines: () => linesShard } : o.datasets;
  const sim = new Simulation(store, datasets ? { datasets } : {});
  const run = sim.coordinator.createRun({
    name: `attacked-${o.attack}`,
    ...(gpt
      ? { model: ATTACK_GPT, dataset: "shakespeare" }
      : o.task === "lines"
        ? { model: tinyGpt, dataset: "lines" }
        : { dataset: "mnist" }),
    batchSize: o.batchSize ?? (gpt ? 4 : o.task === "lines" ? 8 : ATTACK_RUN.batchSize),
    strategy: { kind: "synchronous", targetUpdates: workers, stragglerMs: 5000 },
    aggregation: o.aggregation,
    optimizer: { kind: "adamw", learningRate: 3e-3, decayVersions: versions, minLearningRate: 0 },
    evaluateEvery: versions,
    stop: { versions },
    // Every forged update is well-formed and small: the norm bound and strikes never see them.
    quarantineAfter: 1000,
  });
  const collusion = new Collusion(attack, attackers);
  for (let i = 0; i < workers - attackers; i++) sim.addWorker({ runId: run.id });
  for (let i = 0; i < attackers; i++) sim.addWorker({ runId: run.id, collusion });
  sim.runUntil(() => run.record.state === "finished", 100_000_000);
  return {
    run,
    attackers,
    forged: collusion.forged,
    accuracy: run.record.evaluation?.accuracy ?? 0,
    /** Held-out loss in nats (per character for the GPT). */
    loss: run.record.evaluation?.loss ?? Number.NaN,
    z: o.attack === "alie" && attack.kind === "alie" ? attack.z : undefined,
  };
}
