// Writes a single-segment framed Cap'n Proto message into one buffer that can be reused.
//
// A frame is [segment count - 1 = 0][segment size in words][root pointer][objects...]. Objects
// are bump-allocated in order, so a tensor's bytes are copied once, straight into the frame.
// Reusing the buffer across frames matters: allocating a fresh 16 MiB ArrayBuffer costs far more
// than copying 16 MiB into a warm one (see `pnpm bench:wire`).
import { WireError } from "./wire-error.ts";

/** A struct being written: where its sections start, in bytes from the start of the buffer. */
export interface StructSlot {
  readonly data: number;
  readonly ptrs: number;
}

export interface StructSize {
  readonly dataWords: number;
  readonly pointers: number;
}

const MAX_SEGMENT_WORDS = 2 ** 32 - 1;

export class FrameWriter {
  private buffer: ArrayBuffer;
  private u8: Uint8Array;
  private dv: DataView;
  private end = 0;

  /** @param capacity initial buffer size in bytes; the buffer grows (by copying) when needed */
  constructor(capacity = 64 * 1024) {
    this.buffer = new ArrayBuffer(roundUp(Math.max(capacity, 64)));
    this.u8 = new Uint8Array(this.buffer);
    this.dv = new DataView(this.buffer);
  }

  /** Starts a new frame with a root struct of the given size, reusing the buffer. */
  begin(root: StructSize, expectedBytes = 0): StructSlot {
    this.end = 0; // nothing of the previous frame needs keeping if the buffer grows
    if (expectedBytes > this.buffer.byteLength) this.grow(expectedBytes);
    this.end = 16; // the 8-byte segment table, then the root pointer
    return this.initStruct(8, root);
  }

  /** Ends the frame: fills in the segment table and returns the frame, a view of the buffer. */
  finish(): Uint8Array {
    const words = (this.end - 8) / 8;
    if (words > MAX_SEGMENT_WORDS) throw new WireError("encode", "message exceeds one segment");
    this.dv.setUint32(0, 0, true);
    this.dv.setUint32(4, words, true);
    return new Uint8Array(this.buffer, 0, this.end);
  }

  // --- data section -------------------------------------------------------------------------
  // Fields left unset stay zero: allocation zeroes every struct.

  bool(s: StructSlot, bit: number, value: boolean): void {
    const at = s.data + (bit >>> 3);
    if (value) this.u8[at] = this.u8[at]! | (1 << (bit & 7));
  }
  u16(s: StructSlot, byte: number, value: number): void {
    this.dv.setUint16(s.data + byte, value, true);
  }
  u32(s: StructSlot, byte: number, value: number): void {
    this.dv.setUint32(s.data + byte, value >>> 0, true);
  }
  f32(s: StructSlot, byte: number, value: number): void {
    this.dv.setFloat32(s.data + byte, value, true);
  }
  f64(s: StructSlot, byte: number, value: number): void {
    this.dv.setFloat64(s.data + byte, value, true);
  }
  u64(s: StructSlot, byte: number, value: number, what: string): void {
    if (!Number.isSafeInteger(value) || value < 0) {
      throw new WireError("encode", `${what} must be a non-negative safe integer, not ${value}`);
    }
    this.dv.setUint32(s.data + byte, value % 2 ** 32, true);
    this.dv.setUint32(s.data + byte + 4, Math.floor(value / 2 ** 32), true);
  }

  // --- pointer section ----------------------------------------------------------------------

  struct(s: StructSlot, index: number, size: StructSize): StructSlot {
    return this.initStruct(s.ptrs + index * 8, size);
  }

  text(s: StructSlot, index: number, value: string): void {
    if (value === "") return; // an unset Text reads as ""
    const pos = s.ptrs + index * 8;
    // Most of our texts are short ASCII ids: write those directly (TextEncoder.encode allocates
    // and dominated the cost of small frames).
    if (value.length <= 256 && isAscii(value)) {
      const at = this.allocList(pos, 2, value.length + 1, value.length + 1);
      for (let i = 0; i < value.length; i++) this.u8[at + i] = value.charCodeAt(i);
      return;
    }
    const bytes = encoder.encode(value);
    const at = this.allocList(pos, 2, bytes.byteLength + 1, bytes.byteLength + 1);
    this.u8.set(bytes, at); // the NUL after it is already zero
  }

  /**
   * Reserves a Data field of `byteLength` bytes and returns where its bytes start in the buffer,
   * for the caller to fill through `bytesAt` (writing straight into the frame, no staging copy).
   */
  reserveData(s: StructSlot, index: number, byteLength: number): number {
    return this.allocList(s.ptrs + index * 8, 2, byteLength, byteLength, false);
  }

