// The coordinator is killed with SIGKILL at 20 random moments (a random 5 to 40 versions apart)
// while four workers train, and restarted each time. Every restart must resume at the last committed version: never below a
// version any worker was told of (acknowledgements and parameters go out only after the commit),
// never below the previous restart's; and training must still reach its target, with every
// committed sample still credited.
import { seededRandom } from "@pangea/shared";
import { afterAll, expect, it } from "vitest";
import { type ServerProcess, serverProcess } from "../testing/server-process.ts";
import { connectWorker } from "./ws-worker.ts";

let server: ServerProcess | undefined;
afterAll(() => server?.dispose());

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

it("resumes at its last committed version after each of 20 SIGKILLs, and still reaches the target", async () => {
  server = await serverProcess();
  const { url } = server;
  const api = server.api;
  const created = await api("/api/runs", {
    method: "POST",
    body: JSON.stringify({
      name: "crash",
      dataset: "mnist",
      strategy: { kind: "asynchronous", maxStaleness: 8 },
      evaluateEvery: 25,
      stop: { targetAccuracy: 0.95, epochs: 30 },
    }),
  });
  const { id } = (await created.json()) as { id: string };
  const version = async () =>
    ((await (await api(`/api/runs/${id}`)).json()) as { version: number }).version;

  let announced = 0;
  const workers = Array.from({ length: 4 }, () =>
    connectWorker(url, {
      runId: id,
      onMessage: (p) => {
        if (p.type === "ack" || p.type === "parameters") announced = Math.max(announced, p.version);
      },
    }),
  );

  const random = seededRandom(2026);
  const resumedAt: number[] = [];
  let previous = 0;
  for (let kill = 0; kill < 20; kill++) {
    // A random moment during training: after a random number of new versions (5 to 40), so
    // that every kill falls while the run trains, however fast this machine is.
    const target = previous + 5 + Math.floor(random() * 36);
    for (let waited = 0; announced < target && waited < 60_000; waited += 20) await sleep(20);
    await server.kill();
    await sleep(50); // frames already sent by the dead process land before we read `announced`
    const told = announced;
    await server.start();
    const v = await version();
    expect(
      v,
      `restart ${kill + 1}: at ${v}, but version ${told} had been announced`,
    ).toBeGreaterThanOrEqual(told);
    expect(v, `restart ${kill + 1}: went back from ${previous} to ${v}`).toBeGreaterThanOrEqual(
      previous,
    );
    previous = v;
    resumedAt.push(v);
  }
  await Promise.all(workers.map((w) => w.done));
  type Status = {
    state: string;
    version: number;
    evaluation: { accuracy: number; version: number };
    counters: { samples: number };
    workers: { credit?: number }[];
  };
  // The version the run ends at is evaluated after it finishes (on a worker thread).
  let status = (await (await api(`/api/runs/${id}`)).json()) as Status;
  for (
    let waited = 0;
    status.evaluation.version < status.version && waited < 30_000;
    waited += 200
  ) {
    await sleep(200);
    status = (await (await api(`/api/runs/${id}`)).json()) as Status;
  }
  // Every committed sample is credited to the session whose update it was: credit is written
  // with each commit, so no kill took any back (the workers resumed their sessions by token).
  const credited = status.workers.reduce((a, w) => a + (w.credit ?? 0), 0);
  console.log(`credited ${credited} of ${status.counters.samples} committed samples`);
  expect(credited).toBe(status.counters.samples);
  console.log(`resumed at versions ${resumedAt.join(", ")}; finished at ${status.version}`);
  expect(status.state).toBe("finished");
  // It finished on an evaluation at the target; versions committed while that one ran are kept,
  // and the last evaluation describes the version the run ends at. The few asynchronous versions
  // after the one at the target move the accuracy by a point or so either way (CI saw 0.935 once).
  const { points } = (await (await api(`/api/runs/${id}/metrics`)).json()) as {
    points: { testAccuracy?: number }[];
  };
  expect(Math.max(...points.map((p) => p.testAccuracy ?? 0))).toBeGreaterThanOrEqual(0.95);
  expect(status.evaluation.version).toBe(status.version);
  expect(status.evaluation.accuracy).toBeGreaterThanOrEqual(0.93);
  expect(new Set(resumedAt).size).toBe(20); // each kill fell after new versions: during training
}, 900_000);
