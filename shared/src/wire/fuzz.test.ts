// Feeds the decoder 100,000+ hostile frames. Each must end in a decoded message or a WireError
// raised by an explicit check (never "unchecked", never a throw, never a process abort), and the
// process's memory must stay bounded. Seeded, so any failure reproduces.
import { describe, expect, it } from "vitest";
import { decodeMessage, encodeMessage } from "./codec.ts";
import { randomFloats, sampleMessages, seededRandom } from "./fixtures.ts";
import type { WireErrorCode } from "./wire-error.ts";

const FRAMES_PER_KIND = 15_000;

describe("decoder fuzzing", () => {
  it("ends every hostile frame in a message or a typed refusal, with bounded memory", () => {
    const rand = seededRandom(20261122);
    const int = (n: number) => Math.floor(rand() * n);
    const valid = [
      ...sampleMessages().map(encodeMessage),
      ...(["fp16", "int8"] as const).map((encoding) => {
        const update = sampleMessages().find((m) => m.payload.type === "gradientUpdate")!;
        const payload = { ...update.payload, encoding } as typeof update.payload;
        return encodeMessage({ ...update, payload });
      }),
      encodeMessage({
        messageId: "big",
        sender: "s",
        recipient: "",
        timestamp: 0,
        payload: {
          type: "parameters",
          version: 1,
          tensors: [{ shape: [64, 64], dtype: "float32", data: randomFloats(4096) }],
        },
      }),
    ];
    const pick = () => valid[int(valid.length)]!;
    const randomBytes = (n: number) => {
      const out = new Uint8Array(n);
      for (let i = 0; i < n; i++) out[i] = int(256);
      return out;
    };
    /** Rewrites the table to one segment holding the rest, so the frame gets past the table. */
    const withHeader = (body: Uint8Array) => {
      const words = Math.floor(body.byteLength / 8);
      const out = new Uint8Array(8 + words * 8);
      out.set(body.subarray(0, words * 8), 8);
      new DataView(out.buffer).setUint32(4, words, true);
      return out;
    };
    const randomPointer = () => {
      const lo = ((int(64) - 32) << 2) | int(4); // a small signed offset and any pointer kind
      const hi = rand() < 0.5 ? int(2 ** 32) : int(16) | (int(16) << 16) | (int(8) << 32);
      return [lo >>> 0, hi >>> 0] as const;
    };

    const generators: Record<string, () => Uint8Array> = {
      random: () => (rand() < 0.5 ? randomBytes(int(600)) : withHeader(randomBytes(8 + int(600)))),
      bitFlipped: () => {
        const f = pick().slice();
        for (let i = 1 + int(8); i > 0; i--) f[int(f.length)]! ^= 1 << int(8);
        return f;
      },
      truncated: () => {
        const f = pick();
        const cut = f.subarray(0, int(f.length));
        return rand() < 0.5 ? cut.slice() : withHeader(cut.subarray(8));
      },
      extended: () => {
        const f = pick();
        const out = new Uint8Array(f.length + 1 + int(200));
        out.set(f);
        out.set(randomBytes(out.length - f.length), f.length);
        return rand() < 0.5 ? out : withHeader(out.subarray(8));
      },
      hostileSegmentTable: () => {
        const counts = [0x7fffffff, 0xffffffff, 511, 512, 1000, 1 + int(600), int(4)];
        const count = counts[int(counts.length)]!;
        const f = new Uint8Array(rand() < 0.3 ? 16 : 8 * (2 + int(300)));
        const dv = new DataView(f.buffer);
        dv.setUint32(0, count, true);
        for (let i = 4; i + 4 <= f.length; i += 4) {
          dv.setUint32(i, rand() < 0.5 ? int(8) : int(2 ** 32), true);
        }
        return f;
      },
      pointerSoup: () => {
        // Deep chains and webs of pointers: every word of a frame a random pointer.
        const words = 2 + int(200);
        const f = new Uint8Array(8 + words * 8);
        const dv = new DataView(f.buffer);
        dv.setUint32(4, words, true);
        for (let w = 0; w < words; w++) {
          const [lo, hi] = rand() < 0.2 ? [0, 0] : randomPointer();
          dv.setUint32(8 + w * 8, lo, true);
          dv.setUint32(12 + w * 8, hi, true);
        }
        // A chain: each struct's only pointer points at the next word (nesting as deep as the frame).
        if (rand() < 0.3) {
          for (let w = 0; w < words; w++) {
            dv.setUint32(8 + w * 8, 0, true);
            dv.setUint32(12 + w * 8, 1 << 16, true);
          }
        }
        return f;
      },
      longLists: () => {
        // A valid frame whose list pointers claim far more elements than the frame holds.
        const f = pick().slice();
        const dv = new DataView(f.buffer);
        for (let w = 1; w * 8 + 8 <= f.length; w++) {
          const lo = dv.getUint32(w * 8, true);
          if ((lo & 3) === 1 && rand() < 0.5) {
            const hi = dv.getUint32(w * 8 + 4, true);
            dv.setUint32(w * 8 + 4, (hi & 7) | ((2 ** 29 - 1 - int(1000)) << 3), true);
          }
        }
        return f;
      },
    };

    const counts: Record<string, number> = {};
    const outcomes: Partial<Record<WireErrorCode | "ok", number>> = {};
    const unchecked: string[] = [];
    globalThis.gc?.();
    const before = process.memoryUsage();
    let frames = 0;
    for (const [kind, make] of Object.entries(generators)) {
      for (let i = 0; i < FRAMES_PER_KIND; i++) {
        const frame = make();
        const result = decodeMessage(frame);
        frames++;
        const outcome = result.ok ? "ok" : result.error.code;
        outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        counts[kind] = (counts[kind] ?? 0) + 1;
        if (!result.ok && result.error.code === "unchecked" && unchecked.length < 5) {
          unchecked.push(
            `${kind}: ${result.error.message} [${Buffer.from(frame).toString("hex").slice(0, 200)}]`,
          );
        }
      }
    }
    globalThis.gc?.();
    const after = process.memoryUsage();
    console.log(`fuzz: ${frames} frames`, counts, "outcomes", outcomes);
    console.log(
      `fuzz: rss ${(before.rss / 2 ** 20).toFixed(0)} → ${(after.rss / 2 ** 20).toFixed(0)} MiB, heap ${(before.heapUsed / 2 ** 20).toFixed(0)} → ${(after.heapUsed / 2 ** 20).toFixed(0)} MiB`,
    );

    expect(frames).toBeGreaterThanOrEqual(100_000);
    expect(unchecked).toEqual([]);
    // Some mutated frames must still decode, or the generators test nothing but the table check.
    expect(outcomes.ok ?? 0).toBeGreaterThan(1000);
    expect(outcomes["segment-table"] ?? 0).toBeGreaterThan(1000);
    expect(outcomes.pointer ?? 0).toBeGreaterThan(1000);
    // No frame may allocate in proportion to what it declares: memory stays within 256 MiB.
    expect(after.rss - before.rss).toBeLessThan(256 * 2 ** 20);
  });
});
