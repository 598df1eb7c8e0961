// An image set as NumPy writes it (`numpy.save`): real .npy files, uint8 images with int64
// labels and float64 images with big-endian int32 labels, read by our importer
// (shared/src/data/import.ts) into a shard with every image beside its label. Uses the same
// Python as the safetensors round trip (.ci/run installs numpy into .venv-python).
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { decodeShard, importImages, sampleValues } from "@pangea/shared";
import { describe, expect, it } from "vitest";

const repoVenv = join(import.meta.dirname, "../../../.venv-python/bin/python");
const python = process.env.PANGEA_PYTHON ?? (existsSync(repoVenv) ? repoVenv : "python3");
const ready = spawnSync(python, ["-c", "import numpy"]).status === 0;
if (!ready && process.env.CI)
  throw new Error(`CI must test .npy files from NumPy, but ${python} cannot import numpy`);

// Image i's pixels all say i (mod 256 / scaled); its label is i % 7.
const WRITER = `
import sys, numpy as np
d = sys.argv[1]
n = 300
i = np.arange(n)
np.save(d + "/u8-images.npy", np.repeat((i % 256).astype(np.uint8)[:, None, None], 4, 1).repeat(5, 2))
np.save(d + "/u8-labels.npy", (i % 7).astype(np.int64))
np.save(d + "/f64-images.npy", np.repeat((i / 1000.0)[:, None], 6, 1))
np.save(d + "/be-labels.npy", (i % 7).astype(">i4"))
`;

describe.skipIf(!ready)("an image set from NumPy's .npy files", () => {
  it("reads uint8 and float64 images with int64 and big-endian labels, each image with its label", () => {
    const dir = mkdtempSync(join(tmpdir(), "pangea-npy-"));
    try {
      const out = spawnSync(python, ["-c", WRITER, dir], { encoding: "utf8" });
      expect(out.stderr).toBe("");
      const file = (name: string) => new Uint8Array(readFileSync(join(dir, name)));
      for (const [images, labels, width, imageOf] of [
        ["u8-images.npy", "u8-labels.npy", 20, (v: number) => Math.round(v * 255)],
        ["f64-images.npy", "be-labels.npy", 6, (v: number) => Math.round(v * 1000)],
      ] as const) {
        const shard = decodeShard(importImages(file(images), file(labels)), images);
        if (shard.kind !== "images") throw new Error("images");
        expect(shard.train.count + shard.test.count).toBe(300);
        expect(shard.train.inputShape).toEqual([width]);
        expect(shard.train.classes).toBe(7);
        for (const part of [shard.train, shard.test]) {
          const values = sampleValues(part, 0, part.count);
          for (let s = 0; s < part.count; s++) {
            const i = imageOf(values[s * width]!);
            // The label is of the image the pixels came from (uint8 pixels wrap at 256).
            if (images.startsWith("f64")) expect(part.labels[s]).toBe(i % 7);
            else expect([i % 7, (i + 256) % 7]).toContain(part.labels[s]);
          }
        }
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
