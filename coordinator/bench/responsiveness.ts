// `pnpm bench:responsiveness`: how long the coordinator keeps a caller waiting at most while a
// GPT run trains and is evaluated, on Node and on the edge (`wrangler dev`). Three headless CPU
// workers (`pangea worker`, a separate process) train the Shakespeare GPT (2 layers × 64)
// synchronously, evaluated every 5 versions (each evaluation is 32 held-out windows and a
// 160-character sample on the float64 reference); meanwhile this process asks the run's status
// back to back and times each answer. On the edge that request is served by the run's Durable
// Object, so its latency bounds how long the object's event loop was held (workerd's clocks do
// not move while code runs, so the object cannot time itself). Node also reports its own
// measure from /metrics: the longest hold since start, and the longest over the last minute
// (`pangea_event_loop_delay_recent_max_seconds`), sampled every 10 s while the run trains, after
// an idle minute so that the start-up's holds have left that window. Each backend runs twice: the
// coordinator evaluating, and its contributors evaluating (evaluation leases, each part measured
// by two workers), where the coordinator measures nothing itself.
import { type ChildProcess, spawn } from "node:child_process";
import { join } from "node:path";
import { gptSpec } from "@pangea/shared";
import { type Backend, serverProcess } from "../src/testing/server-process.ts";

const VERSIONS = Number(process.env.RESPONSIVENESS_VERSIONS ?? 60);
const NICE = Number(process.env.RESPONSIVENESS_NICE ?? 19);
const cli = join(import.meta.dirname, "../src/node/cli.ts");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? Number.NaN;
}

/** Asks for `path` back to back until `until()` and returns the answers' latencies, sorted. */
async function probe(url: string, until: () => boolean | Promise<boolean>): Promise<number[]> {
  const times: number[] = [];
  while (!(await until())) {
    const t = performance.now();
    await (await fetch(url)).arrayBuffer();
    times.push(performance.now() - t);
    await sleep(20);
  }
  return times.sort((a, b) => a - b);
}

/** Node's `pangea_event_loop_delay_max_seconds` (or `_recent_max_`), in milliseconds. */
async function loopMaxMs(
  server: { api: (path: string) => Promise<Response> },
  gauge: "max" | "recent_max" = "max",
): Promise<number> {
  const metrics = await (await server.api("/metrics")).text();
  const line = new RegExp(`^pangea_event_loop_delay_${gauge}_seconds (\\S+)$`, "m").exec(metrics);
  return Number(line?.[1]) * 1000;
}

type EvaluateBy = "coordinator" | "contributors";

