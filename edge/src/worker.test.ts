// The edge's Worker routes, inside workerd: the admin check, a bad config refused with the
// core's reasons (and nothing created), a run created in its own Durable Object and listed
// through the index, and its own routes answered by its object.
import { SELF } from "cloudflare:test";
import { expect, it } from "vitest";

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

it("lists the built-in datasets and says why it keeps no brought ones", async () => {
  const { datasets } = (await (await SELF.fetch("https://edge/api/datasets")).json()) as {
    datasets: { name: string; kind: string; builtIn: boolean }[];
  };
  expect(datasets.map((d) => [d.name, d.kind, d.builtIn])).toEqual([
    ["mnist", "images", true],
    ["shakespeare", "text", true],
  ]);
  const form = () => {
    const f = new FormData();
    f.set("name", "plays");
    f.set("kind", "text");
    f.set("file", new Blob(["to be or not to be, that is the question.\n".repeat(40)]), "p.txt");
    return f;
  };
  const anonymous = await SELF.fetch("https://edge/api/datasets", { method: "POST", body: form() });
  expect(anonymous.status).toBe(401);
  const upload = await SELF.fetch("https://edge/api/datasets", {
    method: "POST",
    headers: { authorization: "Bearer workerd-test-token" },
    body: form(),
  });
  expect(upload.status).toBe(400);
  expect(((await upload.json()) as { problems: string[] }).problems[0]).toMatch(/need R2/);
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
});
