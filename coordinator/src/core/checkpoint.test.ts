// Runs created from a checkpoint (a fine-tune, or a run resumed elsewhere): from safetensors or
// the Cap'n Proto form, through the HTTP API as a multipart form; a checkpoint that does not fit
// the model is refused with one sentence per mismatch and creates nothing. Node and workerd.
import { decodeSafetensors, encodeSafetensors, gptSpec } from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { linesRun, linesVocabulary, tinyGpt } from "../testing/lines.ts";
import { createApi } from "./http-api.ts";

const TOKEN = "t";

function trained() {
  const { sim, run } = linesRun({ name: "source", stop: { versions: 3 } });
  for (let i = 0; i < 2; i++) sim.addWorker({ runId: run.id });
  sim.runUntil(() => run.record.state === "finished");
  return { sim, run, api: createApi(sim.coordinator, { adminToken: TOKEN, startedAt: 0 }) };
}

async function checkpointOf(
  api: ReturnType<typeof createApi>,
  runId: string,
  format: string,
): Promise<Uint8Array> {
  const res = await api.request(`/api/runs/${runId}/checkpoint?format=${format}`, {
    headers: { authorization: `Bearer ${TOKEN}` },
  });
  expect(res.status).toBe(200);
  return new Uint8Array(await res.arrayBuffer());
}

function createFrom(
  api: ReturnType<typeof createApi>,
  config: Record<string, unknown>,
  checkpoint?: Uint8Array,
) {
  const form = new FormData();
  form.set("config", JSON.stringify(config));
  if (checkpoint)
    form.set("checkpoint", new Blob([checkpoint as Uint8Array<ArrayBuffer>]), "c.safetensors");
  return api.request("/api/runs", {
    method: "POST",
    headers: { authorization: `Bearer ${TOKEN}` },
    body: form,
  });
}

describe("a run created from a checkpoint", () => {
  it("starts from its parameters, in either format, with the checkpoint's model by default", async () => {
    const { sim, run, api } = trained();
    expect(run.record.version).toBe(3);
    for (const format of ["safetensors", "capnp"]) {
      const res = await createFrom(
        api,
        { name: `from ${format}`, dataset: "lines", start: false },
        await checkpointOf(api, run.id, format),
      );
      expect(res.status).toBe(201);
      const created = sim.coordinator.runs.get(((await res.json()) as { id: string }).id)!;
      expect(created.config.model).toEqual(tinyGpt);
      expect(created.record.version).toBe(0);
      // Bit for bit: the trained run's parameters, not a fresh initialization.
      expect([...created.parameters]).toEqual([...run.parameters]);
    }
  });

  it("refuses a checkpoint that does not fit, one sentence per mismatch, and creates nothing", async () => {
    const { sim, run, api } = trained();
    const runs = sim.coordinator.runs.size;
    const file = decodeSafetensors(await checkpointOf(api, run.id, "safetensors"));
    // A wider model: every tensor's shape differs.
    const wider = gptSpec(
      { vocabSize: linesVocabulary, contextLength: 16, layers: 1, heads: 2, width: 32 },
      { seed: 5 },
    );
    const res = await createFrom(
      api,
      { dataset: "lines", model: wider },
      encodeSafetensors(file.tensors),
    );
    expect(res.status).toBe(400);
    const problems = ((await res.json()) as { problems: string[] }).problems;
    expect(problems).toContain(
      "checkpoint: wte.weight is [" +
        `${linesVocabulary},16]; the model's is [${linesVocabulary},32]`,
    );
    expect(problems.length).toBe(file.tensors.length);

    // One tensor missing, one the model has not, one poisoned with NaN.
    const edited = file.tensors.filter((t) => t.name !== "lnf.bias");
    edited.push({ name: "lm_head.weight", shape: [2], data: new Float32Array(2) });
    const poisoned = edited.find((t) => t.name === "wpe.weight")!;
    poisoned.data = poisoned.data.slice();
    poisoned.data[3] = Number.NaN;
    const res2 = await createFrom(
      api,
      { dataset: "lines", model: tinyGpt },
      encodeSafetensors(edited),
    );
    expect(((await res2.json()) as { problems: string[] }).problems).toEqual([
      "checkpoint: wpe.weight holds a value that is not finite (NaN)",
      `checkpoint: it has no lnf.bias (the model's is [16])`,
      "checkpoint: lm_head.weight is not a tensor of the model",
    ]);

    const garbage = await createFrom(api, { dataset: "lines" }, new Uint8Array(64).fill(7));
    expect(garbage.status).toBe(400);
    expect(((await garbage.json()) as { problems: string[] }).problems[0]).toMatch(
      /^checkpoint: neither safetensors nor a Cap'n Proto checkpoint/,
    );
    const noFile = await createFrom(api, { dataset: "lines" });
    expect(((await noFile.json()) as { problems: string[] }).problems).toEqual([
      "checkpoint: the form has no checkpoint file",
    ]);
    expect(sim.coordinator.runs.size).toBe(runs);
  });
});