async function measure(backend: Backend, evaluateBy: EvaluateBy) {
  // RESPONSIVENESS_PROFILE=dir: Node's coordinator writes a CPU profile there when it stops.
  // RESPONSIVENESS_NODE_ARGS="--trace-gc": more flags for Node's coordinator, whose output is
  // then shown.
  const profile = process.env.RESPONSIVENESS_PROFILE;
  const extra = (process.env.RESPONSIVENESS_NODE_ARGS ?? "").split(" ").filter(Boolean);
  const nodeArgs = [...(profile ? ["--cpu-prof", `--cpu-prof-dir=${profile}`] : []), ...extra];
  const server = await serverProcess({
    backend,
    ...(backend === "node" ? { nodeArgs, log: extra.length > 0 } : {}),
  });
  let workers: ChildProcess | undefined;
  try {
    const created = await server.api("/api/runs", {
      method: "POST",
      body: JSON.stringify({
        name: "responsiveness",
        model: gptSpec({ vocabSize: 65, contextLength: 64, layers: 2, heads: 4, width: 64 }),
        dataset: "shakespeare",
        batchSize: 16,
        strategy: { kind: "synchronous", targetUpdates: 3, stragglerMs: 15_000 },
        optimizer: { kind: "adamw", learningRate: 3e-3, warmupVersions: 20 },
        evaluateEvery: 5,
        evaluateBy,
        stop: { versions: VERSIONS },
      }),
    });
    if (!created.ok) throw new Error(`run refused: ${await created.text()}`);
    const { id } = (await created.json()) as { id: string };
    const status = `${server.url}/api/runs/${id}`;
    // On Node the idle phase lasts longer than the recent gauge's minute, so that the run's
    // holds are not read under the start-up's.
    const idleUntil = performance.now() + (backend === "node" ? 65_000 : 5_000);
    const idle = await probe(status, () => performance.now() > idleUntil);
    // Node's longest hold so far (start-up, the run's creation, idle): the run's own comes after.
    const loopMaxBefore = backend === "node" ? await loopMaxMs(server) : Number.NaN;
    const idleRecent = backend === "node" ? await loopMaxMs(server, "recent_max") : Number.NaN;
    let runRecent = 0;
    let sampled = performance.now();
    // The workers are other machines in a real network; here they share the coordinator's two
    // cores. At the lowest priority (nice 19) they take only the CPU the coordinator leaves, so
    // the latencies are the coordinator's, not the run queue's (RESPONSIVENESS_NICE=0: same
    // priority, as before).
    const worker = [process.execPath, "--import", "tsx", cli, "worker", server.url, "--run", id];
    workers = spawn("nice", ["-n", String(NICE), ...worker, "--count", "3"], { stdio: "ignore" });
    const started = performance.now();
    let state = {
      state: "running",
      version: 0,
      evaluation: null as { version: number; where?: string } | null,
    };
    let checked = 0;
    let done = false;
    // Beside the run's status, /health and a static asset. On the edge the Worker answers
    // /health without the run's Durable Object (but in the same isolate, which runs one event at
    // a time), and the asset comes from workerd's asset service without our isolate at all: a
    // wait seen on the asset too is the local runtime's (wrangler's proxy, workerd), one seen on
    // /health and the status but not the asset is our isolate's.
    const [busy, health, asset] = await Promise.all([
      probe(status, async () => {
        if (performance.now() - checked < 1000) return false;
        checked = performance.now();
        state = (await (await fetch(status)).json()) as typeof state;
        if (backend === "node" && performance.now() - sampled >= 10_000) {
          sampled = performance.now();
          runRecent = Math.max(runRecent, await loopMaxMs(server, "recent_max"));
        }
        done = state.state !== "running" || performance.now() - started > 15 * 60_000;
        return done;
      }),
      probe(`${server.url}/health`, () => done),
      probe(`${server.url}/`, () => done),
    ]);
    const loopMax = backend === "node" ? await loopMaxMs(server) : Number.NaN;
    if (backend === "node") runRecent = Math.max(runRecent, await loopMaxMs(server, "recent_max"));
    return {
      backend,
      evaluateBy,
      where: state.evaluation?.where ?? "",
      versions: state.version,
      evaluatedVersion: state.evaluation?.version ?? -1,
      seconds: (performance.now() - started) / 1000,
      idleP50: quantile(idle, 0.5),
      p50: quantile(busy, 0.5),
      p99: quantile(busy, 0.99),
      max: busy.at(-1) ?? Number.NaN,
      answers: busy.length,
      healthP99: quantile(health, 0.99),
      healthMax: health.at(-1) ?? Number.NaN,
      assetP99: quantile(asset, 0.99),
      assetMax: asset.at(-1) ?? Number.NaN,
      loopMax,
      loopMaxBefore,
      idleRecent,
      runRecent,
    };
  } finally {
    workers?.kill("SIGKILL");
    // The profile is written at a graceful exit (SIGTERM), not at dispose's SIGKILL.
    const child = server.process;
    if (profile && child && child.exitCode === null) {
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await exited;
    }
    await server.dispose();
  }
}

const rows = [];
const modes = (process.env.RESPONSIVENESS_EVALUATE_BY ?? "coordinator,contributors").split(
  ",",
) as EvaluateBy[];
const backends = (process.env.RESPONSIVENESS_BACKENDS ?? "node,edge").split(",") as Backend[];
for (const backend of backends)
  for (const evaluateBy of modes) {
    const r = await measure(backend, evaluateBy);
    rows.push(r);
    console.log(
      `${backend}, evaluated by ${evaluateBy} (last: ${r.where}): ${r.versions} versions in ${r.seconds.toFixed(0)} s (last evaluated ${r.evaluatedVersion}); ` +
        `status answered in p50 ${r.p50.toFixed(1)} ms (idle ${r.idleP50.toFixed(1)}), p99 ${r.p99.toFixed(1)} ms, ` +
        `max ${r.max.toFixed(1)} ms over ${r.answers} answers; /health p99 ${r.healthP99.toFixed(1)} ms, max ${r.healthMax.toFixed(1)} ms; a static asset p99 ${r.assetP99.toFixed(1)} ms, max ${r.assetMax.toFixed(1)} ms` +
        (Number.isNaN(r.loopMax)
          ? ""
          : `; event loop's longest hold since start ${r.loopMax.toFixed(1)} ms (${r.loopMaxBefore.toFixed(1)} ms before the workers started), ` +
            `in the idle minute before the workers ${r.idleRecent.toFixed(1)} ms, during the run ${r.runRecent.toFixed(1)} ms`),
    );
  }
console.log(
  "\n| backend | evaluated by | versions | status p50 (idle) | p99 | max | /health p99 | max | asset p99 | max | event-loop max |",
);
console.log("|---|---|---|---|---|---|---|---|---|---|---|");
for (const r of rows)
  console.log(
    `| ${r.backend} | ${r.evaluateBy} | ${r.versions} | ${r.p50.toFixed(1)} ms (${r.idleP50.toFixed(1)}) | ${r.p99.toFixed(1)} ms | ${r.max.toFixed(1)} ms | ${r.healthP99.toFixed(1)} ms | ${r.healthMax.toFixed(1)} ms | ${r.assetP99.toFixed(1)} ms | ${r.assetMax.toFixed(1)} ms | ${Number.isNaN(r.loopMax) ? "n/a" : `${r.runRecent.toFixed(1)} ms (${r.idleRecent.toFixed(1)})`} |`,
  );
