// What a researcher chooses when starting a run, and the checks that keep a bad choice out.
// Every field has a default, so `{ model, dataset }` is a complete request; the API, the CLI and
// the dashboard all go through `resolveRunConfig`.
import { checkModelSpec, MAX_REDUCE_GROUP, type ModelSpec, mnistMlp } from "@pangea/shared";
import type { AggregatorKind } from "@pangea/shared";

export type StrategyConfig =
  /** A version closes when `targetUpdates` sessions sent an update for it, or `stragglerMs` after the first. */
  | { kind: "synchronous"; targetUpdates: number; stragglerMs: number }
  /** Updates from up to `maxStaleness` versions back, weighted 1/(1+staleness); a version per `buffer` sessions' updates. */
  | { kind: "asynchronous"; maxStaleness: number; buffer: number }
  /** DiLoCo: tabs take `innerSteps` local steps; the averaged parameter delta drives an outer Nesterov SGD. */
  | { kind: "localSgd"; innerSteps: number; targetUpdates: number; stragglerMs: number };

/** How a version's updates become one (aggregate.ts has the formulas). Default: mean. */
export type AggregationConfig = {
  kind: AggregatorKind;
  /** trimmedMean: the fraction cut from each end of every coordinate's sorted values. */
  trim: number;
  /** Per-update L2 norm clipping before aggregation; 0 turns it off. */
  clipNorm: number;
  /** Robust rules: updates averaged in seeded random buckets of this many first (0 or 1: off). */
  bucket: number;
  /** centeredClip: the clipping radius; 0 takes the median distance to the centre. */
  radius: number;
  /** centeredClip: its iterations. */
  iterations: number;
};

/**
 * The robust rule we recommend against attackers inside the honest spread (ALIE, IPM): see the
 * attack table in the README.
 */
export const RECOMMENDED_AGGREGATION = { kind: "centeredClip", bucket: 2 } as const;

export type ServerOptimizerConfig = {
  kind: "sgd" | "adamw";
  learningRate: number;
  /** sgd: momentum (heavy ball, or Nesterov when `nesterov`). adamw: beta1. */
  momentum: number;
  nesterov: boolean;
  beta2: number;
  epsilon: number;
  weightDecay: number;
  /** Linear warm-up over this many versions. */
  warmupVersions: number;
  /** Cosine decay to `minLearningRate` over this many versions; 0 keeps the rate constant. */
  decayVersions: number;
  minLearningRate: number;
};

export type StopCondition = {
  /** Stop once the coordinator's own evaluation reaches this test accuracy (0 = never). */
  targetAccuracy: number;
  /** Stop after this many epochs (0 = no limit). */
  epochs: number;
  /** Stop after this many versions (0 = no limit). */
  versions: number;
  /** Stop once the coordinator's evaluation reaches this held-out loss, in nats (0 = never). */
  targetLoss: number;
};

export interface RunConfig {
  name: string;
  model: ModelSpec;
  /** A dataset the coordinator knows by name: "mnist", "shakespeare" (text), or "blobs" (synthetic). */
  dataset: string;
  batchSize: number;
  strategy: StrategyConfig;
  aggregation: AggregationConfig;
  optimizer: ServerOptimizerConfig;
  /** The tab's own optimizer for local SGD (and its learning rate). */
  local: {
    kind: "sgd" | "momentum" | "adamw";
    learningRate: number;
    momentum: number;
    weightDecay: number;
  };
  updateEncoding: "fp32" | "fp16" | "int8";
  seed: number;
  stop: StopCondition;
  /** Evaluate held-out loss and accuracy every this many versions. */
  evaluateEvery: number;
  /**
   * Who measures it: the coordinator (a worker thread on Node, sliced on the edge), or
   * contributors, each part by two sessions compared (evaluation-leases.ts), with the
   * coordinator stepping in where they cannot (fewer than two, no agreement, a paused run).
   */
  evaluateBy: "coordinator" | "contributors";
  /** Updates whose L2 norm exceeds this are refused (normTooLarge). */
  maxUpdateNorm: number;
  /** A lease lasts this long for a session whose speed is unknown; later, scaled to its speed. */
  leaseMs: number;
  /** The fraction of batches handed to two sessions so that their results can be compared. */
  redundancy: number;
  /** Strikes (refused or disagreeing updates) after which a session is quarantined. */
  quarantineAfter: number;
  /**
   * Sessions that can (Join.peers) fetch a version's parameter frame from another session that
   * holds it, over WebRTC, checked against the frame's SHA-256 (parameter-sources.ts), instead of
   * from the coordinator.
   */
  peers: boolean;
  /**
   * ≥ 2: sessions with peers declare their updates and reduce them among themselves in groups of
   * this many (reduce-groups.ts), sending the coordinator one reduced update per group; 0 or
   * absent (runs created before it existed): off.
   */
  reduceGroup?: number;
}

export type RunConfigInput = Partial<
  Omit<RunConfig, "strategy" | "aggregation" | "optimizer" | "local" | "stop">
