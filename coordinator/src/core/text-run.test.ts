// Runs whose batches travel by reference, and a GPT trained across workers on text: in Node and
// inside workerd, with the real codec, the real core and the CPU reference as the workers.
import {
  batchAt,
  decodeMessage,
  decodeShard,
  encodeMessage,
  gptSpec,
  type Payload,
  sha256Hex,
} from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { lines, linesShard, linesVocabulary, tinyGpt } from "../testing/lines.ts";
import { Simulation } from "../testing/simulation.ts";
import { withStore } from "../testing/with-store.ts";
import { Coordinator } from "./coordinator.ts";
import { sampleOffset } from "./datasets.ts";
import type { Peer, Store } from "./ports.ts";
import type { RunConfigError, RunConfigInput } from "./run-config.ts";

const shard = linesShard;
const vocabulary = lines;
const vocabSize = linesVocabulary;

/** A peer that keeps what the coordinator sends it. */
function recorder(): Peer & { payloads: Payload[] } {
  const payloads: Payload[] = [];
  return {
    payloads,
    send(frame) {
      const d = decodeMessage(frame);
      if (d.ok) payloads.push(d.message.payload);
    },
    close() {},
    bufferedAmount: () => 0,
    address: "192.0.2.1",
  };
}

describe("data by reference", () => {
  it("names the shard in the welcome and each batch by offsets; a claim of another batch is refused", () =>
    withStore((store) => {
      const sim = new Simulation(store);
      const run = sim.coordinator.createRun({
        name: "mnist by reference",
        dataset: "mnist",
        batchSize: 16,
      });
      const peer = recorder();
      const c = sim.coordinator;
      c.connect(peer);
      const frame = (payload: Payload, id: string) =>
        encodeMessage({
          messageId: id,
          sender: "",
          recipient: "coordinator",
          timestamp: 0,
          payload,
        });
      c.receive(
        peer,
        frame(
          {
            type: "join",
            runId: run.id,
            sessionToken: "",
            client: { kind: "headless", adapter: "", softwareFallback: true, userAgent: "" },
            encodings: ["fp32"],
            protocolVersion: 2,
          },
          "j",
        ),
      );
      const welcome = peer.payloads.find((p) => p.type === "welcome");
      if (welcome?.type !== "welcome") throw new Error("no welcome");
      expect(welcome.data).toEqual({
        name: "mnist",
        url: `/api/runs/${run.id}/shard`,
        sha256: sha256Hex(run.data.bytes),
        bytes: run.data.bytes.byteLength,
      });
      c.receive(peer, frame({ type: "leaseRequest", maxBatches: 1 }, "l"));
      const lease = peer.payloads.find((p) => p.type === "lease");
      if (lease?.type !== "lease") throw new Error("no lease");
      // No samples on the wire: 16 offsets, where the batch's images are in the shard.
      expect(lease.batch.samples).toBeUndefined();
      expect(lease.batch.offsets).toHaveLength(16);
      const batch = batchAt(
        decodeShard(run.data.bytes, "mnist"),
        lease.batch.offsets!,
        run.config.model,
      );
      expect(batch.inputs).toHaveLength(16 * 784);
      // An update for that lease that says it trained on another batch: refused, nothing taken.
      const slots = run.layout.slots;
      c.receive(
        peer,
        frame(
          {
            type: "gradientUpdate",
            gradientId: "g",
            gradients: slots.map((s) => ({
              name: s.name,
              shape: s.shape,
              dtype: "float32",
              data: new Float32Array(s.size),
            })),
            loss: 1,
            timestamp: 0,
            nodeId: "",
            batchId: "0:999999",
            leaseId: lease.leaseId,
            baseVersion: lease.baseVersion,
            sampleCount: 16,
            encoding: "fp32",
            kind: "gradient",
            innerSteps: 1,
          },
          "u",
        ),
      );
      const refusal = peer.payloads.findLast((p) => p.type === "error");
      expect(refusal).toMatchObject({ type: "error", code: "claimMismatch", ref: "u" });
      expect(run.record.counters.updatesAccepted).toBe(0);
      expect(run.record.counters.updatesRefused.claimMismatch).toBe(1);
    }));

  it("stops a contributor whose copy of the shard does not match the hash, saying so", () =>
    withStore((store) => {
      const sim = new Simulation(store);
      const run = sim.coordinator.createRun({ name: "blobs", dataset: "blobs" });
      const errors: unknown[] = [];
      const w = sim.addWorker({
        runId: run.id,
        onError: (e) => errors.push(e),
        loadShard: () => {
          const damaged = run.data.bytes.slice();
          damaged[damaged.length - 1]! ^= 1;
          return damaged;
        },
      });
      sim.runUntil(() => w.finished, 10_000);
      expect(w.finished).toBe(true);
      expect(String(errors[0])).toMatch(/SHA-256 .* the coordinator named/);
      expect(w.updatesSent).toBe(0);
    }));

  it("tiles text into windows of the context, shifted each epoch, inside the training split", () =>
    withStore((store) => {
      const sim = new Simulation(store, { datasets: { lines: () => shard } });
      const run = sim.coordinator.createRun({ name: "t", model: tinyGpt, dataset: "lines" });
      const n = vocabulary.kind === "text" ? vocabulary.corpus.train.length : 0;
      expect(run.data.trainCount).toBe(Math.floor((n - 1) / 16));
      for (const epoch of [0, 1, 2])
        for (let i = 0; i < run.data.trainCount; i++) {
          const at = sampleOffset(run.data, tinyGpt, i, epoch);
          expect(at + 16).toBeLessThan(n);
        }
      expect(sampleOffset(run.data, tinyGpt, 3, 0)).not.toBe(sampleOffset(run.data, tinyGpt, 3, 1));
    }));

  it("refuses a dataset that does not fit the model, one sentence per problem", () =>
    withStore((store) => {
      const c = new Coordinator(store, { now: () => 0 }, { datasets: { lines: () => shard } });
      const refused = (input: Parameters<Coordinator["createRun"]>[0]) => {
        try {
          c.createRun(input);
        } catch (e) {
          return (e as RunConfigError).problems;
        }
        return [];
      };
      expect(refused({ model: tinyGpt, dataset: "blobs" })).toEqual([
        "model: blobs is an image set; a transformer needs a text dataset",
      ]);
      expect(refused({ dataset: "lines" })).toEqual([
        "model: lines is text; it needs a transformer model",
      ]);
      const small = gptSpec({ vocabSize: 8, contextLength: 16, layers: 1, heads: 2, width: 16 });
      expect(refused({ model: small, dataset: "lines" })).toEqual([
        `model: lines has ${vocabSize} characters; the model's vocabulary has 8`,
      ]);
      expect(c.runs.size).toBe(0);
    }));
});

