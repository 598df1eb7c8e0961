// End-to-end: Debian's headless Chromium with WebGPU (SwiftShader where there is no GPU), one
// browser, many pages, against the real coordinator started per spec. `pnpm test:e2e` builds the
// web UI first. Screenshots and downloads land in test-results/.
import { defineConfig } from "@playwright/test";
import type { Backend } from "@pangea/coordinator/server-process";
import { chromiumArgs, chromiumPath } from "../scripts/chromium.ts";

export default defineConfig<{ backend: Backend }>({
  testDir: "./tests",
  testMatch: "*.spec.ts",
  outputDir: "./test-results",
  // Training to a target on a CPU-emulated GPU takes minutes; each wait inside has its own bound.
  timeout: 15 * 60_000,
  expect: { timeout: 30_000 },
  // One spec at a time: the tabs of one spec already share the machine's two cores.
  workers: 1,
  fullyParallel: false,
  reporter: process.env.CI ? [["list"]] : [["list"], ["html", { open: "never" }]],
  use: {
    launchOptions: { executablePath: chromiumPath, args: chromiumArgs },
    screenshot: "only-on-failure",
    acceptDownloads: true,
  },
  // The same specs against either coordinator: `backend` (support/fixtures.ts). The edge
  // project runs the restart spec (tabs training MNIST through a SIGKILL of `wrangler dev`), the
  // dashboard's GPT run (three tabs, one closing and one joining) and a brought dataset (R2). The MNIST churn spec runs
  // on Node only: what it adds for the edge (each batch committed once while tabs come and go)
  // is the core suite's, which also runs inside workerd, and CI has 45 minutes.
  projects: [
    { name: "node", use: { browserName: "chromium", backend: "node" } },
    {
      name: "edge",
      use: { browserName: "chromium", backend: "edge" },
      testMatch: ["restart.spec.ts", "dashboard.spec.ts", "datasets.spec.ts"],
    },
  ],
});