> & {
  strategy?: Partial<StrategyConfig> & { kind?: StrategyConfig["kind"] };
  aggregation?: Partial<AggregationConfig>;
  optimizer?: Partial<ServerOptimizerConfig>;
  local?: Partial<RunConfig["local"]>;
  stop?: Partial<StopCondition>;
};

export class RunConfigError extends Error {
  override readonly name = "RunConfigError";
  constructor(readonly problems: string[]) {
    super(`invalid run: ${problems.join("; ")}`);
  }
}

/** Fills defaults and checks every field; throws RunConfigError listing every problem. */
export function resolveRunConfig(input: RunConfigInput): RunConfig {
  const strategyKind = input.strategy?.kind ?? "synchronous";
  const strategy: StrategyConfig =
    strategyKind === "asynchronous"
      ? { kind: "asynchronous", maxStaleness: 4, buffer: 1, ...(input.strategy as object) }
      : strategyKind === "localSgd"
        ? {
            kind: "localSgd",
            innerSteps: 8,
            targetUpdates: 4,
            stragglerMs: 30_000,
            ...(input.strategy as object),
          }
        : {
            kind: "synchronous",
            targetUpdates: 4,
            stragglerMs: 10_000,
            ...(input.strategy as object),
          };
  const config: RunConfig = {
    name: input.name ?? "run",
    model: input.model ?? mnistMlp,
    dataset: input.dataset ?? "mnist",
    batchSize: input.batchSize ?? 64,
    strategy,
    aggregation: {
      kind: "mean",
      trim: 0.2,
      clipNorm: 0,
      bucket: 0,
      radius: 0,
      iterations: 3,
      ...input.aggregation,
    },
    optimizer: {
      kind: strategyKind === "localSgd" ? "sgd" : "adamw",
      learningRate: strategyKind === "localSgd" ? 0.7 : 1e-3,
      momentum: 0.9,
      nesterov: strategyKind === "localSgd",
      beta2: 0.999,
      epsilon: 1e-8,
      weightDecay: 0,
      warmupVersions: 0,
      decayVersions: 0,
      minLearningRate: 0,
      ...input.optimizer,
    },
    local: { kind: "adamw", learningRate: 1e-3, momentum: 0.9, weightDecay: 0, ...input.local },
    updateEncoding: input.updateEncoding ?? "fp32",
    seed: input.seed ?? 1,
    stop: { targetAccuracy: 0, epochs: 0, versions: 0, targetLoss: 0, ...input.stop },
    evaluateEvery: input.evaluateEvery ?? 10,
    evaluateBy: input.evaluateBy ?? "coordinator",
    maxUpdateNorm: input.maxUpdateNorm ?? 1e4,
    leaseMs: input.leaseMs ?? 30_000,
    redundancy: input.redundancy ?? 0,
    quarantineAfter: input.quarantineAfter ?? 8,
    peers: input.peers ?? false,
    reduceGroup: input.reduceGroup ?? 0,
  };
  const problems = checkRunConfig(config);
  if (problems.length > 0) throw new RunConfigError(problems);
  return config;
}

const int = (v: unknown, lo: number, hi: number) =>
  typeof v === "number" && Number.isInteger(v) && v >= lo && v <= hi;
const num = (v: unknown, lo: number, hi: number) =>
  typeof v === "number" && Number.isFinite(v) && v >= lo && v <= hi;

