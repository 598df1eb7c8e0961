// Reads a framed Cap'n Proto message in place, with every access bounds-checked.
//
// Why our own reader rather than capnp-es's: capnp-es copies every segment out of the frame
// (its Segment must start at offset 0 of its own ArrayBuffer), so it cannot hand out a tensor as
// a view over the received bytes; and it trusts the segment table (a 16-byte frame declaring
// 0x7fffffff segments aborts the process) and has no nesting limit. Here the segment table is
// checked against the frame length before anything else, every pointer is resolved within its
// segment, nesting is counted, and the words a decode touches are charged to a traversal budget
// (as Cap'n Proto's C++ reader does) so a frame cannot point at the same bytes over and over.
// Field offsets come from src/gen/layout.ts, generated from the schema by `pnpm gen`.
//
// Encoding reference: https://capnproto.org/encoding.html
import { WireError } from "./wire-error.ts";

/** Bounds on one decode. Defaults suit the coordinator; a run narrows maxFrameBytes to its model. */
export interface DecodeLimits {
  /** Largest frame accepted, in bytes. Default 64 MiB. */
  maxFrameBytes: number;
  /** Segments above this count are refused (Cap'n Proto's own readers stop at 512). Default 511. */
  maxSegments: number;
  /** Deepest struct nesting followed from the root. Default 16 (our schema needs 6). */
  maxDepth: number;
  /** Words a decode may touch, as a multiple of the frame's words, plus 64. Default 1. */
  traversalFactor: number;
  /** Longest list of structs or scalars (not bytes). Default 65,536. */
  maxListLength: number;
  /** Longest Text in bytes. Default 64 KiB. */
  maxTextBytes: number;
}

export const defaultDecodeLimits: Readonly<DecodeLimits> = Object.freeze({
  maxFrameBytes: 64 * 1024 * 1024,
  maxSegments: 511,
  maxDepth: 16,
  traversalFactor: 1,
  maxListLength: 65_536,
  maxTextBytes: 64 * 1024,
});

/** A struct located in the frame: byte offsets are from the start of the frame. */
export interface StructView {
  readonly data: number;
  readonly dataBytes: number;
  readonly ptrs: number;
  readonly ptrCount: number;
  readonly seg: number;
  readonly depth: number;
}

/** A list located in the frame. For struct lists, `stride` is the element size in bytes. */
interface ListView {
  readonly seg: number;
  readonly start: number;
  readonly count: number;
  readonly elementSize: number; // Cap'n Proto's element size code, 0..7
  readonly stride: number; // composite lists: bytes per element
  readonly dataBytes: number; // composite lists: data section bytes per element
  readonly ptrCount: number; // composite lists: pointers per element
}

const ELEMENT_BITS = [0, 1, 8, 16, 32, 64, 64, 0] as const;
const TWO_32 = 2 ** 32;
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false });

/** The segment table of a frame, checked against its length. */
export function readSegmentTable(
  bytes: Uint8Array,
  limits: DecodeLimits,
): { starts: number[]; ends: number[] } {
  const length = bytes.byteLength;
  if (length > limits.maxFrameBytes) {
    throw new WireError(
      "frame-too-large",
      `frame of ${length} bytes exceeds the limit of ${limits.maxFrameBytes}`,
    );
  }
  if (length < 8) throw new WireError("frame-too-short", `frame of ${length} bytes is too short`);
  if (length % 8 !== 0) {
    throw new WireError("segment-table", `frame length ${length} is not a whole number of words`);
  }
  const dv = new DataView(bytes.buffer, bytes.byteOffset, length);
  const count = dv.getUint32(0, true) + 1;
  if (count > limits.maxSegments) {
    throw new WireError(
      "segment-table",
      `frame declares ${count} segments; at most ${limits.maxSegments} are accepted`,
    );
  }
  // The table: a count, one size per segment, padded to a whole word.
  const headerBytes = (4 + 4 * count + 7) & ~7;
  if (headerBytes > length) {
    throw new WireError(
      "segment-table",
      `segment table for ${count} segments is longer than the frame`,
    );
  }
  const starts: number[] = [];
  const ends: number[] = [];
  let offset = headerBytes;
  for (let i = 0; i < count; i++) {
    const words = dv.getUint32(4 + 4 * i, true);
    starts.push(offset);
    offset += words * 8; // exact in a double: at most 511 * 2^35
    ends.push(offset);
    if (offset > length) {
      throw new WireError(
        "segment-table",
        `segment ${i} of ${words} words runs past the end of the frame`,
      );
    }
  }
  if (offset !== length) {
    throw new WireError(
      "segment-table",
      `segments hold ${offset - headerBytes} bytes but the frame carries ${length - headerBytes}`,
    );
  }
  if (ends[0]! - starts[0]! < 8) throw new WireError("segment-table", "segment 0 has no root");
  return { starts, ends };
}

