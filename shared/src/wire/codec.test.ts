import * as capnp from "capnp-es";
import { describe, expect, it } from "vitest";
import * as gen from "../gen/pangea.ts";
import { decodeMessage, encodeMessage, FrameEncoder } from "./codec.ts";
import { randomFloats, sampleMessages } from "./fixtures.ts";
import type { Payload, Tensor, WireMessage } from "./messages.ts";
import type { WireErrorCode } from "./wire-error.ts";

/** What the decoder gives back for a message: empty names and absent optionals made explicit. */
function normalized(message: WireMessage): WireMessage {
  const tensor = (t: Tensor): Tensor => {
    const { name, ...rest } = t;
    return name ? { ...rest, name } : rest;
  };
  const p = message.payload as Payload & Record<string, unknown>;
  const out: Record<string, unknown> = { ...p };
  for (const key of ["gradients", "parameters", "tensors"]) {
    if (Array.isArray(p[key])) out[key] = (p[key] as Tensor[]).map(tensor);
  }
  const batch = (b: Record<string, unknown>) => ({
    metadata: {},
    epoch: 0,
    index: 0,
    ...b,
    samples: tensor(b.samples as Tensor),
    labels: tensor(b.labels as Tensor),
  });
  if (p.type === "trainingBatch") Object.assign(out, batch(p));
  if (p.type === "lease" && !p.heldOut)
    out.batch = batch(p.batch as unknown as Record<string, unknown>);
  if (p.type === "gradientUpdate")
    Object.assign(out, { correct: 0, innerSteps: 0, ...p, gradients: out.gradients });
  return { ...message, payload: out as Payload };
}

function refusal(frame: Uint8Array, limits = {}): WireErrorCode {
  const result = decodeMessage(frame, limits);
  if (result.ok) throw new Error("the frame was accepted");
  return result.error.code;
}

const gradient = (
  data: Float32Array,
  shape: number[],
  encoding: "fp32" | "fp16" | "int8" = "fp32",
): WireMessage => ({
  messageId: "m",
  sender: "s",
  recipient: "coordinator",
  timestamp: 1,
  payload: {
    type: "gradientUpdate",
    gradientId: "g",
    gradients: [{ shape, dtype: "float32", data }],
    loss: 1,
    timestamp: 2,
    nodeId: "s",
    batchId: "b",
    leaseId: 3,
    baseVersion: 4,
    sampleCount: 5,
    encoding,
    kind: "gradient",
  },
});

describe("codec round trips", () => {
  it.each(sampleMessages().map((m) => [m.payload.type, m] as const))(
    "decodes what it encodes: %s",
    (_type, message) => {
      const result = decodeMessage(encodeMessage(message));
      expect(result.ok && result.message).toEqual(normalized(message));
    },
  );

  it("reads fp32 tensors as views over the frame, without a copy", () => {
    const frame = encodeMessage(gradient(randomFloats(1000), [10, 100]));
    const result = decodeMessage(frame);
    if (!result.ok || result.message.payload.type !== "gradientUpdate") throw new Error("decode");
    const data = result.message.payload.gradients[0]!.data;
    expect(data.buffer).toBe(frame.buffer);
    expect(data).toEqual(randomFloats(1000));
  });

  it("copies a tensor once when the frame sits at an unaligned offset", () => {
    const frame = encodeMessage(gradient(randomFloats(33), [33]));
    const shifted = new Uint8Array(frame.byteLength + 1).subarray(1);
    shifted.set(frame);
    const result = decodeMessage(shifted);
    if (!result.ok || result.message.payload.type !== "gradientUpdate") throw new Error("decode");
    expect(result.message.payload.gradients[0]!.data).toEqual(randomFloats(33));
  });

  it("sends fp16 at half the bytes and decodes it to fp32 within fp16 precision", () => {
    const values = randomFloats(4096, 3, 10);
    const fp32 = encodeMessage(gradient(values, [4096]));
    const fp16 = encodeMessage(gradient(values, [4096], "fp16"));
    expect(fp16.byteLength - 8192).toBeLessThan(fp32.byteLength - 16384 + 64);
    const result = decodeMessage(fp16);
    if (!result.ok || result.message.payload.type !== "gradientUpdate") throw new Error("decode");
    const t = result.message.payload.gradients[0]!;
    expect(t.wire).toBe("float16");
    expect(t.dtype).toBe("float32");
    for (let i = 0; i < values.length; i++) {
      expect(Math.abs(t.data[i]! - values[i]!)).toBeLessThanOrEqual(
        Math.abs(values[i]!) * 2 ** -11 + 2 ** -24,
      );
    }
  });

  it("sends int8 with a per-tensor scale and decodes it within half a step", () => {
    const values = randomFloats(4096, 4, 3);
    const result = decodeMessage(encodeMessage(gradient(values, [64, 64], "int8")));
    if (!result.ok || result.message.payload.type !== "gradientUpdate") throw new Error("decode");
    const t = result.message.payload.gradients[0]!;
    const maxAbs = values.reduce((m, v) => Math.max(m, Math.abs(v)), 0);
    expect(t.scale).toBeCloseTo(maxAbs / 127, 6);
    for (let i = 0; i < values.length; i++) {
      expect(Math.abs(t.data[i]! - values[i]!)).toBeLessThanOrEqual(t.scale! / 2 + 1e-6);
    }
  });

  it("reuses one buffer across frames with a FrameEncoder", () => {
    const encoder = new FrameEncoder(1024);
    const a = encoder.encode(gradient(randomFloats(5000, 1), [5000]));
    const aBuffer = a.buffer;
    const b = encoder.encode(gradient(randomFloats(10, 2), [10]));
    expect(b.buffer).toBe(aBuffer);
    const result = decodeMessage(b);
    expect(
      result.ok &&
        result.message.payload.type === "gradientUpdate" &&
        result.message.payload.gradients[0]!.data,
    ).toEqual(randomFloats(10, 2));
  });

  it("encodes byte-identical frames for the same message, whatever the buffer held before", () => {
    const encoder = new FrameEncoder();
    encoder.encode(gradient(randomFloats(777, 9), [777]));
    for (const message of sampleMessages()) {
      expect(encoder.encode(message)).toEqual(encodeMessage(message));
    }
  });

  it("refuses to encode data that does not match its shape, or NaNs into int8", () => {
    expect(() => encodeMessage(gradient(new Float32Array(3), [2, 2]))).toThrow(
      /needs 4 float32 values/,
    );
    expect(() => encodeMessage(gradient(new Float32Array([1, Number.NaN]), [2], "int8"))).toThrow(
      /non-finite/,
    );
  });
});

