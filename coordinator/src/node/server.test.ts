// The Node server for real: HTTP on a port, WebSocket upgrades, SQLite on disk, and headless
// CLI workers in child processes training the MNIST MLP.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { request } from "node:http";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeMessage, type Tensor } from "@pangea/shared";
import { loadMnist } from "@pangea/shared/mnist";
import { evaluate } from "@pangea/shaders/reference";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { WebSocket } from "ws";
import { startServer } from "./server.ts";

const TOKEN = "test-admin-token";
let dir: string;
let server: Awaited<ReturnType<typeof startServer>>;

const api = (path: string, init: RequestInit & { admin?: boolean } = {}) =>
  fetch(`${server.url}${path}`, {
    ...init,
    headers: {
      ...(init.admin === false ? {} : { authorization: `Bearer ${TOKEN}` }),
      ...(init.body ? { "content-type": "application/json" } : {}),
    },
  });

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), "pangea-server-"));
  server = await startServer({
    dataDir: dir,
    port: 0,
    hostname: "127.0.0.1",
    adminToken: TOKEN,
    demo: false,
    log: () => {},
  });
});

afterAll(async () => {
  await server?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe("the Node server's HTTP API", () => {
  it("answers the health check", async () => {
    const res = await api("/health", { admin: false });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ ok: true, runs: 0 });
  });

  it("refuses admin actions without the token", async () => {
    const res = await api("/api/runs", { method: "POST", body: "{}", admin: false });
    expect(res.status).toBe(401);
    expect((await api("/api/runs/x/checkpoint", { admin: false })).status).toBe(401);
  });

  it("refuses a bad run config and says what is wrong", async () => {
    const res = await api("/api/runs", {
      method: "POST",
      body: JSON.stringify({ batchSize: 0, dataset: "imagenet", strategy: { kind: "gossip" } }),
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { problems: string[] };
    expect(body.problems.join("\n")).toMatch(/batchSize/);
    expect(body.problems.join("\n")).toMatch(/dataset/);
    expect(body.problems.join("\n")).toMatch(/strategy/);
    expect((await (await api("/api/runs")).json()) as { runs: unknown[] }).toEqual({ runs: [] });
  });

  it("refuses a WebSocket upgrade anywhere but /ws", async () => {
    const status = await new Promise<number>((resolve) => {
      const req = request(`${server.url}/elsewhere`, {
        headers: {
          connection: "Upgrade",
          upgrade: "websocket",
          "sec-websocket-version": "13",
          "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
        },
      });
      req.on("response", (res) => resolve(res.statusCode ?? 0));
      req.on("upgrade", () => resolve(101));
      req.end();
    });
    expect(status).toBe(404);
  });

  it("answers a malformed frame with an error and stays up", async () => {
    const ws = new WebSocket(`${server.url.replace("http", "ws")}/ws`);
    await new Promise((r) => ws.on("open", r));
    const reply = new Promise<Buffer>((r) => ws.once("message", r));
    const hostile = new Uint8Array(16);
    new DataView(hostile.buffer).setUint32(0, 0x7fffffff, true);
    ws.send(hostile);
    const decoded = decodeMessage(new Uint8Array(await reply));
    expect(
      decoded.ok && decoded.message.payload.type === "error" && decoded.message.payload.code,
    ).toBe("malformedFrame");
    ws.close();
    expect((await api("/health")).status).toBe(200);
  });
});

describe("training MNIST over the Node server", () => {
  it("8 headless CLI workers train the MNIST MLP to 95% evaluated test accuracy", async () => {
    const created = await api("/api/runs", {
      method: "POST",
      body: JSON.stringify({
        name: "integration",
        dataset: "mnist",
        strategy: { kind: "asynchronous", maxStaleness: 8 },
        evaluateEvery: 25,
        stop: { targetAccuracy: 0.95, epochs: 20 },
      }),
    });
    expect(created.status).toBe(201);
    const { id } = (await created.json()) as { id: string };
    // Two processes of four workers each: the CLI as a contributor would run it.
    const cli = join(import.meta.dirname, "cli.ts");
    const children = [0, 1].map(() =>
      spawn(
        process.execPath,
        ["--import", "tsx", cli, "worker", server.url, "--run", id, "--count", "4"],
        {
          stdio: ["ignore", "pipe", "pipe"],
        },
      ),
    );
    const exits = children.map(
      (c) => new Promise<number>((r) => c.on("exit", (code) => r(code ?? -1))),
    );
    expect(await Promise.all(exits)).toEqual([0, 0]);
    type Status = {
      state: string;
      version: number;
      evaluation: { accuracy: number; version: number };
      workers: Array<{ updatesAccepted: number }>;
    };
    let status = (await (await api(`/api/runs/${id}`)).json()) as Status;
    // The evaluation that met the target ran beside training: the version the run ended at is
    // evaluated after it (a worker thread; bounded wait).
    for (let i = 0; i < 120 && status.evaluation.version !== status.version; i++) {
      await new Promise((r) => setTimeout(r, 250));
      status = (await (await api(`/api/runs/${id}`)).json()) as Status;
    }
    expect(status.state).toBe("finished");
    expect(status.evaluation.version).toBe(status.version);
    const evaluations = (
      (await (await api(`/api/runs/${id}/metrics`)).json()) as {
        points: { testAccuracy?: number }[];
      }
    ).points.flatMap((p) => (p.testAccuracy === undefined ? [] : [p.testAccuracy]));
    expect(Math.max(...evaluations)).toBeGreaterThanOrEqual(0.95);
    expect(status.workers).toHaveLength(8);
    for (const w of status.workers) expect(w.updatesAccepted).toBeGreaterThan(0);

    // The checkpoint is a Cap'n Proto message holding the model and parameters: evaluated with
    // the CPU reference, it has the accuracy the coordinator reported.
    const res = await api(`/api/runs/${id}/checkpoint`);
    expect(res.headers.get("content-type")).toBe("application/x-capnp");
    const decoded = decodeMessage(new Uint8Array(await res.arrayBuffer()));
    if (!decoded.ok || decoded.message.payload.type !== "welcome")
      throw new Error("not a checkpoint");
    const { model, parameters, version } = decoded.message.payload;
    expect(version).toBe(status.version);
    const flat = new Float32Array(
      parameters.reduce((n: number, t: Tensor) => n + t.data.length, 0),
    );
    let at = 0;
    for (const t of parameters) {
      flat.set(t.data as Float32Array, at);
      at += t.data.length;
    }
    expect(evaluate(model, flat, loadMnist().test).accuracy).toBeCloseTo(
      status.evaluation.accuracy,
      10,
    );

    const metrics = await (await api("/metrics", { admin: false })).text();
    expect(metrics).toContain(`pangea_version{run="${id}"} ${status.version}`);
    const history = (await (await api(`/api/runs/${id}/metrics`)).json()) as {
      points: { testLoss?: number }[];
    };
    // A point per committed version, and one per evaluation beside it.
    const commits = history.points.filter((p) => p.testLoss === undefined);
    expect(commits.length).toBe(status.version);
    expect(history.points.length).toBeGreaterThan(commits.length);
  }, 600_000);

  it("pauses, resumes and stops a run", async () => {
    const { id } = (await (
      await api("/api/runs", { method: "POST", body: JSON.stringify({ dataset: "mnist" }) })
    ).json()) as { id: string };
    const state = async (action: string) =>
      (
        (await (await api(`/api/runs/${id}/${action}`, { method: "POST" })).json()) as {
          state: string;
        }
      ).state;
    expect(await state("pause")).toBe("paused");
    expect(await state("resume")).toBe("running");
    expect(await state("stop")).toBe("stopped");
    expect((await api(`/api/runs/${id}/resume`, { method: "POST" })).status).toBe(409);
  });
});
