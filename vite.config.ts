import { playwright } from "@vitest/browser-playwright";
import { defineConfig } from "vitest/config";
import { chromiumArgs, chromiumPath } from "./scripts/chromium.ts";

// The root Vite config. Today it only drives Vitest across the workspace; the web UI's build
// settings join it with client-web.
export default defineConfig({
  test: {
    reporters: ["default", "./scripts/summary-reporter.ts"],
    projects: [
      {
        test: {
          name: "shared",
          root: "./shared",
          include: ["src/**/*.test.ts", "scripts/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
        },
      },
      {
        test: {
          name: "shaders",
          root: "./shaders",
          include: ["src/**/*.test.ts"],
          exclude: ["src/**/*.gpu.test.ts"],
          environment: "node",
          testTimeout: 60_000,
        },
      },
      {
        // WGSL kernels against their CPU references, in real headless Chromium with WebGPU.
        test: {
          name: "shaders-gpu",
          root: "./shaders",
          include: ["src/**/*.gpu.test.ts"],
          testTimeout: 300_000,
          browser: {
            enabled: true,
            headless: true,
            screenshotFailures: false,
            provider: playwright({
              launchOptions: { executablePath: chromiumPath, args: chromiumArgs },
            }),
            instances: [{ browser: "chromium" }],
          },
        },
      },
      {
        test: {
          name: "client-web",
          root: "./client-web",
          include: ["src/**/*.test.ts"],
          environment: "node",
        },
      },
      {
        test: {
          name: "coordinator",
          root: "./coordinator",
          include: ["src/**/*.test.ts"],
          environment: "node",
          testTimeout: 60_000,
        },
      },
    ],
  },
});