describe("codec and capnp-es agree", () => {
  it("capnp-es reads the frames our codec writes", () => {
    const message = sampleMessages().find((m) => m.payload.type === "gradientUpdate")!;
    const frame = encodeMessage(message);
    const root = new capnp.Message(frame, false).getRoot(gen.Message);
    expect(root.messageId).toBe(message.messageId);
    expect(root.messageType).toBe(gen.MessageType.GRADIENT_SYNC);
    expect(root.payload.which()).toBe(gen.Message_Payload.GRADIENT_UPDATE);
    const update = root.payload.gradientUpdate;
    expect(update.leaseId).toBe(2n ** 40n + 5n);
    expect(update.sampleCount).toBe(64);
    const first = update.gradients.get(0);
    expect(first.name).toBe("dense0.weight");
    expect([...first.shape]).toEqual([4, 3]);
    const payload = message.payload as Extract<Payload, { type: "gradientUpdate" }>;
    expect(new Float32Array(first.data.toArrayBuffer())).toEqual(payload.gradients[0]!.data);

    const welcome = sampleMessages().find((m) => m.payload.type === "welcome")!;
    const w = new capnp.Message(encodeMessage(welcome), false).getRoot(gen.Message).payload.welcome;
    expect(w.model.layers.get(1).kind.dense.outputs).toBe(128);
    expect(w.model.layers.get(0).kind.which()).toBe(gen.Layer_Kind.FLATTEN);
    expect(w.training.updateEncoding).toBe(gen.Encoding.FP16);
    expect(w.model._hasTransformer()).toBe(false);

    const gptWelcome = sampleMessages().find(
      (m) => m.payload.type === "welcome" && m.payload.model.transformer,
    )!;
    const g = new capnp.Message(encodeMessage(gptWelcome), false).getRoot(gen.Message).payload
      .welcome.model.transformer;
    expect([g.vocabSize, g.contextLength, g.layers, g.heads, g.width, g.dropout]).toEqual([
      65, 64, 2, 4, 64, 0.125,
    ]);

    // An evaluation lease and its report.
    const evalLease = sampleMessages().find(
      (m) => m.payload.type === "lease" && m.payload.heldOut,
    )!;
    const h = new capnp.Message(encodeMessage(evalLease), false).getRoot(gen.Message).payload.lease
      .heldOut;
    expect([[...h.offsets], h.sampleTokens, h.prompt, h.seed]).toEqual([
      [0, 71, 2 ** 31 + 3],
      160,
      "ROMEO:",
      2 ** 32 - 1,
    ]);
    const report = sampleMessages().find((m) => m.payload.type === "evaluation")!;
    const e = new capnp.Message(encodeMessage(report), false).getRoot(gen.Message);
    expect(e.messageType).toBe(gen.MessageType.EVALUATION);
    const r = e.payload.evaluation;
    expect([r.leaseId, r.version, r.loss, r.correct, r.sample]).toEqual([
      2n ** 40n + 6n,
      12n,
      17.123456789012344,
      1234,
      "ROMEO: — ü",
    ]);
  });

  it("our codec reads a transformer spec capnp-es writes", () => {
    const m = new capnp.Message();
    const root = m.initRoot(gen.Message);
    root.messageType = gen.MessageType.WELCOME;
    const welcome = root.payload._initWelcome();
    const model = welcome._initModel();
    model.name = "gpt";
    model._initInputShape(1).set(0, 256);
    const t = model._initTransformer();
    t.vocabSize = 65;
    t.contextLength = 256;
    t.layers = 6;
    t.heads = 6;
    t.width = 384;
    t.dropout = 0.25;
    welcome._initTraining();
    const result = decodeMessage(new Uint8Array(m.toArrayBuffer()));
    if (!result.ok || result.message.payload.type !== "welcome")
      throw new Error(String(!result.ok && result.error));
    expect(result.message.payload.model.transformer).toEqual({
      vocabSize: 65,
      contextLength: 256,
      layers: 6,
      heads: 6,
      width: 384,
      dropout: 0.25,
    });
    expect(result.message.payload.model.layers).toEqual([]);
  });

  it("our codec reads the frames capnp-es writes", () => {
    const m = new capnp.Message();
    const root = m.initRoot(gen.Message);
    root.messageId = "from-capnp-es";
    root.messageType = gen.MessageType.GRADIENT_SYNC;
    root.timestamp = 77n;
    const update = root.payload._initGradientUpdate();
    update.leaseId = 2n ** 52n;
    update.encoding = gen.Encoding.FP32;
    const tensor = update._initGradients(1).get(0);
    const shape = tensor._initShape(2);
    shape.set(0, 2);
    shape.set(1, 3);
    tensor.dtype = gen.DataType.FLOAT32;
    const values = randomFloats(6, 11);
    tensor._initData(24).copyBuffer(values);
    const result = decodeMessage(new Uint8Array(m.toArrayBuffer()));
    if (!result.ok || result.message.payload.type !== "gradientUpdate")
      throw new Error(String(!result.ok && result.error));
    expect(result.message.messageId).toBe("from-capnp-es");
    expect(result.message.timestamp).toBe(77);
    expect(result.message.payload.leaseId).toBe(2 ** 52);
    expect(result.message.payload.gradients[0]!.shape).toEqual([2, 3]);
    expect(result.message.payload.gradients[0]!.data).toEqual(values);
  });
});

