// Writes the dataset shards into public/, so that the build serves them as static assets: the
// edge's run objects read them from there (see edge/src/datasets.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { encodeMnistShard, MNIST_SHARD_PATH, mnistDigits } from "@pangea/shared/mnist";
import { SHAKESPEARE_SHARD_PATH } from "@pangea/shared/text-shard";
import { tinyShakespeareShard } from "@pangea/shared/text-node";

for (const [path, shard] of [
  [MNIST_SHARD_PATH, encodeMnistShard(mnistDigits())],
  [SHAKESPEARE_SHARD_PATH, tinyShakespeareShard()],
] as const) {
  const target = join(import.meta.dirname, "..", "public", path);
  mkdirSync(dirname(target), { recursive: true });
  writeFileSync(target, shard);
  console.log(`dataset shard: ${(shard.byteLength / 1e6).toFixed(2)} MB → ${target}`);
}
