// Feeds the decoder 100,000+ hostile frames. Each must end in a decoded message or a WireError
// raised by an explicit check (never "unchecked", never a throw, never a process abort), and the
// process's memory must stay bounded. Seeded, so any failure reproduces.
import { describe, expect, it } from "vitest";
import { decodeMessage, encodeMessage } from "./codec.ts";
import { randomFloats, sampleMessages, seededRandom } from "./fixtures.ts";
import { frameMutations } from "./mutations.ts";
import type { WireErrorCode } from "./wire-error.ts";

const FRAMES_PER_KIND = 15_000;

describe("decoder fuzzing", () => {
  it("ends every hostile frame in a message or a typed refusal, with bounded memory", () => {
    const rand = seededRandom(20261122);
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
    const generators = frameMutations(rand, valid);

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