export function checkRunConfig(c: RunConfig): string[] {
  const p: string[] = [];
  const need = (ok: boolean, what: string) => ok || p.push(what);
  need(
    typeof c.name === "string" && c.name.length > 0 && c.name.length <= 100,
    "name: 1 to 100 characters",
  );
  p.push(...checkModelSpec(c.model).map((m) => `model: ${m}`));
  // Which names exist is the coordinator's to say (its runtime's datasets); here, the form.
  need(
    typeof c.dataset === "string" && /^[a-z0-9][a-z0-9-]{0,63}$/.test(c.dataset),
    "dataset: a dataset's name (lowercase letters, digits and dashes)",
  );
  need(int(c.batchSize, 1, 4096), "batchSize: an integer from 1 to 4096");
  const s = c.strategy;
  need(
    ["synchronous", "asynchronous", "localSgd"].includes(s.kind),
    "strategy.kind: synchronous, asynchronous or localSgd",
  );
  if (s.kind === "synchronous" || s.kind === "localSgd") {
    need(int(s.targetUpdates, 1, 10_000), "strategy.targetUpdates: an integer from 1 to 10000");
    need(int(s.stragglerMs, 1, 3_600_000), "strategy.stragglerMs: 1 ms to 1 hour");
  }
  if (s.kind === "asynchronous") {
    need(int(s.maxStaleness, 0, 1000), "strategy.maxStaleness: an integer from 0 to 1000");
    need(int(s.buffer, 1, 10_000), "strategy.buffer: an integer from 1 to 10000");
  }
  if (s.kind === "localSgd")
    need(int(s.innerSteps, 1, 10_000), "strategy.innerSteps: an integer from 1 to 10000");
  need(
    ["mean", "trimmedMean", "median", "centeredClip"].includes(c.aggregation.kind),
    "aggregation.kind: mean, trimmedMean, median or centeredClip",
  );
  need(int(c.aggregation.bucket, 0, 64), "aggregation.bucket: an integer from 0 (off) to 64");
  need(
    c.aggregation.kind !== "mean" || c.aggregation.bucket <= 1,
    "aggregation.bucket: buckets feed a robust rule (trimmedMean, median or centeredClip), not the mean",
  );
  need(
    num(c.aggregation.radius, 0, 1e12),
    "aggregation.radius: 0 (the median distance) or a positive radius",
  );
  need(int(c.aggregation.iterations, 1, 100), "aggregation.iterations: an integer from 1 to 100");
  need(num(c.aggregation.trim, 0, 0.49), "aggregation.trim: from 0 to 0.49");
  need(num(c.aggregation.clipNorm, 0, 1e12), "aggregation.clipNorm: 0 (off) or a positive norm");
  const o = c.optimizer;
  need(["sgd", "adamw"].includes(o.kind), "optimizer.kind: sgd or adamw");
  need(num(o.learningRate, 1e-9, 100), "optimizer.learningRate: from 1e-9 to 100");
  need(num(o.momentum, 0, 0.9999), "optimizer.momentum: from 0 to 0.9999");
  need(typeof o.nesterov === "boolean", "optimizer.nesterov: true or false");
  need(num(o.beta2, 0, 0.99999), "optimizer.beta2: from 0 to 0.99999");
  need(num(o.epsilon, 1e-12, 1), "optimizer.epsilon: from 1e-12 to 1");
  need(num(o.weightDecay, 0, 1), "optimizer.weightDecay: from 0 to 1");
  need(int(o.warmupVersions, 0, 1e9), "optimizer.warmupVersions: a whole number");
  need(int(o.decayVersions, 0, 1e9), "optimizer.decayVersions: a whole number");
  need(
    num(o.minLearningRate, 0, o.learningRate),
    "optimizer.minLearningRate: from 0 to learningRate",
  );
  need(["sgd", "momentum", "adamw"].includes(c.local.kind), "local.kind: sgd, momentum or adamw");
  need(num(c.local.learningRate, 1e-9, 100), "local.learningRate: from 1e-9 to 100");
  need(num(c.local.momentum, 0, 0.9999), "local.momentum: from 0 to 0.9999");
  need(num(c.local.weightDecay, 0, 1), "local.weightDecay: from 0 to 1");
  need(["fp32", "fp16", "int8"].includes(c.updateEncoding), "updateEncoding: fp32, fp16 or int8");
  need(int(c.seed, 0, 2 ** 32 - 1), "seed: a 32-bit unsigned integer");
  need(num(c.stop.targetAccuracy, 0, 1), "stop.targetAccuracy: from 0 to 1");
  need(int(c.stop.epochs, 0, 1e6), "stop.epochs: a whole number");
  need(int(c.stop.versions, 0, 1e12), "stop.versions: a whole number");
  need(num(c.stop.targetLoss, 0, 1e6), "stop.targetLoss: 0 (none) or a loss in nats");
  need(int(c.evaluateEvery, 1, 1e6), "evaluateEvery: a positive integer");
  need(
    ["coordinator", "contributors"].includes(c.evaluateBy),
    "evaluateBy: coordinator or contributors",
  );
  need(num(c.maxUpdateNorm, 1e-6, 1e12), "maxUpdateNorm: a positive number");
  need(int(c.leaseMs, 100, 3_600_000), "leaseMs: 100 ms to 1 hour");
  need(num(c.redundancy, 0, 1), "redundancy: a fraction from 0 to 1");
  need(int(c.quarantineAfter, 1, 1e6), "quarantineAfter: a positive integer");
  need(typeof c.peers === "boolean", "peers: true or false");
  const group = c.reduceGroup ?? 0;
  need(
    group === 0 || int(group, 2, MAX_REDUCE_GROUP),
    `reduceGroup: 0 (off) or a group size from 2 to ${MAX_REDUCE_GROUP}`,
  );
  if (group > 0) {
    // What a group's owners can compute part by part, and the coordinator can check.
    need(c.peers, "reduceGroup: needs peers (the members reduce over WebRTC)");
    need(
      c.strategy.kind !== "asynchronous",
      "reduceGroup: for the synchronous and localSgd strategies (an asynchronous version is one update)",
    );
    need(
      ["mean", "trimmedMean", "median"].includes(c.aggregation.kind) &&
        c.aggregation.bucket <= 1 &&
        c.aggregation.clipNorm === 0,
      "reduceGroup: a coordinate-wise aggregation (mean, trimmedMean or median) without buckets or clipNorm, which a part can be reduced with alone",
    );
    need(c.redundancy === 0, "reduceGroup: without redundancy (a copy is compared whole)");
    need(c.updateEncoding === "fp32", "reduceGroup: fp32 updates (parts are hashed as fp32)");
  }
  return p;
}
