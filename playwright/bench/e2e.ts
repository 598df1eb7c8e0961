// `pnpm bench:e2e`: the whole system end to end. For 1, 2 and 4 contributor tabs of one headless
// Chromium (WebGPU; SwiftShader on a machine without a GPU), a fresh coordinator and the demo
// run's settings with a 95% stop: the wall time from the first tab's click to the coordinator's
// own evaluation reaching 95%, the samples/s over that time, and the WebSocket bytes per
// training sample (both directions, from /metrics).
import { DEMO_RUN } from "@pangea/coordinator/server";
import { serverProcess } from "@pangea/coordinator/server-process";
import { chromium } from "playwright";
import { chromiumArgs, chromiumPath } from "../../scripts/chromium.ts";

const TARGET = 0.95;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  tabs: number;
  encoding: string;
  seconds: number;
  samples: number;
  versions: number;
  accuracy: number;
  bytesIn: number;
  bytesOut: number;
}

function counter(metrics: string, name: string): number {
  const line = metrics.split("\n").find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(" ")[1]) : Number.NaN;
}

async function measure(tabs: number, encoding: "fp32" | "fp16" = "fp32"): Promise<Row> {
  const server = await serverProcess();
  const browser = await chromium.launch({ executablePath: chromiumPath, args: chromiumArgs });
  try {
    const created = await server.api("/api/runs", {
      method: "POST",
      body: JSON.stringify({
        ...DEMO_RUN,
        name: `bench ${tabs} tabs`,
        updateEncoding: encoding,
        stop: { targetAccuracy: TARGET, epochs: 100 },
      }),
    });
    const { id } = (await created.json()) as { id: string };
    const context = await browser.newContext();
    const pages = [];
    for (let i = 0; i < tabs; i++) {
      const page = await context.newPage();
      await page.goto(`${server.url}/?run=${id}`);
      await page.getByTestId("start").waitFor();
      pages.push(page);
    }
    const t0 = performance.now();
    await Promise.all(pages.map((p) => p.getByTestId("start").click()));
    let status: {
      state: string;
      version: number;
      counters: { samples: number };
      evaluation: { accuracy: number } | null;
    };
    for (;;) {
      status = await (await server.api(`/api/runs/${id}`)).json();
      if (status.state === "finished") break;
      if (performance.now() - t0 > 15 * 60_000)
        throw new Error(`${tabs} tabs: no ${TARGET} in 15 min`);
      await sleep(250);
    }
    const seconds = (performance.now() - t0) / 1000;
    const metrics = await (await fetch(`${server.url}/metrics`)).text();
    await context.close();
    return {
      tabs,
      encoding,
      seconds,
      samples: status.counters.samples,
      versions: status.version,
      accuracy: status.evaluation?.accuracy ?? Number.NaN,
      bytesIn: counter(metrics, "pangea_bytes_in_total"),
      bytesOut: counter(metrics, "pangea_bytes_out_total"),
    };
  } finally {
    await browser.close();
    await server.dispose();
  }
}

console.log(
  `End to end: tabs of one headless Chromium (${chromiumPath}) train the demo MNIST run (784-128-10, asynchronous, AdamW) until the coordinator evaluates ${TARGET * 100}%`,
);
console.log(
  "tabs   updates   wall s   samples   samples/s   versions   accuracy   wire bytes/sample (in + out)",
);
const print = (r: Row) => {
  const perSample = (r.bytesIn + r.bytesOut) / r.samples;
  console.log(
    `${String(r.tabs).padStart(4)}   ${r.encoding.padStart(7)}   ${r.seconds.toFixed(1).padStart(6)}   ${String(r.samples).padStart(7)}   ${(r.samples / r.seconds).toFixed(0).padStart(9)}   ${String(r.versions).padStart(8)}   ${(100 * r.accuracy).toFixed(1).padStart(7)}%   ${perSample.toFixed(0).padStart(8)} (${(r.bytesIn / r.samples).toFixed(0)} + ${(r.bytesOut / r.samples).toFixed(0)})`,
  );
};
const rows: Row[] = [];
for (const tabs of (process.env.PANGEA_BENCH_TABS ?? "1,2,4").split(",").map(Number)) {
  const r = await measure(tabs);
  rows.push(r);
  print(r);
}
// The same run with fp16 updates, packed on the GPU: what compression saves on the wire.
print(await measure(1, "fp16"));
const one = rows[0]!;
for (const r of rows.slice(1))
  console.log(
    `${r.tabs} tabs against 1: ${(one.seconds / r.seconds).toFixed(2)}x the wall-clock speed, ${(r.samples / r.seconds / (one.samples / one.seconds)).toFixed(2)}x the samples/s`,
  );
console.log(
  "A sample's input is 784 float32 (3,136 bytes) and its label 4 bytes; an fp32 gradient is 407 KB per batch of 64.",
);
