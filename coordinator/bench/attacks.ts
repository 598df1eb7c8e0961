// `pnpm bench:attacks`: final MNIST test accuracy per aggregation rule under attacks that stay
// inside the honest spread (ALIE, IPM), at 10% and 20% colluding sessions, beside clean training.
// Each row is one simulated run (testing/attacks.ts: real codec, real core, CPU reference
// workers, synchronous versions of every session's update); rows run in child processes, one per
// core. ATTACK_VERSIONS, ATTACK_WORKERS and ATTACK_Z (ALIE's z; default the paper's z_max)
// change the settings; ATTACK_RULES picks rules by name (comma-separated); ATTACK_TASK=gpt
// trains the small character GPT on Tiny Shakespeare instead (validation loss, lower is better).
import { spawn } from "node:child_process";
import { availableParallelism } from "node:os";
import { fileURLToPath } from "node:url";
import { MemoryStore } from "../src/core/memory-store.ts";
import type { AggregationConfig } from "../src/core/run-config.ts";
import { tinyShakespeareShard } from "@pangea/shared/text-node";
import { ATTACK_RUN, type AttackName, attackedRun } from "../src/testing/attacks.ts";

const RULES: Record<string, Partial<AggregationConfig>> = {
  mean: { kind: "mean" },
  "trimmed mean (0.2)": { kind: "trimmedMean", trim: 0.2 },
  median: { kind: "median" },
  "median + buckets of 2": { kind: "median", bucket: 2 },
  CenteredClip: { kind: "centeredClip" },
  "CenteredClip + buckets of 2": { kind: "centeredClip", bucket: 2 },
};
const CASES: Array<[AttackName, number]> = [
  ["none", 0],
  ["alie", 0.1],
  ["alie", 0.2],
  ["ipm", 0.1],
  ["ipm", 0.2],
];
const versions = Number(process.env.ATTACK_VERSIONS ?? ATTACK_RUN.versions);
const workers = Number(process.env.ATTACK_WORKERS ?? ATTACK_RUN.workers);
const z = process.env.ATTACK_Z ? Number(process.env.ATTACK_Z) : undefined;
const task = process.env.ATTACK_TASK === "gpt" ? "gpt" : "mnist";
const rules = process.env.ATTACK_RULES
  ? process.env.ATTACK_RULES.split(",").map((r) => r.trim())
  : Object.keys(RULES);

interface Row {
  rule: string;
  attack: AttackName;
  fraction: number;
  accuracy: number;
  loss: number;
  z?: number;
  seconds: number;
}

function one(rule: string, attack: AttackName, fraction: number): Row {
  const t = performance.now();
  const r = attackedRun(new MemoryStore(), {
    aggregation: RULES[rule]!,
    attack,
    fraction,
    versions,
    workers,
    z,
    task,
    ...(task === "gpt" ? { datasets: { shakespeare: tinyShakespeareShard } } : {}),
  });
  return {
    rule,
    attack,
    fraction,
    accuracy: r.accuracy,
    loss: r.loss,
    z: r.z,
    seconds: (performance.now() - t) / 1000,
  };
}

/** The row's figure: test accuracy (MNIST) or validation loss (the GPT). */
const value = (r: Row) => (task === "gpt" ? r.loss : r.accuracy);
const show = (r: Row) => (task === "gpt" ? r.loss.toFixed(3) : `${(100 * r.accuracy).toFixed(1)}%`);

if (process.argv[2] === "--row") {
  const [rule, attack, fraction] = JSON.parse(process.argv[3]!) as [string, AttackName, number];
  process.stdout.write(`${JSON.stringify(one(rule, attack, fraction))}\n`);
} else {
  const jobs = rules.flatMap((rule) => CASES.map(([a, f]) => [rule, a, f] as const));
  const rows: Row[] = [];
  const self = fileURLToPath(import.meta.url);
  let next = 0;
  const lane = async () => {
    while (next < jobs.length) {
      const job = jobs[next++]!;
      const out = await new Promise<string>((resolve, reject) => {
        const child = spawn(
          process.execPath,
          [...process.execArgv, self, "--row", JSON.stringify(job)],
          {
            stdio: ["ignore", "pipe", "inherit"],
          },
        );
        let text = "";
        child.stdout.on("data", (d) => (text += d));
        child.on("exit", (code) =>
          code === 0 ? resolve(text) : reject(new Error(`row ${job} exited ${code}`)),
        );
      });
      const row = JSON.parse(out.trim().split("\n").pop()!) as Row;
      rows.push(row);
      console.log(
        `${row.rule.padEnd(28)} ${row.attack.padEnd(5)} ${String(row.fraction * 100).padStart(3)}%  ${show(row)}  (${row.seconds.toFixed(0)} s)`,
      );
    }
  };
  const started = performance.now();
  await Promise.all(Array.from({ length: Math.max(1, availableParallelism()) }, lane));
  const at = (rule: string, a: AttackName, f: number) =>
    rows.find((r) => r.rule === rule && r.attack === a && r.fraction === f);
  const zs = [...new Set(rows.filter((r) => r.z !== undefined).map((r) => r.z!.toFixed(3)))];
  const what =
    task === "gpt"
      ? `character GPT 2×32 on Tiny Shakespeare (validation loss in nats, lower is better), batch 4 windows of 32`
      : `MNIST MLP (test accuracy), batch ${ATTACK_RUN.batchSize}`;
  console.log(
    `\n${what}, ${workers} sessions, synchronous (every session's update per version), ${versions} versions, AdamW 3e-3 cosine; ALIE z = ${zs.join(" / ")} (10% / 20%), IPM ε = ${ATTACK_RUN.epsilon}; ${((performance.now() - started) / 1000).toFixed(0)} s\n`,
  );
  const cols = CASES.map(([a, f]) => (a === "none" ? "clean" : `${a.toUpperCase()} ${f * 100}%`));
  console.log(`| rule | ${cols.join(" | ")} | worst vs clean |`);
  console.log(`|---|${cols.map(() => "---:").join("|")}|---:|`);
  for (const rule of rules) {
    const vals = CASES.map(([a, f]) => at(rule, a, f));
    const clean = vals[0] ? value(vals[0]) : Number.NaN;
    const attacked = vals.slice(1).map((v) => (v ? value(v) : Number.NaN));
    // The worst attacked figure: the lowest accuracy, or the highest loss.
    const worst = task === "gpt" ? Math.max(...attacked) : Math.min(...attacked);
    const delta = task === "gpt" ? (worst - clean).toFixed(3) : (100 * (worst - clean)).toFixed(1);
    console.log(`| ${rule} | ${vals.map((v) => (v ? show(v) : "")).join(" | ")} | ${delta} |`);
  }
}
