import { describe, expect, it } from "vitest";
import { randomFloats } from "./fixtures.ts";
import { fp16ToFp32, fp32ToFp16, fp32ToInt8, int8ToFp32 } from "./quantize.ts";

/** Every finite half value, ascending, with its bits: the reference for rounding. */
function finiteHalves(): { value: number; bits: number }[] {
  const all = new Uint16Array(65536).map((_, i) => i);
  const values = new Float32Array(65536);
  fp16ToFp32(all, values);
  const out: { value: number; bits: number }[] = [];
  for (let h = 0; h < 65536; h++) {
    if (Number.isFinite(values[h]!) && h !== 0x8000) out.push({ value: values[h]!, bits: h });
  }
  return out.sort((a, b) => a.value - b.value);
}

describe("fp16", () => {
  it("round-trips every one of the 65,536 half values (NaNs stay NaN)", () => {
    const bits = new Uint16Array(65536).map((_, i) => i);
    const values = new Float32Array(65536);
    fp16ToFp32(bits, values);
    const back = new Uint16Array(65536);
    fp32ToFp16(values, back);
    for (let h = 0; h < 65536; h++) {
      if (Number.isNaN(values[h]!)) expect(back[h]! & 0x7c00).toBe(0x7c00);
      else expect(back[h]).toBe(h);
    }
    expect(values[0x3c00]).toBe(1);
    expect(values[0xc000]).toBe(-2);
    expect(values[0x0001]).toBe(2 ** -24);
    expect(values[0x7bff]).toBe(65504);
  });

  it("rounds fp32 to the nearest half, ties to even, overflow to infinity", () => {
    const halves = finiteHalves();
    const samples = randomFloats(20_000, 5, 70_000);
    const tiny = randomFloats(20_000, 6, 2 ** -13);
    const inputs = new Float32Array([
      ...samples,
      ...tiny,
      65520,
      65519,
      -65520,
      2 ** -25,
      2 ** -25 * 3,
    ]);
    const bits = new Uint16Array(inputs.length);
    fp32ToFp16(inputs, bits);
    const out = new Float32Array(inputs.length);
    fp16ToFp32(bits, out);
    for (let i = 0; i < inputs.length; i++) {
      const x = inputs[i]!;
      if (Math.abs(x) >= 65520) {
        expect(out[i]).toBe(Math.sign(x) * Number.POSITIVE_INFINITY);
        continue;
      }
      // The nearest half by search; on a tie the one with even bits.
      let lo = 0;
      let hi = halves.length - 1;
      while (hi - lo > 1) {
        const mid = (lo + hi) >> 1;
        if (halves[mid]!.value <= x) lo = mid;
        else hi = mid;
      }
      const a = halves[lo]!;
      const b = halves[hi]!;
      const da = Math.abs(x - a.value);
      const db = Math.abs(x - b.value);
      const nearest = da < db ? a : db < da ? b : (a.bits & 1) === 0 ? a : b;
      expect(Math.abs(out[i]!)).toBe(Math.abs(nearest.value));
    }
  });
});

describe("int8", () => {
  it("quantizes with scale max|x|/127 and dequantizes within half a step", () => {
    const x = randomFloats(10_000, 7, 4);
    const q = new Int8Array(x.length);
    const scale = fp32ToInt8(x, q);
    const maxAbs = x.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(scale).toBeCloseTo(maxAbs / 127, 7);
    expect(Math.max(...q.map(Math.abs))).toBe(127);
    const back = new Float32Array(x.length);
    int8ToFp32(q, scale, back);
    for (let i = 0; i < x.length; i++)
      expect(Math.abs(back[i]! - x[i]!)).toBeLessThanOrEqual(scale / 2 + 1e-6);
  });

  it("gives scale 0 for an all-zero tensor and refuses NaN or infinity", () => {
    const q = new Int8Array(3).fill(5);
    expect(fp32ToInt8(new Float32Array(3), q)).toBe(0);
    expect([...q]).toEqual([0, 0, 0]);
    expect(() => fp32ToInt8(new Float32Array([1, Number.NaN]), new Int8Array(2))).toThrow(
      /non-finite/,
    );
    expect(() =>
      fp32ToInt8(new Float32Array([Number.POSITIVE_INFINITY]), new Int8Array(1)),
    ).toThrow(/non-finite/);
  });
});
