// The dashboard's live stream (GET /api/runs/:id/events) against a run whose evaluations land
// after later versions' commits, as they do when they run off the commit path: every evaluated
// point still reaches the page. Runs in Node and inside workerd.
import { decodeSafetensors, mlpSpec } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { Simulation } from "../testing/simulation.ts";
import { type EvaluationJob, type EvaluationResult, runEvaluation } from "./evaluation.ts";
import { createApi } from "./http-api.ts";
import type { MetricPoint } from "./ports.ts";

/** Reads server-sent events' data, one event at a time. */
function events(body: ReadableStream<Uint8Array>) {
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  return {
    async next(): Promise<{ points: MetricPoint[] }> {
      for (;;) {
        const end = buffer.indexOf("\n\n");
        if (end >= 0) {
          const event = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = event.split("\n").find((l) => l.startsWith("data:"));
          if (data) return JSON.parse(data.slice(5));
          continue;
        }
        const { value, done } = await reader.read();
        if (done) throw new Error("the stream ended");
        buffer += decoder.decode(value, { stream: true });
      }
    },
    close: () => reader.cancel(),
  };
}

/** A small MLP on the blobs, one update per version, evaluated every 2 versions. */
const blobsRun = (sim: Simulation, versions: number) =>
  sim.coordinator.createRun({
    name: "blobs",
    model: mlpSpec([16, 8, 4], { seed: 3 }),
    dataset: "blobs",
    batchSize: 32,
    evaluateEvery: 2,
    strategy: { kind: "synchronous", targetUpdates: 1, stragglerMs: 5000 },
    stop: { versions },
  });

describe("the run's live stream", () => {
  it("sends an evaluation that lands after later commits", async () => {
    // Evaluations wait until the test lets them finish.
    const waiting: Array<() => void> = [];
    const evaluator = (job: EvaluationJob) =>
      new Promise<EvaluationResult>((resolve) => waiting.push(() => resolve(runEvaluation(job))));
    const sim = new Simulation(undefined, { evaluator });
    const run = blobsRun(sim, 100);
    const api = createApi(sim.coordinator, { adminToken: "t", startedAt: 0 });
    const response = await api.request(`/api/runs/${run.id}/events`);
    const stream = events(response.body!);
    await stream.next();
    sim.addWorker({ runId: run.id });
    sim.runUntil(() => run.record.version >= 2);
    // Version 2's evaluation is under way while versions 3 and 4 commit (and are sent).
    sim.runUntil(() => run.record.version >= 4);
    const commits = (await stream.next()).points;
    expect(commits.map((p) => p.version)).toContain(4);
    expect(commits.some((p) => p.testLoss !== undefined)).toBe(false);
    for (const finish of waiting.splice(0)) finish();
    await new Promise((r) => setTimeout(r, 0));
    expect(run.record.evaluation?.version).toBe(2);
    let evaluated: MetricPoint | undefined;
    for (let i = 0; i < 3 && !evaluated; i++)
      evaluated = (await stream.next()).points.find((p) => p.testLoss !== undefined);
    expect(evaluated).toMatchObject({ version: 2, testLoss: run.record.evaluation!.loss });
    await stream.close();
  });
});

describe("the checkpoint as safetensors", () => {
  it("holds every parameter under its layout name, with the model and the run's state", async () => {
    const sim = new Simulation();
    const run = blobsRun(sim, 4);
    sim.addWorker({ runId: run.id });
    sim.runUntil(() => run.record.state === "finished");
    const api = createApi(sim.coordinator, { adminToken: "t", startedAt: 0 });
    const url = `/api/runs/${run.id}/checkpoint?format=safetensors`;
    expect((await api.request(url)).status).toBe(401);
    const response = await api.request(url, { headers: { authorization: "Bearer t" } });
    expect(response.status).toBe(200);
    expect(response.headers.get("content-disposition")).toContain(`${run.id}-v4.safetensors`);
    const { tensors, metadata } = decodeSafetensors(new Uint8Array(await response.arrayBuffer()));
    expect(tensors.map((t) => [t.name, t.shape])).toEqual(
      run.layout.slots.map((s) => [s.name, s.shape]),
    );
    for (const [i, t] of tensors.entries()) {
      const slot = run.layout.slots[i]!;
      expect(t.data).toEqual(run.parameters.subarray(slot.offset, slot.offset + slot.size));
    }
    expect(metadata["pangea.version"]).toBe("4");
    expect(JSON.parse(metadata["pangea.model"]!)).toEqual(run.config.model);
    expect(JSON.parse(metadata["pangea.evaluation"]!).loss).toBe(run.record.evaluation!.loss);
    const bad = await api.request(`/api/runs/${run.id}/checkpoint?format=pickle`, {
      headers: { authorization: "Bearer t" },
    });
    expect(bad.status).toBe(400);
  });
});

describe("the workers table, a page at a time", () => {
  it("pages a crowd of sessions, connected first, with the whole crowd summarized", async () => {
    const sim = new Simulation();
    const run = blobsRun(sim, 100);
    const client = { kind: "test", adapter: "", softwareFallback: true, userAgent: "" };
    // 130 sessions: the first 30 leave, 5 of the rest are quarantined.
    for (let i = 0; i < 130; i++) run.join(`s${String(i).padStart(3, "0")}`, client, 0);
    for (let i = 0; i < 30; i++) run.leave(`s${String(i).padStart(3, "0")}`, 1);
    for (let i = 30; i < 35; i++) {
      for (let k = 0; k < run.config.quarantineAfter; k++)
        run.strikeSession(`s${String(i).padStart(3, "0")}`, "served bad bytes");
    }
    const api = createApi(sim.coordinator, { adminToken: "t", startedAt: 0 });
    const get = (query: string, token = "t") =>
      api.request(`/api/runs/${run.id}/workers?${query}`, {
        headers: token ? { authorization: `Bearer ${token}` } : {},
      });
    expect((await get("", "")).status).toBe(401);
    expect((await get("show=everyone")).status).toBe(400);

    const first = await (await get("limit=50")).json();
    expect(first.summary).toMatchObject({ total: 130, connected: 100, quarantined: 5 });
    expect(first).toMatchObject({ show: "all", matching: 130, offset: 0, limit: 50 });
    expect(first.workers).toHaveLength(50);
    const last = await (await get("offset=100&limit=50")).json();
    expect(last.workers).toHaveLength(30);
    // Connected sessions come first, so the last page holds the 30 that left.
    expect(last.workers.every((w: { connected: boolean }) => !w.connected)).toBe(true);
    // Pages do not overlap and together list every session once.
    const ids = new Set<string>();
    for (let offset = 0; offset < 130; offset += 50) {
      const page = await (await get(`offset=${offset}&limit=50`)).json();
      for (const w of page.workers) ids.add(w.id);
    }
    expect(ids.size).toBe(130);

    const quarantined = await (await get("show=quarantined")).json();
    expect(quarantined.matching).toBe(5);
    expect(quarantined.workers.map((w: { id: string }) => w.id).sort()).toEqual([
      "s030",
      "s031",
      "s032",
      "s033",
      "s034",
    ]);
    expect((await (await get("show=connected")).json()).matching).toBe(100);
    // A page is never larger than the cap, whatever it asks.
    expect((await (await get("limit=100000")).json()).limit).toBe(500);
  });
});