/** The tiny GPT on the lines, in a simulation over `store`, with the run's own settings. */
function tinyGptRun(store: Store, config: RunConfigInput) {
  const sim = new Simulation(store, { datasets: { lines: () => shard } });
  const run = sim.coordinator.createRun({
    name: "tiny gpt",
    model: tinyGpt,
    dataset: "lines",
    batchSize: 8,
    ...config,
  });
  return { sim, run };
}

describe("a GPT across workers", () => {
  it("trains with DiLoCo (AdamW inner steps, Nesterov outer momentum) and samples text", () =>
    withStore((store) => {
      const { sim, run } = tinyGptRun(store, {
        strategy: { kind: "localSgd", innerSteps: 4, targetUpdates: 3, stragglerMs: 5000 },
        local: { kind: "adamw", learningRate: 1e-2 },
        evaluateEvery: 10,
        stop: { versions: 30 },
      });
      expect(run.config.optimizer).toMatchObject({
        kind: "sgd",
        learningRate: 0.7,
        momentum: 0.9,
        nesterov: true,
      });
      // A lease names a batch per inner step (4 × 8 windows), so an epoch is the data once.
      expect(run.scheduler.batchCount).toBe(Math.ceil(run.data.trainCount / 32));
      for (let i = 0; i < 3; i++) sim.addWorker({ runId: run.id });
      sim.runUntil(() => run.record.state === "finished");
      // 30 versions of 3 leases of 32 windows (an epoch's last lease is short).
      expect(run.record.counters.samples).toBeGreaterThan(0.95 * 30 * 3 * 32);
      expect(run.record.counters.samples).toBeLessThanOrEqual(30 * 3 * 32);
      const points = sim.store.metrics(run.id).filter((p) => p.testLoss !== undefined);
      // From ln(vocabulary) at the start to well below it after 30 versions of 3 × 4 steps.
      // Every 10 versions, and at each epoch's end.
      expect(points.map((p) => p.version)).toEqual(expect.arrayContaining([10, 20, 30]));
      expect(points.at(-1)!.testLoss!).toBeLessThan(points[0]!.testLoss!);
      expect(run.record.evaluation!.loss).toBeLessThan(Math.log(vocabSize) - 1);
      expect(run.record.evaluation!.version).toBe(30);
      // The sample is text from the vocabulary, after the prompt's stand-in.
      expect(run.record.evaluation!.sample!.length).toBeGreaterThan(100);
      expect(run.record.evaluation!.measured).toMatch(/32 held-out windows of 16/);
    }));

  it("evaluates the version a run is stopped at, so its checkpoint has its own loss", () =>
    withStore((store) => {
      const { sim, run } = tinyGptRun(store, {
        strategy: { kind: "synchronous", targetUpdates: 2, stragglerMs: 5000 },
        evaluateEvery: 50,
        stop: { versions: 1000 },
      });
      for (let i = 0; i < 2; i++) sim.addWorker({ runId: run.id });
      sim.runUntil(() => run.record.version >= 7);
      expect(run.record.evaluation?.version ?? 0).toBeLessThan(7);
      sim.coordinator.setRunState(run.id, "stopped");
      sim.runUntil(() => run.record.evaluation?.version === run.record.version);
      expect(run.record.state).toBe("stopped");
      expect(sim.store.metrics(run.id).at(-1)!.testLoss).toBe(run.record.evaluation!.loss);
    }));
});