// --- hand-made hostile frames -------------------------------------------------------------------

/** A frame from a segment table and 64-bit words (little-endian), nothing checked. */
function rawFrame(segmentWords: number[], words: bigint[]): Uint8Array {
  const tableBytes = (4 + 4 * segmentWords.length + 7) & ~7;
  const out = new Uint8Array(tableBytes + words.length * 8);
  const dv = new DataView(out.buffer);
  dv.setUint32(0, segmentWords.length - 1, true);
  for (const [i, w] of segmentWords.entries()) dv.setUint32(4 + 4 * i, w, true);
  for (const [i, w] of words.entries()) dv.setBigUint64(tableBytes + 8 * i, w, true);
  return out;
}
const structPtr = (offset: number, dataWords: number, ptrs: number) =>
  (BigInt(ptrs) << 48n) | (BigInt(dataWords) << 32n) | BigInt(((offset << 2) >>> 0) & 0xfffffffc);
const listPtr = (offset: number, elementSize: number, count: number) =>
  (BigInt(count) << 35n) | (BigInt(elementSize) << 32n) | BigInt(((offset << 2) | 1) >>> 0);

/** Message(dataWords 2, pointers 4) whose payload is a gradientUpdate struct at word 7. */
function gradientUpdateFrame(updateWords: bigint[], updatePtrs = 5, updateData = 5): Uint8Array {
  return rawFrame(
    [7 + updateWords.length],
    [
      structPtr(0, 2, 4),
      2n | (5n << 16n), // messageType gradientSync, payload discriminant 5 (gradientUpdate)
      0n,
      0n,
      0n,
      0n,
      structPtr(0, updateData, updatePtrs), // pointer 3 (payload), at word 6, to word 7
      ...updateWords,
    ],
  );
}

