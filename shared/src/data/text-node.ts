// Tiny Shakespeare for Node: the corpus shipped in shared/data, read once and kept as its shard.
import { readFileSync } from "node:fs";
import { decodeTextShard, encodeTextShard, type TextCorpus } from "./text-shard.ts";

let cached: TextCorpus | undefined;

export function loadTinyShakespeare(): TextCorpus {
  if (cached) return cached;
  const text = readFileSync(new URL("../../data/tinyshakespeare.txt", import.meta.url), "utf8");
  cached = decodeTextShard(encodeTextShard(text), "tinyshakespeare");
  return cached;
}
