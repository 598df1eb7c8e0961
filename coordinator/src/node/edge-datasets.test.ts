// A brought dataset on the real edge (`wrangler dev`, its R2 bucket and Durable Objects persisted
// in the data directory): uploaded, trained on, and still there after a SIGKILL, when the run's
// object starts again and must read its shard back from R2 before it resumes the run.
import { sha256Hex } from "@pangea/shared";
import { afterAll, beforeAll, expect, it } from "vitest";
import { linesShard, linesText, tinyGpt } from "../testing/lines.ts";
import { type ServerProcess, serverProcess } from "../testing/server-process.ts";

let server: ServerProcess;
beforeAll(async () => {
  server = await serverProcess({ backend: "edge" });
}, 120_000);
afterAll(() => server?.dispose());

const text = linesText;

it("keeps a brought dataset and the run on it across a SIGKILL of wrangler dev", async () => {
  const form = new FormData();
  form.set("name", "plays");
  form.set("kind", "text");
  form.set("file", new Blob([text]), "plays.txt");
  const uploaded = await fetch(`${server.url}/api/datasets`, {
    method: "POST",
    headers: { authorization: `Bearer ${server.token}` },
    body: form,
  });
  expect(uploaded.status).toBe(201);
  const created = await server.api("/api/runs", {
    method: "POST",
    body: JSON.stringify({ name: "on plays", model: tinyGpt, dataset: "plays", batchSize: 4 }),
  });
  expect(created.status).toBe(201);
  const { id } = (await created.json()) as { id: string };

  await server.kill();
  await server.start();
  const { datasets } = (await (await fetch(`${server.url}/api/datasets`)).json()) as {
    datasets: { name: string; sha256: string }[];
  };
  expect(datasets.map((d) => d.name)).toEqual(["mnist", "shakespeare", "plays"]);
  const status = (await (await server.api(`/api/runs/${id}`)).json()) as {
    config: { dataset: string };
  };
  expect(status.config.dataset).toBe("plays");
  const shard = await (await fetch(`${server.url}/api/runs/${id}/shard`)).arrayBuffer();
  expect(sha256Hex(new Uint8Array(shard))).toBe(sha256Hex(linesShard));
}, 180_000);
