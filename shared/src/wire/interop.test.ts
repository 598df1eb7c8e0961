// Wire compatibility with an independent implementation: Cap'n Proto's own C++ `capnp` tool
// (Debian package `capnproto`) decodes what we encode, and we decode what it encodes.
import { execFileSync, spawnSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { sharedRoot } from "../../scripts/gen.ts";
import { decodeMessage, encodeMessage } from "./codec.ts";
import { sampleMessages } from "./fixtures.ts";
import type { WireMessage } from "./messages.ts";

const capnpBinary = process.env.CAPNP ?? "capnp";
const hasCapnp = spawnSync(capnpBinary, ["--version"]).status === 0;
if (!hasCapnp && process.env.CI) {
  throw new Error(
    `CI must test wire interop, but \`${capnpBinary}\` is missing: apt-get install capnproto`,
  );
}
const schema = join(sharedRoot, "schema/pangea.capnp");

function capnp(args: string[], input: Uint8Array | string): Buffer {
  // kj warns when PWD disagrees with the working directory (vitest changes it): keep them equal.
  return execFileSync(capnpBinary, args, {
    input,
    cwd: sharedRoot,
    env: { ...process.env, PWD: sharedRoot },
    maxBuffer: 256 * 1024 * 1024,
  });
}
const decodeText = (frame: Uint8Array) =>
  capnp(["decode", "--short", schema, "Message"], frame).toString("utf8").trim();
const encodeText = (text: string) => new Uint8Array(capnp(["encode", schema, "Message"], text));

function decoded(frame: Uint8Array): WireMessage {
  const result = decodeMessage(frame);
  if (!result.ok) throw result.error;
  return result.message;
}

describe.skipIf(!hasCapnp)(
  hasCapnp
    ? "interop with the C++ capnp tool"
    : "interop with the C++ capnp tool (skipped: `capnp` is not installed; apt-get install capnproto)",
  () => {
    it("capnp decodes our frames to the expected text", () => {
      const frame = encodeMessage({
        messageId: "m1",
        sender: "s1",
        recipient: "coordinator",
        timestamp: 1_700_000_000_000,
        payload: {
          type: "gradientUpdate",
          gradientId: "g1",
          gradients: [
            { name: "w", shape: [2, 2], dtype: "float32", data: new Float32Array([1, -2, 0.5, 3]) },
          ],
          loss: 0.25,
          timestamp: 5,
          nodeId: "n",
          batchId: "b7",
          leaseId: 42,
          baseVersion: 9,
          sampleCount: 64,
          encoding: "fp32",
          kind: "gradient",
          correct: 3,
        },
      });
      expect(decodeText(frame)).toBe(
        '(messageId = "m1", messageType = gradientSync, sender = "s1", recipient = "coordinator", ' +
          'payload = (gradientUpdate = (gradientId = "g1", gradients = [(shape = [2, 2], dtype = float32, ' +
          'data = "\\000\\000\\200?\\000\\000\\000\\300\\000\\000\\000?\\000\\000@@", scale = 0, name = "w")], ' +
          'loss = 0.25, timestamp = 5, nodeId = "n", batchId = "b7", leaseId = 42, baseVersion = 9, ' +
          "sampleCount = 64, encoding = fp32, kind = gradient, correct = 3, innerSteps = 0)), " +
          "timestamp = 1700000000000)",
      );

      const error = encodeMessage({
        messageId: "e1",
        sender: "coordinator",
        recipient: "s1",
        timestamp: 3,
        payload: {
          type: "error",
          code: "shapeMismatch",
          message: "dense0.weight: [784, 128] ≠ [10]",
          ref: "m1",
          retryAfterMs: 0,
        },
      });
      expect(decodeText(error)).toBe(
        '(messageId = "e1", messageType = error, sender = "coordinator", recipient = "s1", ' +
          'payload = (error = (code = shapeMismatch, message = "dense0.weight: [784, 128] ≠ [10]", ' +
          'ref = "m1", retryAfterMs = 0)), timestamp = 3)',
      );
    });

    it("our codec decodes what capnp encodes from text", () => {
      const heartbeat = decoded(
        encodeText(
          '(messageId = "t1", messageType = heartbeat, sender = "s-2", payload = (heartbeat = (sentAt = 42, samplesPerSecond = 1.5)), timestamp = 9)',
        ),
      );
      expect(heartbeat).toEqual({
        messageId: "t1",
        sender: "s-2",
        recipient: "",
        timestamp: 9,
        payload: { type: "heartbeat", sentAt: 42, samplesPerSecond: 1.5 },
      });

      const update = decoded(
        encodeText(
          '(messageId = "u", messageType = gradientSync, payload = (gradientUpdate = (gradients = [' +
            '(shape = [3], dtype = float16, data = "\\x00\\x3c\\x00\\xc0\\x00\\x38"), ' +
            '(shape = [2], dtype = int8, scale = 0.5, data = "\\x02\\xfd")], ' +
            "leaseId = 4503599627370495, encoding = fp16, kind = parameterDelta, innerSteps = 8)))",
        ),
      );
      if (update.payload.type !== "gradientUpdate") throw new Error("wrong variant");
      expect(update.payload.leaseId).toBe(2 ** 52 - 1);
      expect(update.payload.kind).toBe("parameterDelta");
      expect(update.payload.innerSteps).toBe(8);
      const [half, quantized] = update.payload.gradients;
      expect(half).toMatchObject({ shape: [3], dtype: "float32", wire: "float16" });
      expect([...half!.data]).toEqual([1, -2, 0.5]);
      expect(quantized).toMatchObject({ shape: [2], dtype: "float32", wire: "int8", scale: 0.5 });
      expect([...quantized!.data]).toEqual([1, -1.5]);
    });

    it("refuses, with a typed error, a frame capnp encodes that breaks our rules", () => {
      const result = decodeMessage(
        encodeText(
          '(messageType = gradientSync, payload = (gradientUpdate = (gradients = [(shape = [4], dtype = float32, data = "abc")])))',
        ),
      );
      expect(!result.ok && result.error.code).toBe("tensor");
    });

    it.each(sampleMessages().map((m) => [m.payload.type, m] as const))(
      "every message survives ours → capnp decode → capnp encode → ours: %s",
      (_type, message) => {
        const ours = encodeMessage(message);
        const text = decodeText(ours);
        const theirs = encodeText(text);
        expect(decoded(theirs)).toEqual(decoded(ours));
      },
    );
  },
);
