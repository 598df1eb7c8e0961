import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import { loadTinyShakespeare } from "./text-node.ts";
import {
  decodeText,
  decodeTextShard,
  encodeText,
  encodeTextShard,
  textBatch,
} from "./text-shard.ts";

describe("text shard", () => {
  it("holds Tiny Shakespeare as nanoGPT splits it: 65 characters, 90% train, one byte each", () => {
    const corpus = loadTinyShakespeare();
    expect(corpus.vocabulary.length).toBe(65);
    expect(corpus.vocabulary.join("")).toBe(
      "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz",
    );
    expect(corpus.train.length).toBe(1_003_854);
    expect(corpus.validation.length).toBe(111_540);
    expect(decodeText(corpus, corpus.train.subarray(0, 14))).toBe("First Citizen:");
    const text = readFileSync(new URL("../../data/tinyshakespeare.txt", import.meta.url), "utf8");
    expect(decodeText(corpus, corpus.validation)).toBe(text.slice(1_003_854));
  });

  it("round-trips text through tokens and refuses characters outside the vocabulary", () => {
    const corpus = decodeTextShard(encodeTextShard("abcabc ba\n"));
    expect(decodeText(corpus, encodeText(corpus, "cab a"))).toBe("cab a");
    expect(() => encodeText(corpus, "z")).toThrow(/not in the vocabulary/);
  });

  it("refuses shards that are truncated, padded, of another kind, or hold tokens outside the vocabulary", () => {
    const good = encodeTextShard("hello world, hello shard");
    expect(() => decodeTextShard(good.subarray(0, 10))).toThrow(/shorter than its header/);
    expect(() => decodeTextShard(good.subarray(0, good.length - 1))).toThrow(/promises/);
    const wrongMagic = good.slice();
    wrongMagic[0] = 0;
    expect(() => decodeTextShard(wrongMagic)).toThrow(/magic/);
    const badToken = good.slice();
    badToken[badToken.length - 1] = 200;
    expect(() => decodeTextShard(badToken)).toThrow(/outside the vocabulary/);
  });

  it("draws the same seeded windows everywhere, each target the next character of its input", () => {
    const corpus = loadTinyShakespeare();
    const a = textBatch(corpus.train, 8, 64, 42);
    const b = textBatch(corpus.train, 8, 64, 42);
    const c = textBatch(corpus.train, 8, 64, 43);
    expect(a.inputs).toEqual(b.inputs);
    expect(a.targets).toEqual(b.targets);
    expect(a.inputs).not.toEqual(c.inputs);
    for (let b0 = 0; b0 < 8; b0++)
      for (let t = 0; t + 1 < 64; t++)
        expect(a.targets[b0 * 64 + t]).toBe(a.inputs[b0 * 64 + t + 1]);
    expect(() => textBatch(corpus.train.subarray(0, 10), 1, 64, 1)).toThrow(/no window/);
  });
});
