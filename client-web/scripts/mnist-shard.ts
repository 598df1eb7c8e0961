// Writes the MNIST shard into public/, so that the build serves it as a static asset: the
// edge's run objects fetch it from there (see edge/src/datasets.ts).
import { mkdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { encodeMnistShard, MNIST_SHARD_PATH, mnistDigits } from "@pangea/shared/mnist";

const target = join(import.meta.dirname, "..", "public", MNIST_SHARD_PATH);
mkdirSync(dirname(target), { recursive: true });
const shard = encodeMnistShard(mnistDigits());
writeFileSync(target, shard);
console.log(`mnist shard: ${(shard.byteLength / 1e6).toFixed(2)} MB → ${target}`);