export class FrameReader {
  readonly bytes: Uint8Array;
  private readonly dv: DataView;
  private readonly starts: number[];
  private readonly ends: number[];
  private budget: number;

  constructor(
    bytes: Uint8Array,
    readonly limits: DecodeLimits = defaultDecodeLimits,
  ) {
    const { starts, ends } = readSegmentTable(bytes, limits);
    this.bytes = bytes;
    this.dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    this.starts = starts;
    this.ends = ends;
    this.budget = (bytes.byteLength / 8) * limits.traversalFactor + 64;
  }

  /** The root struct. */
  root(): StructView {
    const root = this.structAt(this.starts[0]!, 0, -1);
    if (!root) throw new WireError("pointer", "the root pointer is null");
    return root;
  }

  // --- data section -------------------------------------------------------------------------
  // A field beyond the struct's data section reads as zero: the sender's schema is older.

  bool(s: StructView, bit: number): boolean {
    const byte = bit >>> 3;
    return byte < s.dataBytes && ((this.dv.getUint8(s.data + byte) >>> (bit & 7)) & 1) === 1;
  }
  u16(s: StructView, byte: number): number {
    return byte + 2 <= s.dataBytes ? this.dv.getUint16(s.data + byte, true) : 0;
  }
  u32(s: StructView, byte: number): number {
    return byte + 4 <= s.dataBytes ? this.dv.getUint32(s.data + byte, true) : 0;
  }
  f32(s: StructView, byte: number): number {
    return byte + 4 <= s.dataBytes ? this.dv.getFloat32(s.data + byte, true) : 0;
  }
  f64(s: StructView, byte: number): number {
    return byte + 8 <= s.dataBytes ? this.dv.getFloat64(s.data + byte, true) : 0;
  }
  /** A UInt64 as a number; refuses values at or above 2^53, which a double cannot hold exactly. */
  u64(s: StructView, byte: number, what: string): number {
    if (byte + 8 > s.dataBytes) return 0;
    const lo = this.dv.getUint32(s.data + byte, true);
    const hi = this.dv.getUint32(s.data + byte + 4, true);
    if (hi >= 0x200000) throw new WireError("integer", `${what} is 2^53 or more`);
    return hi * TWO_32 + lo;
  }

  // --- pointer section ----------------------------------------------------------------------

  /** The struct a pointer field points at, or null when the field is unset. */
  struct(s: StructView, index: number): StructView | null {
    if (index >= s.ptrCount) return null;
    return this.structAt(s.ptrs + index * 8, s.seg, s.depth);
  }

  /** A Text field ("" when unset). */
  text(s: StructView, index: number, what: string): string {
    const list = this.list(s, index, what);
    if (!list) return "";
    if (list.elementSize !== 2) throw new WireError("pointer", `${what} is not a Text`);
    if (list.count === 0 || this.bytes[list.start + list.count - 1] !== 0) {
      throw new WireError("text", `${what} lacks its NUL terminator`);
    }
    if (list.count - 1 > this.limits.maxTextBytes) {
      throw new WireError("list-too-long", `${what} is ${list.count - 1} bytes long`);
    }
    const start = list.start;
    const end = start + list.count - 1;
    // Most of our texts are short ASCII ids: build those directly, skipping the decoder's setup.
    if (end - start <= 64) {
      let ascii = "";
      let i = start;
      for (; i < end; i++) {
        const b = this.bytes[i]!;
        if (b >= 0x80) break;
        ascii += String.fromCharCode(b);
      }
      if (i === end) return ascii;
    }
    try {
      return utf8.decode(this.bytes.subarray(start, end));
    } catch {
      throw new WireError("text", `${what} is not valid UTF-8`);
    }
  }

