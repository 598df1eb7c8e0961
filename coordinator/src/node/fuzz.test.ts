// Black box: the running coordinator fuzzed over 16 connections (testing/fuzz-client.ts:
// random, mutated from real traffic, and well-formed but hostile) while three honest CLI workers
// train a run: 100,000 frames against `pangea serve`, 20,000 against `wrangler dev` (each frame
// there is a Durable Object event). The coordinator must not crash, must accept none of the
// fuzzers' frames, must keep its memory bounded (Node), and the run must reach its stop with
// parameters that stay finite. PANGEA_FUZZ_FRAMES sets Node's count (10⁶ for the long run).
import { spawn } from "node:child_process";
import { join } from "node:path";
import { decodeMessage, mlpSpec, type Tensor } from "@pangea/shared";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { fuzzCoordinator } from "../testing/fuzz-client.ts";
import { type Backend, type ServerProcess, serverProcess } from "../testing/server-process.ts";

const NODE_FRAMES = Number(process.env.PANGEA_FUZZ_FRAMES ?? 100_000);

describe.each([
  ["node", NODE_FRAMES],
  ["edge", 20_000],
] as Array<[Backend, number]>)("the %s coordinator under a frame fuzzer", (backend, FRAMES) => {
  let server: ServerProcess;
  beforeAll(async () => {
    server = await serverProcess({ demo: false, backend });
  }, 120_000);
  afterAll(async () => {
    await server?.dispose();
  });
  // On the edge the isolate runs in wrangler's workerd child, which this does not measure.
  const rssMiB = () => (backend === "node" ? server.rssMiB() : 0);

  it(`refuses ${FRAMES} hostile frames, and keeps training honest workers to the stop`, async () => {
    const model = mlpSpec([16, 24, 4], { seed: 3 });
    const versions = Math.max(1500, Math.round(FRAMES / 40));
    const created = await server.api("/api/runs", {
      method: "POST",
      body: JSON.stringify({
        name: "fuzzed",
        model,
        dataset: "blobs",
        batchSize: 32,
        strategy: { kind: "asynchronous", maxStaleness: 4, buffer: 1 },
        optimizer: { learningRate: 3e-3 },
        evaluateEvery: 50,
        // Long enough to train through the whole fuzz.
        stop: { versions },
        // The fuzzers' sessions gather strikes: a quarantine must not end the fuzz early.
        quarantineAfter: 1_000_000,
      }),
    });
    expect(created.status).toBe(201);
    const { id: runId } = (await created.json()) as { id: string };
    const honest = spawn(
      process.execPath,
      [
        "--import",
        "tsx",
        join(import.meta.dirname, "cli.ts"),
        "worker",
        server.url,
        "--run",
        runId,
        "--count",
        "3",
      ],
      { stdio: "ignore" },
    );
    const honestExit = new Promise<number>((r) => honest.on("exit", (code) => r(code ?? -1)));
    const rssBefore = rssMiB();
    const report = await fuzzCoordinator({
      url: `${server.url.replace("http", "ws")}/ws?run=${runId}`,
      runId,
      model,
      frames: FRAMES,
      connections: 16,
      seed: 20261201,
      addresses: Array.from({ length: 8 }, (_, i) => `127.0.0.${20 + i}`),
    });
    const rssAfter = rssMiB();
    const during = (await (await server.api(`/api/runs/${runId}`)).json()) as { state: string };
    console.log(
      `fuzz (${backend}): ${report.frames} frames (${(report.bytes / 2 ** 20).toFixed(1)} MiB) in ${report.seconds.toFixed(1)} s, ${report.closes} connections closed by the coordinator; replies`,
      report.replies,
      "; close codes",
      report.closeCodes,
      `; coordinator RSS ${rssBefore.toFixed(0)} → ${rssAfter.toFixed(0)} MiB`,
    );
    expect(report.frames).toBeGreaterThanOrEqual(FRAMES);
    expect(report.violations).toEqual([]);
    // It read them and answered by code, most of all for what does not decode.
    const replies = Object.values(report.replies).reduce((a, b) => a + b, 0);
    expect(replies).toBeGreaterThan(FRAMES / 2);
    expect(report.replies["error:malformedFrame"] ?? 0).toBeGreaterThan(FRAMES / 4);
    expect(report.replies["error:unknownLease"] ?? 0).toBeGreaterThan(0);
    // The run was still training when the fuzz ended, and the process is up.
    expect(during.state).toBe("running");
    expect(server.process!.exitCode).toBeNull();
    expect(server.process!.signalCode).toBeNull();
    expect((await fetch(`${server.url}/health`)).status).toBe(200);
    expect(rssAfter - rssBefore).toBeLessThan(200);

    expect(await honestExit).toBe(0);
    const status = (await (await server.api(`/api/runs/${runId}`)).json()) as {
      state: string;
      version: number;
      evaluation: { accuracy: number };
    };
    expect(status.state).toBe("finished");
    expect(status.version).toBe(versions);
    expect(status.evaluation.accuracy).toBeGreaterThanOrEqual(0.9);
    const checkpoint = await server.api(`/api/runs/${runId}/checkpoint`);
    const decoded = decodeMessage(new Uint8Array(await checkpoint.arrayBuffer()));
    const tensors = (
      decoded.ok && decoded.message.payload.type === "welcome"
        ? decoded.message.payload.parameters
        : []
    ) as Tensor[];
    expect(tensors.length).toBeGreaterThan(0);
    for (const t of tensors) for (const v of t.data) expect(Number.isFinite(v)).toBe(true);
  }, 600_000);
});
