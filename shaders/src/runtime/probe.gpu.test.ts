import { expect, it } from "vitest";

it("has a WebGPU adapter in this browser", async () => {
  expect(navigator.gpu).toBeDefined();
  const adapter = await navigator.gpu.requestAdapter();
  expect(adapter).not.toBeNull();
  expect(adapter!.limits.maxComputeWorkgroupStorageSize).toBeGreaterThanOrEqual(16384);
});
