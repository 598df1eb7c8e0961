// `pnpm bench:kernels:dawn`: the benchmark of bench/page/main.ts run in Node through Dawn (the
// `webgpu` package) instead of Chromium: for a machine with a real GPU and no browser. It is
// built into one file first (bench/dawn.vite.config.ts: the WGSL, MNIST and the peers bundled),
// so it can be copied to such a machine with a Node binary and dawn.node beside it.
//   DAWN_FLAGS   comma-separated Dawn toggles for create(), e.g. "backend=vulkan"
// On a Linux GPU machine Dawn needs the Vulkan loader (libvulkan1) and, for NVIDIA, libglvnd
// (libglvnd0, libglx0) beside the driver's ICD; VK_DRIVER_FILES names the ICD if it is not found.
// On a machine without a GPU, point VK_ICD_FILENAMES at Chromium's SwiftShader ICD
// (/usr/lib/chromium/vk_swiftshader_icd.json) to run it on the CPU.
import "./dawn-globals.ts";
import { runBench } from "./page/main.ts";
import { ATTENTION_SHAPES, BATCHES, GPT_BATCH, printReport, SHAPES } from "./report.ts";

printReport(
  await runBench({
    shapes: SHAPES,
    batches: BATCHES,
    attentionShapes: ATTENTION_SHAPES,
    gptBatch: GPT_BATCH,
  }),
);
// dawn.node keeps its instance alive; the figures are printed, so leave.
process.exit(0);
