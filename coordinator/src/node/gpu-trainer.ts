// `pangea worker --gpu`: the WGSL engine through Dawn for Node (the `webgpu` package) where a GPU
// adapter exists, the float64 CPU reference otherwise; it says which at start. This is how a GPU
// server contributes. (Without a GPU, VK_ICD_FILENAMES pointed at a Vulkan ICD such as
// SwiftShader's gives Dawn a software adapter, for trying it out.)
import { register } from "node:module";
import type { Trainer } from "@pangea/shared/client";
import { CpuTrainer } from "../worker/headless-worker.ts";

export async function gpuOrCpuTrainer(): Promise<{ trainer: Trainer; says: string }> {
  register("./wgsl-loader.mjs", import.meta.url);
  let reason: string;
  try {
    const { create, globals } = await import("webgpu");
    // The engine reads WebGPU's constants (GPUBufferUsage, …) as globals, as in a browser.
    Object.assign(globalThis, globals);
    const { acquireDevice, GpuTrainer } = await import("@pangea/shaders/runtime");
    const gpu = await acquireDevice(create([]) as GPU);
    const trainer = new GpuTrainer(
      gpu,
      `pangea-worker (Node ${process.version}, Dawn)`,
      "headless",
    );
    const kind = gpu.adapter.softwareFallback ? "a software fallback" : "hardware";
    return { trainer, says: `GPU: ${gpu.adapter.description} (${kind}), WGSL engine through Dawn` };
  } catch (e) {
    reason = e instanceof Error ? e.message : String(e);
  }
  return {
    trainer: new CpuTrainer(),
    says: `no GPU adapter (${reason}); training on the CPU reference (float64)`,
  };
}
