// A text corpus as one compact shard for character-level language models: the vocabulary (the
// distinct characters, sorted, as nanoGPT's shakespeare_char builds it) and the text as one byte
// per character, split into training (the first 90%) and validation (the rest). Built like the
// MNIST shard: decoding is a few views, no parsing.
//
// Layout, little-endian:
//   0  "PGTX"   4  u32 version (1)
//   8  u32 vocabulary size   12 u32 training characters   16 u32 validation characters
//   20 u16 vocabulary[vocabulary size] (UTF-16 code units), padded to 4 bytes
//   then u8 tokens[training + validation], training first.
import { seededRandom } from "../random.ts";

export interface TextCorpus {
  name: string;
  /** vocabulary[token] is the character that token stands for. */
  vocabulary: string[];
  train: Uint8Array;
  validation: Uint8Array;
}

/** Where the built web UI serves Tiny Shakespeare's shard (the edge reads it from its assets). */
export const SHAKESPEARE_SHARD_PATH = "/data/shakespeare-v1.bin";

/** "PGTX" read as a little-endian u32: the first word of a text shard. */
export const TEXT_SHARD_MAGIC = 0x58544750;
const MAGIC = TEXT_SHARD_MAGIC;
const VERSION = 1;
const HEADER_BYTES = 20;
/** nanoGPT's split: the first 90% of the text trains, the last 10% validates. */
export const TRAIN_FRACTION = 0.9;

/** The shard of a text: its sorted distinct characters, then its tokens. At most 256 characters. */
export function encodeTextShard(text: string): Uint8Array {
  const vocabulary = [...new Set(text)].sort();
  if (vocabulary.length > 256)
    throw new Error(`${vocabulary.length} distinct characters do not fit one byte per token`);
  if (vocabulary.some((c) => c.length !== 1))
    throw new Error("the text holds characters outside the basic multilingual plane");
  if (text.length < 2) throw new Error("the text is too short to split");
  const codeOf = new Map(vocabulary.map((c, i) => [c, i]));
  const trainCount = Math.floor(text.length * TRAIN_FRACTION);
  const vocabularyBytes = Math.ceil((vocabulary.length * 2) / 4) * 4;
  const tokensAt = HEADER_BYTES + vocabularyBytes;
  const bytes = new Uint8Array(tokensAt + text.length);
  const view = new DataView(bytes.buffer);
  const header = [MAGIC, VERSION, vocabulary.length, trainCount, text.length - trainCount];
  for (const [i, v] of header.entries()) view.setUint32(i * 4, v, true);
  for (const [i, c] of vocabulary.entries())
    view.setUint16(HEADER_BYTES + i * 2, c.charCodeAt(0), true);
  for (let i = 0; i < text.length; i++) bytes[tokensAt + i] = codeOf.get(text[i]!)!;
  return bytes;
}

/** The corpus in a shard (views into `bytes`), or an error that says what is wrong with it. */
export function decodeTextShard(bytes: Uint8Array, name = "text"): TextCorpus {
  if (bytes.byteLength < HEADER_BYTES) throw new Error("text shard: shorter than its header");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(0, true) !== MAGIC) throw new Error("text shard: wrong magic");
  if (view.getUint32(4, true) !== VERSION)
    throw new Error(`text shard: version ${view.getUint32(4, true)}, expected ${VERSION}`);
  const size = view.getUint32(8, true);
  const trainCount = view.getUint32(12, true);
  const validationCount = view.getUint32(16, true);
  if (size < 1 || size > 256) throw new Error(`text shard: vocabulary of ${size}`);
  const tokensAt = HEADER_BYTES + Math.ceil((size * 2) / 4) * 4;
  if (bytes.byteLength !== tokensAt + trainCount + validationCount)
    throw new Error(
      `text shard: ${bytes.byteLength} bytes, its header promises ${tokensAt + trainCount + validationCount}`,
    );
  const vocabulary = Array.from({ length: size }, (_, i) =>
    String.fromCharCode(view.getUint16(HEADER_BYTES + i * 2, true)),
  );
  const tokens = bytes.subarray(tokensAt);
  for (const token of tokens)
    if (token >= size) throw new Error(`text shard: token ${token} outside the vocabulary`);
  return {
    name,
    vocabulary,
    train: tokens.subarray(0, trainCount),
    validation: tokens.subarray(trainCount),
  };
}

/** A string's tokens; a character outside the vocabulary is an error. */
export function encodeText(corpus: TextCorpus, text: string): number[] {
  const codeOf = new Map(corpus.vocabulary.map((c, i) => [c, i]));
  return Array.from(text, (c) => {
    const code = codeOf.get(c);
    if (code === undefined) throw new Error(`${JSON.stringify(c)} is not in the vocabulary`);
    return code;
  });
}

export function decodeText(corpus: TextCorpus, tokens: ArrayLike<number>): string {
  return Array.from(tokens, (t) => corpus.vocabulary[t] ?? "?").join("");
}

/**
 * A batch of B windows of T + 1 consecutive tokens at seeded random offsets: `inputs` the first
 * T of each, `targets` the T after (the next character at every position). The same seed gives
 * the same batch on every side.
 */
export function textBatch(
  tokens: Uint8Array,
  B: number,
  T: number,
  seed: number,
): { inputs: Int32Array; targets: Int32Array } {
  if (tokens.length < T + 1) throw new Error(`${tokens.length} tokens hold no window of ${T + 1}`);
  const next = seededRandom(seed);
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const start = Math.floor(next() * (tokens.length - T));
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = tokens[start + t]!;
      targets[b * T + t] = tokens[start + t + 1]!;
    }
  }
  return { inputs, targets };
}
