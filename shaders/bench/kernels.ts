// `pnpm bench:kernels`: serves bench/page with Vite, opens it in Debian's headless Chromium with
// WebGPU (the same flags as the tests), runs the benchmark in the page and prints the figures.
// On a machine without a GPU the adapter is SwiftShader, which runs WebGPU on the CPU: every
// figure is then a CPU figure, and the table says so. `--gpt`: only the GPT's figures.
import { fileURLToPath } from "node:url";
import { chromium } from "playwright";
import { createServer } from "vite";
import { chromiumArgs, chromiumPath } from "../../scripts/chromium.ts";
import type { BenchResult } from "./page/main.ts";
import { ATTENTION_SHAPES, BATCHES, GPT_BATCH, printReport, SHAPES } from "./report.ts";

const server = await createServer({
  root: fileURLToPath(new URL("./page", import.meta.url)),
  configFile: false,
  logLevel: "warn",
  // Pre-bundled up front: a dependency found mid-run makes Vite reload the page.
  optimizeDeps: {
    include: [
      "@tensorflow/tfjs-core",
      "@tensorflow/tfjs-core/dist/register_all_gradients",
      "@tensorflow/tfjs-backend-webgpu",
      "@jax-js/jax",
    ],
  },
  server: {
    host: "localhost",
    port: 0,
    fs: { allow: [fileURLToPath(new URL("../..", import.meta.url))] },
  },
});
await server.listen();
const url = server.resolvedUrls?.local[0];
if (!url) throw new Error("vite did not report a local URL");

const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
try {
  const page = await browser.newPage();
  page.setDefaultTimeout(0);
  page.on("console", (message) => {
    if (message.text().startsWith("[bench]")) console.error(message.text());
  });
  page.on("pageerror", (error) => console.error(`[page error] ${error.message}`));
  await page.goto(url);
  await page.waitForFunction(() => "runBench" in globalThis);
  const result: BenchResult = await page.evaluate(
    (options) =>
      (globalThis as unknown as { runBench: (o: typeof options) => Promise<BenchResult> }).runBench(
        options,
      ),
    {
      shapes: SHAPES,
      batches: BATCHES,
      attentionShapes: ATTENTION_SHAPES,
      gptBatch: GPT_BATCH,
      gptOnly: process.argv.includes("--gpt"),
    },
  );
  printReport(result);
} finally {
  await browser.close();
  await server.close();
}