describe("codec refusals", () => {
  it("refuses the 16-byte frame that declares 0x7fffffff segments, without allocating", () => {
    const frame = new Uint8Array(16);
    new DataView(frame.buffer).setUint32(0, 0x7ffffffe, true);
    expect(refusal(frame)).toBe("segment-table");
  });

  it("refuses 512 segments or more, sizes past the frame, and trailing bytes", () => {
    expect(refusal(rawFrame(new Array(512).fill(0), [0n]))).toBe("segment-table");
    expect(refusal(rawFrame([5], [0n]))).toBe("segment-table");
    expect(refusal(rawFrame([1], [structPtr(0, 0, 0), 0n]))).toBe("segment-table");
    expect(refusal(rawFrame([0], []))).toBe("segment-table");
  });

  it("refuses frames too short, ragged, or over the size limit", () => {
    expect(refusal(new Uint8Array(4))).toBe("frame-too-short");
    expect(refusal(new Uint8Array(12))).toBe("segment-table");
    const big = encodeMessage(gradient(randomFloats(4096), [4096]));
    expect(refusal(big, { maxFrameBytes: 1024 })).toBe("frame-too-large");
  });

  it("refuses pointers out of their segment, capabilities and far pointers to nowhere", () => {
    expect(refusal(rawFrame([1], [structPtr(5, 1, 0)]))).toBe("pointer");
    expect(refusal(rawFrame([2], [structPtr(0, 2, 0), 0n]))).toBe("pointer");
    expect(refusal(rawFrame([1], [3n]))).toBe("pointer");
    expect(refusal(rawFrame([1], [(7n << 32n) | 2n]))).toBe("pointer");
  });

  it("refuses a list that claims more bytes than the frame holds", () => {
    // gradientUpdate.gradientId (pointer 0) as a byte list of 2^29 - 1 bytes.
    const words = [0n, 0n, 0n, 0n, 0n, listPtr(4, 2, 2 ** 29 - 1), 0n, 0n, 0n, 0n];
    expect(refusal(gradientUpdateFrame(words))).toBe("pointer");
  });

  it("refuses a tiny list of zero-sized structs that would make the decoder loop (amplification)", () => {
    // gradients (pointer 1): a composite list of 0 words whose tag declares 2^29 - 1 empty elements.
    const words = [0n, 0n, 0n, 0n, 0n, 0n, listPtr(3, 7, 0), 0n, 0n, 0n, BigInt((2 ** 29 - 1) * 4)];
    expect(refusal(gradientUpdateFrame(words))).toBe("traversal-limit");
  });

  it("refuses nesting deeper than the limit", () => {
    const welcome = sampleMessages().find((m) => m.payload.type === "welcome")!;
    expect(refusal(encodeMessage(welcome), { maxDepth: 2 })).toBe("depth-limit");
  });

  it("refuses Text without its NUL or not UTF-8", () => {
    const frame = encodeMessage({ ...gradient(new Float32Array(1), [1]), messageId: "xyz" });
    const at = frame.findIndex(
      (b, i) => b === 0x78 && frame[i + 1] === 0x79 && frame[i + 2] === 0x7a,
    );
    const noNul = frame.slice();
    noNul[at + 3] = 0x41;
    expect(refusal(noNul)).toBe("text");
    const badUtf8 = frame.slice();
    badUtf8[at] = 0xff;
    expect(refusal(badUtf8)).toBe("text");
  });

  it("refuses unknown enumerants, a payload under the wrong messageType, and UInt64 of 2^53", () => {
    const frame = encodeMessage(gradient(new Float32Array(1), [1]));
    const dv = (f: Uint8Array) => new DataView(f.buffer, f.byteOffset);
    const unknownType = frame.slice();
    dv(unknownType).setUint16(16, 99, true); // Message.messageType
    expect(refusal(unknownType)).toBe("enum");
    const wrongType = frame.slice();
    dv(wrongType).setUint16(16, 3, true); // heartbeat
    expect(refusal(wrongType)).toBe("message");
    const huge = frame.slice();
    dv(huge).setUint32(28, 0x200000, true); // the high half of Message.timestamp
    expect(refusal(huge)).toBe("integer");
  });

  it("refuses a tensor whose bytes do not match its shape and dtype", () => {
    const frame = encodeMessage(gradient(new Float32Array(77), [7, 11]));
    const at = frame.findIndex((b, i) => b === 7 && frame[i + 4] === 11 && frame[i + 1] === 0);
    const wrong = frame.slice();
    wrong[at] = 8;
    expect(refusal(wrong)).toBe("tensor");
  });

  it("refuses a non-finite int8 scale", () => {
    const message = gradient(new Float32Array([0.5, -1]), [2], "int8");
    const frame = encodeMessage(message);
    const scale = Math.fround(1 / 127);
    const bytes = new Uint8Array(new Float32Array([scale]).buffer);
    const at = frame.findIndex((_, i) => bytes.every((b, j) => frame[i + j] === b));
    const wrong = frame.slice();
    new DataView(wrong.buffer).setFloat32(at, Number.POSITIVE_INFINITY, true);
    expect(refusal(wrong)).toBe("tensor");
  });
});
