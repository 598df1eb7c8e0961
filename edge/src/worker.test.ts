// The edge's Worker routes, inside workerd: the admin check, a bad config refused with the
// core's reasons (and nothing created), a run created in its own Durable Object and listed
// through the index, and its own routes answered by its object; brought datasets in R2.
import { linesShard, linesText, tinyGpt } from "@pangea/coordinator/lines";
import { sha256Hex } from "@pangea/shared";
import { env, SELF } from "cloudflare:test";
import { describe, expect, it } from "vitest";
import { EDGE_DATASET_MAX_BYTES } from "./datasets.ts";
import { type LimitObject, limitsFor, STREAMS_PER_ADDRESS } from "./limits.ts";

it("guards, creates, lists and refuses runs like the Node server", async () => {
  const body = JSON.stringify({ name: "edge", dataset: "blobs", stop: { versions: 5 } });
  const anonymous = await SELF.fetch("https://edge/api/runs", { method: "POST", body });
  expect(anonymous.status).toBe(401);

  const wrong = await SELF.fetch("https://edge/api/runs", {
    method: "POST",
    body,
    headers: { authorization: "Bearer not-it" },
  });
  expect(wrong.status).toBe(401);

  expect(await (await SELF.fetch("https://edge/health")).json()).toEqual({ ok: true, edge: true });
  expect(await (await SELF.fetch("https://edge/api/runs")).json()).toEqual({ runs: [] });
  expect((await SELF.fetch("https://edge/ws")).status).toBe(503);
  // A page elsewhere may not make its visitors' tabs join (socketOriginAllowed).
  const foreign = await SELF.fetch("https://edge/ws", {
    headers: { origin: "https://evil.example" },
  });
  expect(foreign.status).toBe(403);
  const own = await SELF.fetch("https://edge/ws", { headers: { origin: "https://edge" } });
  expect(own.status).toBe(503);

  const admin = { authorization: "Bearer workerd-test-token" };
  const bad = await SELF.fetch("https://edge/api/runs", {
    method: "POST",
    headers: admin,
    body: JSON.stringify({ dataset: "blobs", batchSize: -1 }),
  });
  expect(bad.status).toBe(400);
  expect(((await bad.json()) as { problems: string[] }).problems.join()).toContain("batchSize");
  expect(await (await SELF.fetch("https://edge/api/runs")).json()).toEqual({ runs: [] });

  const created = await SELF.fetch("https://edge/api/runs", {
    method: "POST",
    headers: admin,
    body,
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };
  const { runs } = (await (await SELF.fetch("https://edge/api/runs")).json()) as {
    runs: { id: string; name: string; state: string }[];
  };
  expect(runs.map((r) => [r.id, r.name, r.state])).toEqual([[id, "edge", "running"]]);
  // The run's own routes are its object's: status, and pause with the token.
  const status = (await (await SELF.fetch(`https://edge/api/runs/${id}`)).json()) as { id: string };
  expect(status.id).toBe(id);
  const paused = await SELF.fetch(`https://edge/api/runs/${id}/pause`, {
    method: "POST",
    headers: admin,
  });
  expect(((await paused.json()) as { state: string }).state).toBe("paused");
});

it("creates MNIST runs from the static shard, and refuses what an isolate could not hold", async () => {
  const admin = { authorization: "Bearer workerd-test-token" };
  // MNIST: the run object fetched the shard from the static assets (the built web UI).
  const mnist = await SELF.fetch("https://edge/api/runs", {
    method: "POST",
    headers: admin,
    body: JSON.stringify({ name: "digits", dataset: "mnist", start: false }),
  });
  expect(mnist.status).toBe(201);
  const { id } = (await mnist.json()) as { id: string };
  const status = (await (await SELF.fetch(`https://edge/api/runs/${id}`)).json()) as {
    batchesPerEpoch: number;
  };
  expect(status.batchesPerEpoch).toBe(Math.ceil(9000 / 64));

  const list = async () =>
    ((await (await SELF.fetch("https://edge/api/runs")).json()) as { runs: { id: string }[] }).runs
      .map((r) => r.id)
      .sort();
  const before = await list();
  expect(before).toContain(id);

  // 784-4000-10 has 3,182,010 parameters: its 12.7 MB frames fit a Durable Object's 32 MiB
  // messages, but the run would hold 178 MB, more than an isolate has.
  const big = await SELF.fetch("https://edge/api/runs", {
    method: "POST",
    headers: admin,
    body: JSON.stringify({
      dataset: "mnist",
      model: {
        name: "wide",
        inputShape: [784],
        loss: "softmaxCrossEntropy",
        seed: 1,
        layers: [
          { kind: "dense", inputs: 784, outputs: 4000, activation: "relu" },
          { kind: "dense", inputs: 4000, outputs: 10, activation: "none" },
        ],
      },
    }),
  });
  expect(big.status).toBe(400);
  expect(((await big.json()) as { problems: string[] }).problems).toEqual([
    "model: the run would hold about 178.1 MB (parameters, optimizer state and the updates a version gathers), over this coordinator's 48.0 MB per run",
  ]);
  // Refused, so nothing was created or listed.
  expect(await list()).toEqual(before);

  // /metrics: every run object's series, merged.
  const metrics = await (await SELF.fetch("https://edge/metrics")).text();
  for (const run of before) expect(metrics).toContain(`pangea_version{run="${run}"} 0`);
  expect(metrics.match(/^# TYPE pangea_version gauge$/gm)).toHaveLength(1);
});

describe("datasets people bring, kept in R2", () => {
  const admin = { authorization: "Bearer workerd-test-token" };
  const text = linesText;
  function upload(fields: Record<string, string | Uint8Array>, headers: HeadersInit = admin) {
    const form = new FormData();
    for (const [k, v] of Object.entries(fields))
      if (typeof v === "string") form.set(k, v);
      else form.set(k, new Blob([v as Uint8Array<ArrayBuffer>]), `${k}.bin`);
    return SELF.fetch("https://edge/api/datasets", { method: "POST", headers, body: form });
  }
  const bucket = (env as unknown as { DATASETS: R2Bucket }).DATASETS;
  const keys = async () => (await bucket.list()).objects.map((o) => o.key);
  const listed = async () =>
    (
      (await (await SELF.fetch("https://edge/api/datasets")).json()) as {
        datasets: { name: string; kind: string; builtIn: boolean }[];
      }
    ).datasets.map((d) => [d.name, d.kind, d.builtIn]);

  it("stores an upload as one object, lists it, and trains a run on it", async () => {
    expect(await listed()).toEqual([
      ["mnist", "images", true],
      ["shakespeare", "text", true],
    ]);
    const file = new TextEncoder().encode(text);
    expect((await upload({ name: "plays", kind: "text", file }, {})).status).toBe(401);
    const res = await upload({ name: "plays", kind: "text", file });
    expect(res.status).toBe(201);
    const record = (await res.json()) as { sha256: string; bytes: number };
    expect(record).toMatchObject({ bytes: linesShard.byteLength, sha256: sha256Hex(linesShard) });
    // The shard and its record, in one object.
    const object = await bucket.get("datasets/plays");
    expect(new Uint8Array(await object!.arrayBuffer())).toEqual(linesShard);
    expect(JSON.parse(object!.customMetadata!.record!)).toEqual(record);
    expect(await listed()).toEqual([
      ["mnist", "images", true],
      ["shakespeare", "text", true],
      ["plays", "text", false],
    ]);

    // The run's own object reads the shard from R2 and serves it to contributors.
    const created = await SELF.fetch("https://edge/api/runs", {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: JSON.stringify({ name: "on plays", model: tinyGpt, dataset: "plays", batchSize: 4 }),
    });
    expect(created.status).toBe(201);
    const run = (await created.json()) as { id: string; dataset: string };
    const shard = await (await SELF.fetch(`https://edge/api/runs/${run.id}/shard`)).arrayBuffer();
    expect(sha256Hex(new Uint8Array(shard))).toBe(record.sha256);

    // A dataset that is not in the bucket is refused as unknown, and nothing is created.
    const unknown = await SELF.fetch("https://edge/api/runs", {
      method: "POST",
      headers: { ...admin, "content-type": "application/json" },
      body: JSON.stringify({ model: tinyGpt, dataset: "missing" }),
    });
    expect(unknown.status).toBe(400);
    expect(JSON.stringify(await unknown.json())).toMatch(/missing/);
  });

  it("refuses bad uploads with the Node server's reasons and leaves the bucket as it was", async () => {
    await upload({ name: "plays", kind: "text", file: new TextEncoder().encode(text) });
    const before = await keys();
    const labels = new Uint8Array(50).map((_, i) => i % 5);
    const cases: [Record<string, string | Uint8Array>, number, RegExp][] = [
      [{ name: "plays", kind: "text", file: new TextEncoder().encode(text) }, 400, /exists/],
      [{ name: "Bad Name", kind: "text", file: new TextEncoder().encode(text) }, 400, /name/],
      [{ name: "short", kind: "text", file: new TextEncoder().encode("hi") }, 400, /1000/],
      [{ name: "magic", kind: "images", images: new Uint8Array(64), labels }, 400, /magic/],
      [
        { name: "big", kind: "text", file: new Uint8Array(EDGE_DATASET_MAX_BYTES + 1).fill(97) },
        413,
        new RegExp(`limit of ${EDGE_DATASET_MAX_BYTES} bytes`),
      ],
    ];
    for (const [fields, status, message] of cases) {
      const res = await upload(fields);
      expect(res.status, String(fields.name)).toBe(status);
      expect(JSON.stringify(await res.json())).toMatch(message);
    }
    expect(await keys()).toEqual(before);
  });
});

it("sends the security headers, keeps CORS closed, and limits wrong admin tokens per address", async () => {
  const res = await SELF.fetch("https://edge/api/runs", {
    headers: { origin: "https://evil.example" },
  });
  expect(res.headers.get("content-security-policy")).toContain("frame-ancestors 'none'");
  expect(res.headers.get("x-frame-options")).toBe("DENY");
  expect(res.headers.get("x-content-type-options")).toBe("nosniff");
  expect(res.headers.get("access-control-allow-origin")).toBeNull();
  const guess = { authorization: "Bearer guess", "cf-connecting-ip": "203.0.113.9" };
  for (let i = 0; i < 10; i++)
    expect((await SELF.fetch("https://edge/api/admin/check", { headers: guess })).status).toBe(401);
  const locked = await SELF.fetch("https://edge/api/admin/check", {
    headers: { authorization: "Bearer workerd-test-token", "cf-connecting-ip": "203.0.113.9" },
  });
  expect(locked.status).toBe(429);
  expect(Number(locked.headers.get("retry-after"))).toBeGreaterThan(0);
  const other = await SELF.fetch("https://edge/api/admin/check", {
    headers: { authorization: "Bearer workerd-test-token", "cf-connecting-ip": "203.0.113.10" },
  });
  expect(other.status).toBe(200);
  // The count is not this isolate's: the address's limit object, which every isolate asks,
  // holds it.
  const limits = (env as unknown as { LIMITS: DurableObjectNamespace<LimitObject> }).LIMITS;
  expect(await limitsFor(limits, "203.0.113.9").admin("203.0.113.9", true)).toBeGreaterThan(0);
  expect(await limitsFor(limits, "203.0.113.10").admin("203.0.113.10", true)).toBe(0);
});

it("bounds one address's open event streams across the run list and every run's object", async () => {
  const admin = { authorization: "Bearer workerd-test-token" };
  const created = await SELF.fetch("https://edge/api/runs", {
    method: "POST",
    headers: { ...admin, "content-type": "application/json" },
    body: JSON.stringify({ name: "watched", dataset: "blobs" }),
  });
  const { id } = (await created.json()) as { id: string };
  const from = { "cf-connecting-ip": "198.51.100.7" };
  const open = (path: string, headers: Record<string, string> = from) =>
    SELF.fetch(`https://edge${path}`, { headers });
  const streams: Response[] = [];
  for (let i = 0; i < STREAMS_PER_ADDRESS; i++) {
    const res = await open(i % 2 === 0 ? "/api/events" : `/api/runs/${id}/events`);
    expect(res.status, `stream ${i}`).toBe(200);
    streams.push(res);
  }
  // Over the bound, on either route, before the run's object is asked.
  expect((await open(`/api/runs/${id}/events`)).status).toBe(429);
  expect((await open("/api/events")).status).toBe(429);
  expect((await open("/api/events", { "cf-connecting-ip": "198.51.100.8" })).status).toBe(200);
  // Each stream ends after PANGEA_STREAM_MAX_MS (3 s here; EventSource reconnects) and gives
  // its place back.
  const first = await streams[0]!.text();
  expect(first).toContain("event: runs");
  const again = await open(`/api/runs/${id}/events`);
  expect(again.status).toBe(200);
  for (const s of [...streams.slice(1), again]) await s.body?.cancel();
});
