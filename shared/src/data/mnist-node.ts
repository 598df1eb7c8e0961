// MNIST for a long-lived Node process: the package's JSON is read from disk and parsed, turned
// into the compact shard, and let go. (A JSON import, as in mnist.ts, would keep ~8 million
// boxed numbers alive for the life of the process.)
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { encodeMnistShard } from "./image-shard.ts";

let cached: Uint8Array | undefined;

/** The MNIST shard's bytes (the same as the built web UI's static asset). */
export function mnistShardFromPackage(): Uint8Array {
  if (cached) return cached;
  const require = createRequire(import.meta.url);
  const digits = Array.from(
    { length: 10 },
    (_, d) =>
      (
        JSON.parse(readFileSync(require.resolve(`mnist/src/digits/${d}.json`), "utf8")) as {
          data: number[];
        }
      ).data,
  );
  cached = encodeMnistShard(digits);
  return cached;
}