  /** A Data field: where its bytes sit in the frame (offset from the frame's start), or null. */
  data(s: StructView, index: number, what: string): { offset: number; length: number } | null {
    const list = this.list(s, index, what);
    if (!list) return null;
    if (list.elementSize !== 2) throw new WireError("pointer", `${what} is not Data`);
    return { offset: list.start, length: list.count };
  }

  /** A List(UInt32) or List(UInt16) (enums) field, copied out (these lists are short). */
  scalars(s: StructView, index: number, bits: 16 | 32, what: string): number[] {
    const list = this.list(s, index, what);
    if (!list) return [];
    if (list.elementSize !== (bits === 16 ? 3 : 4)) {
      throw new WireError("pointer", `${what} is not a list of ${bits}-bit values`);
    }
    this.checkListLength(list.count, what);
    const out = new Array<number>(list.count);
    for (let i = 0; i < list.count; i++) {
      out[i] =
        bits === 16
          ? this.dv.getUint16(list.start + 2 * i, true)
          : this.dv.getUint32(list.start + 4 * i, true);
    }
    return out;
  }

  /** A List(Struct) field: its elements as struct views. */
  structs(s: StructView, index: number, what: string): StructView[] {
    const list = this.list(s, index, what);
    if (!list) return [];
    if (list.elementSize !== 7) throw new WireError("pointer", `${what} is not a list of structs`);
    this.checkListLength(list.count, what);
    const depth = s.depth + 1;
    if (depth > this.limits.maxDepth) throw new WireError("depth-limit", `${what} nests too deep`);
    const out = new Array<StructView>(list.count);
    for (let i = 0; i < list.count; i++) {
      const data = list.start + i * list.stride;
      out[i] = {
        data,
        dataBytes: list.dataBytes,
        ptrs: data + list.dataBytes,
        ptrCount: list.ptrCount,
        seg: list.seg,
        depth,
      };
    }
    return out;
  }

  private checkListLength(count: number, what: string): void {
    if (count > this.limits.maxListLength) {
      throw new WireError(
        "list-too-long",
        `${what} has ${count} elements; the limit is ${this.limits.maxListLength}`,
      );
    }
  }

  private charge(words: number): void {
    this.budget -= words;
    if (this.budget < 0) {
      throw new WireError("traversal-limit", "the frame points at more words than it holds");
    }
  }

  /**
   * Follows the pointer at `pos` (in segment `seg`), through far pointers, to its content.
   * Returns the pointer word that describes the content and where the content starts.
   */
  private follow(pos: number, seg: number): { lo: number; hi: number; seg: number; at: number } {
    const lo = this.dv.getUint32(pos, true);
    const hi = this.dv.getUint32(pos + 4, true);
    const kind = lo & 3;
    if (kind === 3) throw new WireError("pointer", "capability pointers are not accepted");
    if (kind !== 2) {
      const at = pos + 8 + (lo >> 2) * 8; // lo >> 2: the signed 30-bit word offset
      if (at < this.starts[seg]! || at > this.ends[seg]!) {
        throw new WireError("pointer", "a pointer leads outside its segment");
      }
      return { lo, hi, seg, at };
    }
    // A far pointer: a landing pad in segment `hi`, `lo >>> 3` words in.
    const padSeg = hi;
    const double = (lo & 4) !== 0;
    if (padSeg >= this.starts.length)
      throw new WireError("pointer", "a far pointer's segment does not exist");
    const pad = this.starts[padSeg]! + (lo >>> 3) * 8;
    if (pad + (double ? 16 : 8) > this.ends[padSeg]!) {
      throw new WireError("pointer", "a far pointer's landing pad lies outside its segment");
    }
    this.charge(1);
    if (!double) {
      if ((this.dv.getUint32(pad, true) & 3) === 2) {
        throw new WireError("pointer", "a landing pad is itself a far pointer");
      }
      return this.follow(pad, padSeg);
    }
    // Double-far: the pad's first word is a far pointer to the content, the second the tag.
    const farLo = this.dv.getUint32(pad, true);
    const contentSeg = this.dv.getUint32(pad + 4, true);
    if ((farLo & 7) !== 2 || contentSeg >= this.starts.length) {
      throw new WireError("pointer", "a double-far landing pad is malformed");
    }
    const at = this.starts[contentSeg]! + (farLo >>> 3) * 8;
    if (at > this.ends[contentSeg]!) {
      throw new WireError("pointer", "a double-far pointer leads outside its segment");
    }
    const tagLo = this.dv.getUint32(pad + 8, true);
    const tagHi = this.dv.getUint32(pad + 12, true);
    if ((tagLo & 3) > 1 || tagLo >>> 2 !== 0) {
      throw new WireError("pointer", "a double-far tag is malformed");
    }
    return { lo: tagLo, hi: tagHi, seg: contentSeg, at };
  }