  /** The buffer's bytes, valid until the next call that may grow it. */
  bytesAt(offset: number, length: number): Uint8Array {
    return new Uint8Array(this.buffer, offset, length);
  }

  /** The underlying buffer, valid until the next call that may grow it. */
  get arrayBuffer(): ArrayBuffer {
    return this.buffer;
  }

  scalars(s: StructSlot, index: number, bits: 16 | 32, values: readonly number[]): void {
    if (values.length === 0) return;
    const at = this.allocList(
      s.ptrs + index * 8,
      bits === 16 ? 3 : 4,
      values.length,
      values.length * (bits / 8),
    );
    for (let i = 0; i < values.length; i++) {
      if (bits === 16) this.dv.setUint16(at + 2 * i, values[i]!, true);
      else this.dv.setUint32(at + 4 * i, values[i]!, true);
    }
  }

  /** A List(Struct) field of `count` elements; returns each element's slot. */
  structs(s: StructSlot, index: number, size: StructSize, count: number): StructSlot[] {
    if (count === 0) return [];
    const words = (size.dataWords + size.pointers) * count;
    if (words >= 2 ** 29) throw new WireError("encode", "list of structs too long");
    const pos = s.ptrs + index * 8;
    const tag = this.alloc(8 + words * 8);
    this.pointer(pos, tag, 1, 7 | (words * 8)); // element size 7 (composite), then word count
    this.dv.setUint32(tag, count << 2, true); // the tag: a struct pointer whose offset is the count
    this.dv.setUint16(tag + 4, size.dataWords, true);
    this.dv.setUint16(tag + 6, size.pointers, true);
    const stride = (size.dataWords + size.pointers) * 8;
    const out = new Array<StructSlot>(count);
    for (let i = 0; i < count; i++) {
      const data = tag + 8 + i * stride;
      out[i] = { data, ptrs: data + size.dataWords * 8 };
    }
    return out;
  }

  // --- allocation ---------------------------------------------------------------------------

  private initStruct(pos: number, size: StructSize): StructSlot {
    const at = this.alloc((size.dataWords + size.pointers) * 8);
    this.pointer(pos, at, 0, size.dataWords | (size.pointers << 16));
    return { data: at, ptrs: at + size.dataWords * 8 };
  }

  /** Allocates a list's content and points `pos` at it; `hi` holds element size and count. */
  private allocList(
    pos: number,
    elementSize: number,
    count: number,
    bytes: number,
    zero = true,
  ): number {
    if (count >= 2 ** 29) throw new WireError("encode", "list too long for a list pointer");
    const at = this.alloc(bytes, zero);
    this.pointer(pos, at, 1, elementSize | (count << 3));
    return at;
  }

  /** Writes a struct (kind 0) or list (kind 1) pointer at `pos` to content at `at`. */
  private pointer(pos: number, at: number, kind: 0 | 1, hi: number): void {
    const offset = (at - pos - 8) / 8;
    if (offset >= 2 ** 29) throw new WireError("encode", "message exceeds 2^29 words");
    this.dv.setUint32(pos, ((offset << 2) | kind) >>> 0, true);
    this.dv.setUint32(pos + 4, hi >>> 0, true);
  }

  /** Bump-allocates `bytes` rounded up to whole words. Zeroes them unless told they'll be filled. */
  private alloc(bytes: number, zero = true): number {
    const words = Math.ceil(bytes / 8);
    const at = this.end;
    const end = at + words * 8;
    if (end > this.buffer.byteLength) this.grow(end);
    if (zero) this.u8.fill(0, at, end);
    else if (bytes % 8 !== 0) this.u8.fill(0, at + bytes, end); // the padding, for determinism
    this.end = end;
    return at;
  }

  private grow(needed: number): void {
    const size = roundUp(Math.max(needed, this.buffer.byteLength * 2));
    const next = new ArrayBuffer(size);
    const u8 = new Uint8Array(next);
    u8.set(this.u8.subarray(0, this.end));
    this.buffer = next;
    this.u8 = u8;
    this.dv = new DataView(next);
  }
}

const encoder = new TextEncoder();

function isAscii(value: string): boolean {
  for (let i = 0; i < value.length; i++) if (value.charCodeAt(i) >= 0x80) return false;
  return true;
}

function roundUp(bytes: number): number {
  return Math.ceil(bytes / 8) * 8;
}
