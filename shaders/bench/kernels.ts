// `pnpm bench:kernels`: serves bench/page with Vite, opens it in Debian's headless Chromium with
// WebGPU (the same flags as the tests), runs the benchmark in the page and prints the figures.
// On a machine without a GPU the adapter is SwiftShader, which runs WebGPU on the CPU: every
// figure is then a CPU figure, and the table says so.
import { fileURLToPath } from "node:url";
import { chromium } from "playwright";
import { createServer } from "vite";
import { chromiumArgs, chromiumPath } from "../../scripts/chromium.ts";
import type { BenchResult } from "./page/main.ts";

const SHAPES: Array<[number, number, number]> = [
  [128, 784, 128],
  [256, 784, 256],
  [1024, 1024, 1024],
];
const BATCHES = [64, 128, 256];

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
    { shapes: SHAPES, batches: BATCHES },
  );
  print(result);
} finally {
  await browser.close();
  await server.close();
}

function print({ adapter, userAgent, matmul, training }: BenchResult): void {
  const unit = adapter.softwareFallback ? " [CPU: software WebGPU]" : "";
  console.log(
    `\nadapter: ${adapter.description}${adapter.softwareFallback ? " — a software fallback: these are CPU figures, not GPU figures" : ""}`,
  );
  console.log(`browser: ${userAgent}\n`);
  console.log(`matmul C[M,N] = A[M,K]·B[K,N], fp32, GFLOPS${unit}`);
  const libraries = [...new Set(matmul.map((r) => r.library))];
  console.log(
    [
      "M×K×N".padEnd(16),
      ...libraries.map((l) => l.padStart(14)),
      "  pangea/tfjs",
      "  pangea/jax",
    ].join(""),
  );
  for (const shape of SHAPES) {
    const rows = matmul.filter((r) => r.shape.join() === shape.join());
    const g = (library: string) => rows.find((r) => r.library === library)?.gflops ?? null;
    const ratio = (other: string) => {
      const a = g("pangea");
      const b = g(other);
      return a !== null && b !== null ? `${(a / b).toFixed(2)}x` : "—";
    };
    console.log(
      [
        shape.join("×").padEnd(16),
        ...libraries.map((l) => (g(l)?.toFixed(2) ?? "—").padStart(14)),
        ratio("tfjs-webgpu").padStart(13),
        ratio("jax-js").padStart(12),
      ].join(""),
    );
  }
  for (const row of matmul.filter((r) => r.note))
    console.log(`  ${row.library} ${row.shape.join("×")}: ${row.note}`);

  console.log(`\nMLP 784-128-10 training, SGD with momentum, samples/s${unit}`);
  console.log(
    [
      "batch".padEnd(8),
      "pangea".padStart(12),
      "tfjs-webgpu".padStart(14),
      "ratio".padStart(9),
      "   loss after 8 steps (pangea / tfjs)",
    ].join(""),
  );
  for (const batch of BATCHES) {
    const row = (library: string) =>
      training.find((r) => r.batch === batch && r.library === library);
    const ours = row("pangea");
    const tf = row("tfjs-webgpu");
    const ratio =
      ours?.samplesPerSecond && tf?.samplesPerSecond
        ? `${(ours.samplesPerSecond / tf.samplesPerSecond).toFixed(2)}x`
        : "—";
    console.log(
      [
        String(batch).padEnd(8),
        (ours?.samplesPerSecond?.toFixed(0) ?? "—").padStart(12),
        (tf?.samplesPerSecond?.toFixed(0) ?? "—").padStart(14),
        ratio.padStart(9),
        `   ${ours?.loss?.toFixed(4) ?? "—"} / ${tf?.loss?.toFixed(4) ?? "—"}`,
      ].join(""),
    );
  }
  for (const row of training.filter((r) => r.note))
    console.log(`  ${row.library} batch ${row.batch}: ${row.note}`);
}