  private structAt(pos: number, seg: number, parentDepth: number): StructView | null {
    if (this.dv.getUint32(pos, true) === 0 && this.dv.getUint32(pos + 4, true) === 0) return null;
    const depth = parentDepth + 1;
    if (depth > this.limits.maxDepth) throw new WireError("depth-limit", "structs nest too deep");
    const p = this.follow(pos, seg);
    if ((p.lo & 3) !== 0) throw new WireError("pointer", "expected a struct pointer");
    const dataWords = p.hi & 0xffff;
    const ptrCount = p.hi >>> 16;
    const end = p.at + (dataWords + ptrCount) * 8;
    if (end > this.ends[p.seg]!) throw new WireError("pointer", "a struct runs past its segment");
    this.charge(Math.max(1, dataWords + ptrCount));
    return {
      data: p.at,
      dataBytes: dataWords * 8,
      ptrs: p.at + dataWords * 8,
      ptrCount,
      seg: p.seg,
      depth,
    };
  }

  private list(s: StructView, index: number, what: string): ListView | null {
    if (index >= s.ptrCount) return null;
    const pos = s.ptrs + index * 8;
    if (this.dv.getUint32(pos, true) === 0 && this.dv.getUint32(pos + 4, true) === 0) return null;
    const p = this.follow(pos, s.seg);
    if ((p.lo & 3) !== 1) throw new WireError("pointer", `${what}: expected a list pointer`);
    const elementSize = p.hi & 7;
    const count = p.hi >>> 3;
    const segEnd = this.ends[p.seg]!;
    if (elementSize !== 7) {
      const bytes = Math.ceil((count * ELEMENT_BITS[elementSize]!) / 8);
      if (p.at + bytes > segEnd) throw new WireError("pointer", `${what} runs past its segment`);
      // Lists of zero-sized elements are charged per element, as C++ does, so that a tiny frame
      // cannot declare a list of 2^29 voids and make a decoder loop over it.
      this.charge(elementSize === 0 ? count : Math.ceil(bytes / 8));
      return { seg: p.seg, start: p.at, count, elementSize, stride: 0, dataBytes: 0, ptrCount: 0 };
    }
    // Inline composite: `count` is the number of words after the tag word.
    const words = count;
    if (p.at + 8 + words * 8 > segEnd)
      throw new WireError("pointer", `${what} runs past its segment`);
    const tagLo = this.dv.getUint32(p.at, true);
    const tagHi = this.dv.getUint32(p.at + 4, true);
    if ((tagLo & 3) !== 0) throw new WireError("pointer", `${what}: malformed list tag`);
    const elements = tagLo >>> 2;
    const dataWords = tagHi & 0xffff;
    const ptrCount = tagHi >>> 16;
    const stride = (dataWords + ptrCount) * 8;
    if (elements * (dataWords + ptrCount) > words) {
      throw new WireError("pointer", `${what}: its elements do not fit its words`);
    }
    this.charge(1 + Math.max(words, elements));
    return {
      seg: p.seg,
      start: p.at + 8,
      count: elements,
      elementSize,
      stride,
      dataBytes: dataWords * 8,
      ptrCount,
    };
  }
}
