// Reduction among peers (TrainingConfig.reduceGroup): how an update is cut into pieces, which
// pieces make each part of a group, what a declaration hashes, and how an owner combines a part.
// The coordinator and every contributor read these the same way, so that the two owners of a part
// reach bit-identical results (the coordinator compares their hashes) and anyone can check what a
// member sent against what it declared.
//
// An update of n floats is REDUCE_PIECES pieces, piece k being [⌊n·k/16⌋, ⌊n·(k+1)/16⌋). A member
// declares the SHA-256 of each piece's fp32 bytes before any peer sees them. A group of g members
// splits the pieces into g parts of whole pieces; member i reduces part i (and sends it) and
// checks part i−1 (and sends only its hash), so every part has two owners.
import { sha256, sha256Hex } from "../sha256.ts";
import type { Aggregator } from "../wire/messages.ts";
import { aggregate } from "./aggregate.ts";

export const REDUCE_PIECES = 16;
/** The largest group: every member must own at least one whole piece. */
export const MAX_REDUCE_GROUP = REDUCE_PIECES;

/** Where piece k of an n-float update starts (k = REDUCE_PIECES: its end). */
export function pieceStart(n: number, k: number): number {
  return Math.floor((n * k) / REDUCE_PIECES);
}

/** The pieces part p of a group of g covers: [first, end). */
export function partPieces(g: number, p: number): { first: number; end: number } {
  return {
    first: Math.floor((REDUCE_PIECES * p) / g),
    end: Math.floor((REDUCE_PIECES * (p + 1)) / g),
  };
}

/** The floats part p of a group of g covers in an n-float update: [start, end). */
export function partRange(n: number, g: number, p: number): { start: number; end: number } {
  const { first, end } = partPieces(g, p);
  return { start: pieceStart(n, first), end: pieceStart(n, end) };
}

/** The two owners of part p: member p reduces and sends it, member p+1 checks it. */
export function partOwners(g: number, p: number): { reducer: number; checker: number } {
  return { reducer: p, checker: (p + 1) % g };
}

/** The SHA-256 of each piece of `update`'s fp32 bytes, concatenated (32 bytes a piece). */
export function pieceHashes(update: Float32Array): Uint8Array {
  const out = new Uint8Array(32 * REDUCE_PIECES);
  const bytes = new Uint8Array(update.buffer, update.byteOffset, update.byteLength);
  for (let k = 0; k < REDUCE_PIECES; k++) {
    const start = pieceStart(update.length, k);
    const end = pieceStart(update.length, k + 1);
    out.set(sha256(bytes.subarray(4 * start, 4 * end)), 32 * k);
  }
  return out;
}

/**
 * Whether `values`, part p (of a group of g) of a member's n-float update, hash to the pieces the
 * member declared.
 */
export function partMatches(
  values: Float32Array,
  declared: Uint8Array,
  n: number,
  g: number,
  p: number,
): boolean {
  const { first, end } = partPieces(g, p);
  const { start } = partRange(n, g, p);
  if (declared.byteLength !== 32 * REDUCE_PIECES) return false;
  if (values.length !== pieceStart(n, end) - start) return false;
  const bytes = new Uint8Array(values.buffer, values.byteOffset, values.byteLength);
  for (let k = first; k < end; k++) {
    const digest = sha256(
      bytes.subarray(4 * (pieceStart(n, k) - start), 4 * (pieceStart(n, k + 1) - start)),
    );
    for (let b = 0; b < 32; b++) if (digest[b] !== declared[32 * k + b]) return false;
  }
  return true;
}

/**
 * One part reduced: the members' values of it combined in member order with the run's rule (the
 * same code as the coordinator's aggregation, so a part reduced twice is the same bits).
 */
export function reducePart(
  values: readonly Float32Array[],
  weights: readonly number[],
  aggregator: Aggregator,
  trim: number,
): Float32Array {
  const updates = values.map((v, i) => ({
    key: String(i).padStart(4, "0"),
    tensors: [v],
    weight: weights[i]!,
  }));
  return aggregate(updates, { kind: aggregator, trim })[0]!;
}

/** The lowercase hex SHA-256 of a part's fp32 bytes: what its checking owner sends. */
export function partHash(values: Float32Array): string {
  return sha256Hex(new Uint8Array(values.buffer, values.byteOffset, values.byteLength));
}
