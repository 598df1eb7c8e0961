// Tiny Shakespeare for Node: the corpus shipped in shared/data, read once and kept as its shard.
import { readFileSync } from "node:fs";
import { decodeTextShard, encodeTextShard, type TextCorpus } from "./text-shard.ts";

let shard: Uint8Array | undefined;
let corpus: TextCorpus | undefined;

/** The corpus's shard bytes (the same as the built web UI's static asset). */
export function tinyShakespeareShard(): Uint8Array {
  shard ??= encodeTextShard(
    readFileSync(new URL("../../data/tinyshakespeare.txt", import.meta.url), "utf8"),
  );
  return shard;
}

export function loadTinyShakespeare(): TextCorpus {
  corpus ??= decodeTextShard(tinyShakespeareShard(), "tinyshakespeare");
  return corpus;
}
