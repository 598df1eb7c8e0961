import { describe, expect, it } from "vitest";
import { decodeSafetensors, encodeSafetensors } from "./safetensors.ts";

const tensors = [
  { name: "wte.weight", shape: [3, 2], data: new Float32Array([1, -2, 3.5, 4, 5, 6]) },
  { name: "ln_f.bias", shape: [2], data: new Float32Array([0.25, Number.MIN_VALUE]) },
];

/** A file with this header and `data` bytes after it. */
function file(header: unknown, data = 24): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data);
  new DataView(out.buffer).setUint32(0, json.length, true);
  out.set(json, 8);
  return out;
}

describe("safetensors", () => {
  it("round trips float32 tensors and string metadata, with the data 8-byte aligned", () => {
    const bytes = encodeSafetensors(tensors, { "pangea.version": "7", format: "pt" });
    const headerLength = new DataView(bytes.buffer).getUint32(0, true);
    expect((8 + headerLength) % 8).toBe(0);
    const back = decodeSafetensors(bytes);
    expect(back.tensors).toEqual(tensors);
    expect(back.metadata).toEqual({ "pangea.version": "7", format: "pt" });
    // An unaligned copy reads the same.
    const shifted = new Uint8Array(bytes.length + 1).subarray(1);
    shifted.set(bytes);
    expect(decodeSafetensors(shifted).tensors).toEqual(tensors);
  });

  it("refuses what it cannot read, every problem in one message", () => {
    expect(() => decodeSafetensors(new Uint8Array(5))).toThrow(/5 bytes/);
    const huge = new Uint8Array(16);
    new DataView(huge.buffer).setUint32(0, 1000, true);
    expect(() => decodeSafetensors(huge)).toThrow(/1000-byte header in a 16-byte file/);
    expect(() => decodeSafetensors(file("[1]"))).toThrow(/not an object/);
    const broken = file({});
    broken[8] = 0x7b; // "{" then garbage
    broken[9] = 0x7b;
    expect(() => decodeSafetensors(broken)).toThrow(/not JSON/);
    expect(() =>
      decodeSafetensors(
        file({
          a: { dtype: "F16", shape: [2], data_offsets: [0, 4] },
          b: { dtype: "F32", shape: [2], data_offsets: [0, 12] },
          c: { dtype: "F32", shape: [2], data_offsets: [16, 80] },
          d: { dtype: "F32", shape: [2], data_offsets: [4, 12] },
          e: { dtype: "F32", shape: [2], data_offsets: [0, 8] },
        }),
      ),
    ).toThrow(
      /a is F16, not F32; b has 12 bytes for shape \[2\]; c's byte range is outside the file's 24 bytes of data; d overlaps e/,
    );
    expect(() => encodeSafetensors([tensors[0]!, tensors[0]!])).toThrow(/is taken/);
    expect(() => encodeSafetensors([{ ...tensors[0]!, shape: [4] }])).toThrow(/6 values/);
  });
});
