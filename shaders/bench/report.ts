// The table `pnpm bench:kernels` prints, from the page's result: shared by the Chromium run and
// the Dawn-for-Node run (kernels-dawn.ts), so both report the same figures the same way.
import type { BenchResult } from "./page/main.ts";

export const SHAPES: Array<[number, number, number]> = [
  [128, 784, 128],
  [256, 784, 256],
  [1024, 1024, 1024],
];
export const BATCHES = [64, 128, 256];

export function printReport({ adapter, userAgent, matmul, training }: BenchResult): void {
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
