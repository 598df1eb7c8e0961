import { encodeMessage } from "@pangea/shared";
import { sampleMessages } from "@pangea/shared/testing";
import { describe, expect, it } from "vitest";
import { createApp } from "./app.ts";

const app = createApp({ adminToken: "app-test-token" });

describe("the coordinator's HTTP surface", () => {
  it("serves the schema and a plain page", async () => {
    expect(await (await app.request("/schema/pangea.capnp")).text()).toContain(
      "struct GradientUpdate",
    );
    expect(await (await app.request("/")).text()).toContain("Pangea");
  });

  it("decodes a posted frame", async () => {
    const message = sampleMessages().find((m) => m.payload.type === "gradientUpdate")!;
    const res = await app.request("/api/wire/decode", {
      method: "POST",
      body: encodeMessage(message) as Uint8Array<ArrayBuffer>,
    });
    expect(res.status).toBe(200);
    const body = (await res.json()) as { message: { payload: { gradients: unknown[] } } };
    expect(body.message.payload.gradients[0]).toMatchObject({
      name: "dense0.weight",
      shape: [4, 3],
      dtype: "float32",
    });
  });

  it("answers a hostile frame with its typed refusal, not a crash", async () => {
    const frame = new Uint8Array(16);
    new DataView(frame.buffer).setUint32(0, 0x7ffffffe, true);
    const res = await app.request("/api/wire/decode", { method: "POST", body: frame });
    expect(res.status).toBe(400);
    expect(await res.json()).toMatchObject({ ok: false, error: { code: "segment-table" } });
  });
});
