import { createHash } from "node:crypto";
import { describe, expect, it } from "vitest";
import { seededRandom } from "./random.ts";
import { installSha256, sha256, sha256Hex } from "./sha256.ts";

describe("sha256Hex", () => {
  it("matches FIPS 180-4's examples and node:crypto at every padding boundary", () => {
    expect(sha256Hex(new TextEncoder().encode("abc"))).toBe(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
    );
    expect(sha256Hex(new Uint8Array(0))).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
    const next = seededRandom(5);
    for (const n of [1, 55, 56, 57, 63, 64, 65, 119, 120, 128, 1000, 100_003]) {
      const bytes = Uint8Array.from({ length: n }, () => Math.floor(next() * 256));
      // A view into a larger buffer, as a shard inside a frame would be.
      const framed = new Uint8Array(n + 7);
      framed.set(bytes, 3);
      expect(sha256Hex(framed.subarray(3, 3 + n))).toBe(
        createHash("sha256").update(bytes).digest("hex"),
      );
    }
  });

  it("gives its 32 bytes, and the same digests once a native SHA-256 is installed", () => {
    const bytes = Uint8Array.from({ length: 4099 }, (_, i) => (i * 31) & 255);
    const expected = createHash("sha256").update(bytes).digest("hex");
    expect(Buffer.from(sha256(bytes)).toString("hex")).toBe(expected);
    let calls = 0;
    installSha256((b) => {
      calls++;
      return createHash("sha256").update(b).digest();
    });
    try {
      expect(sha256Hex(bytes)).toBe(expected);
      expect(Buffer.from(sha256(bytes)).toString("hex")).toBe(expected);
      expect(calls).toBe(2);
    } finally {
      installSha256(undefined);
    }
  });
});
