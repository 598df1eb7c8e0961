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
