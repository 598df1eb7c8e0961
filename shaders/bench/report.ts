// The table `pnpm bench:kernels` prints, from the page's result: shared by the Chromium run and
// the Dawn-for-Node run (kernels-dawn.ts), so both report the same figures the same way.
import type { BenchResult } from "./page/main.ts";

export const SHAPES: Array<[number, number, number]> = [
  [128, 784, 128],
  [256, 784, 256],
  [1024, 1024, 1024],
];
export const BATCHES = [64, 128, 256];
/** B, T, C, H: the Shakespeare GPT's attention, and nanoGPT shakespeare-char's at batch 4. */
export const ATTENTION_SHAPES: Array<[number, number, number, number]> = [
  [16, 64, 64, 4],
  [4, 256, 384, 6],
];
export const GPT_BATCH = 16;

export function printReport({
  adapter,
  userAgent,
  matmul,
  training,
  attention,
  gpt,
}: BenchResult): void {
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

  console.log(`\ncausal attention forward + backward, ms per call${unit}`);
  console.log(
    [
      "B×T×C×H".padEnd(18),
      "pangea".padStart(10),
      "tfjs-webgpu".padStart(14),
      "tfjs/pangea".padStart(13),
    ].join(""),
  );
  for (const shape of ATTENTION_SHAPES) {
    const ms = (library: string) =>
      attention.find((r) => r.shape.join() === shape.join() && r.library === library)
        ?.milliseconds ?? null;
    const ours = ms("pangea");
    const tf = ms("tfjs-webgpu");
    console.log(
      [
        shape.join("×").padEnd(18),
        (ours?.toFixed(2) ?? "—").padStart(10),
        (tf?.toFixed(2) ?? "—").padStart(14),
        (ours && tf ? `${(tf / ours).toFixed(2)}x` : "—").padStart(13),
      ].join(""),
    );
  }
  for (const row of attention.filter((r) => r.note))
    console.log(`  ${row.library} ${row.shape.join("×")}: ${row.note}`);

  console.log(
    `\nGPT 2 layers × 4 heads × 64 wide, context 64, batch ${GPT_BATCH}, Adam: training tokens/s${unit}`,
  );
  const ours = gpt.find((r) => r.library === "pangea")?.tokensPerSecond ?? null;
  for (const row of gpt) {
    const ratio =
      ours && row.tokensPerSecond && row.library !== "pangea"
        ? `  pangea/${row.library} ${(ours / row.tokensPerSecond).toFixed(2)}x`
        : "";
    console.log(
      `${row.library.padEnd(14)}${(row.tokensPerSecond?.toFixed(0) ?? "—").padStart(10)} tokens/s   loss after 5 steps ${row.loss?.toFixed(4) ?? "—"}${ratio}${row.note ? `  (${row.note})` : ""}`,
    );
  }
}
