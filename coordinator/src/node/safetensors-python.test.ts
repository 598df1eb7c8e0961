// A checkpoint exported as safetensors, read by the tools researchers use: Python's
// `safetensors` package and numpy (`.ci/run` installs them into .venv-python; elsewhere set
// PANGEA_PYTHON to an interpreter that has them). Names, shapes, values and metadata must match.
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { createApi } from "../core/http-api.ts";
import { lines, linesRun, tinyGpt } from "../testing/lines.ts";

const repoVenv = join(import.meta.dirname, "../../../.venv-python/bin/python");
const python = process.env.PANGEA_PYTHON ?? (existsSync(repoVenv) ? repoVenv : "python3");
const ready = spawnSync(python, ["-c", "import safetensors, numpy"]).status === 0;
if (!ready && process.env.CI)
  throw new Error(
    `CI must test the safetensors round trip, but ${python} cannot import safetensors and numpy (.ci/run installs them into .venv-python)`,
  );

// Loads the file with safetensors' numpy API and prints what it found, as JSON.
const READER = `
import json, sys
import numpy as np
from safetensors import safe_open
from safetensors.numpy import load_file
tensors = load_file(sys.argv[1])
with safe_open(sys.argv[1], framework="np") as f:
    metadata = f.metadata()
print(json.dumps({
    "names": list(tensors.keys()),
    "tensors": {k: {"dtype": str(v.dtype), "shape": list(v.shape), "values": v.astype(np.float64).ravel().tolist()} for k, v in tensors.items()},
    "metadata": metadata,
}))
`;

describe.skipIf(!ready)(
  ready
    ? "a safetensors checkpoint in Python"
    : "a safetensors checkpoint in Python (skipped: no python with safetensors and numpy)",
  () => {
    it("loads with safetensors and numpy: every name, shape and value, and the run's metadata", async () => {
      const { sim, run } = linesRun({
        name: "round trip",
        evaluateEvery: 3,
        stop: { versions: 3 },
      });
      for (let i = 0; i < 2; i++) sim.addWorker({ runId: run.id });
      sim.runUntil(() => run.record.state === "finished" && run.record.evaluation?.version === 3);
      expect(lines.kind).toBe("text");
      const api = createApi(sim.coordinator, { adminToken: "t", startedAt: 0 });
      const response = await api.request(`/api/runs/${run.id}/checkpoint?format=safetensors`, {
        headers: { authorization: "Bearer t" },
      });
      const dir = mkdtempSync(join(tmpdir(), "pangea-safetensors-"));
      try {
        const path = join(dir, "checkpoint.safetensors");
        writeFileSync(path, new Uint8Array(await response.arrayBuffer()));
        const out = spawnSync(python, ["-c", READER, path], { encoding: "utf8" });
        expect(out.stderr).toBe("");
        const read = JSON.parse(out.stdout) as {
          names: string[];
          tensors: Record<string, { dtype: string; shape: number[]; values: number[] }>;
          metadata: Record<string, string>;
        };
        // Python's dict keeps the header's order, which is the layout's.
        expect(read.names).toEqual(run.layout.slots.map((s) => s.name));
        for (const slot of run.layout.slots) {
          const t = read.tensors[slot.name]!;
          expect(t.dtype).toBe("float32");
          expect(t.shape).toEqual(slot.shape);
          // float32 widened to float64 exactly: the same numbers, bit for bit.
          expect(t.values).toEqual([
            ...run.parameters.subarray(slot.offset, slot.offset + slot.size),
          ]);
        }
        expect(read.metadata["pangea.version"]).toBe("3");
        expect(JSON.parse(read.metadata["pangea.model"]!)).toEqual(tinyGpt);
        expect(JSON.parse(read.metadata["pangea.evaluation"]!).version).toBe(3);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  },
);
