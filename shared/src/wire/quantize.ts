// Conversions between fp32 and the compact update encodings: IEEE 754 binary16, and int8 with a
// per-tensor scale (value = q * scale, q in [-127, 127], scale = max|x| / 127). The coordinator
// decodes both to fp32 and accumulates in fp32.
import { WireError } from "./wire-error.ts";

/** fp32 → fp16 bits, rounding to nearest even; overflow goes to ±Infinity, NaN stays NaN. */
export function fp32ToFp16(src: Float32Array, dst: Uint16Array): void {
  const bits = new Uint32Array(src.buffer, src.byteOffset, src.length);
  for (let i = 0; i < bits.length; i++) dst[i] = halfFromBits(bits[i]!);
}

function halfFromBits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  const mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 : 0);
  const e = exp - 112; // rebias: 127 - 15
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // A subnormal half (or zero): the value is m * 2^-24 with m = (1.mant) * 2^(e - 14 + 23).
    if (e < -10) return sign;
    const m = mant | 0x800000;
    const shift = 14 - e;
    let half = m >>> shift;
    const rest = m & ((1 << shift) - 1);
    const tie = 1 << (shift - 1);
    if (rest > tie || (rest === tie && (half & 1) === 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >>> 13);
  const rest = mant & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && (half & 1) === 1)) half++; // a carry bumps the exponent, as it should
  return sign | half;
}

let halfTable: Float32Array | undefined;

/** fp16 bits → fp32, through a 65,536-entry table built on first use. */
export function fp16ToFp32(src: Uint16Array, dst: Float32Array): void {
  halfTable ??= buildHalfTable();
  const table = halfTable;
  for (let i = 0; i < src.length; i++) dst[i] = table[src[i]!]!;
}

function buildHalfTable(): Float32Array {
  const table = new Float32Array(65536);
  for (let h = 0; h < 65536; h++) {
    const sign = h & 0x8000 ? -1 : 1;
    const exp = (h >>> 10) & 0x1f;
    const mant = h & 0x3ff;
    if (exp === 0) table[h] = sign * mant * 2 ** -24;
    else if (exp === 0x1f) table[h] = mant === 0 ? sign * Infinity : Number.NaN;
    else table[h] = sign * (1 + mant / 1024) * 2 ** (exp - 15);
  }
  return table;
}

/** Quantizes to int8 with a per-tensor scale. Refuses non-finite input: it would hide as zeros. */
export function fp32ToInt8(src: Float32Array, dst: Int8Array): number {
  let maxAbs = 0;
  for (let i = 0; i < src.length; i++) {
    const a = Math.abs(src[i]!);
    if (!(a <= maxAbs)) maxAbs = a; // written so that NaN lands here too
  }
  if (!Number.isFinite(maxAbs)) {
    throw new WireError("encode", "non-finite values cannot be quantized to int8");
  }
  const scale = maxAbs / 127;
  if (scale === 0) {
    dst.fill(0, 0, src.length);
    return 0;
  }
  const inverse = 1 / scale;
  for (let i = 0; i < src.length; i++) dst[i] = Math.round(src[i]! * inverse); // |q| <= 127 by construction
  return Math.fround(scale);
}

/** Dequantizes int8 with its scale. */
export function int8ToFp32(src: Int8Array, scale: number, dst: Float32Array): void {
  for (let i = 0; i < src.length; i++) dst[i] = src[i]! * scale;
}
