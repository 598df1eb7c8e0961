// The core's suite, a second time, inside workerd (the Workers runtime): the same test files as
// the Node project, with every Store a Durable Object's SQLite storage (see with-do-store.ts),
// and the Durable Object adapter's own tests.
import { fileURLToPath } from "node:url";
import { cloudflareTest } from "@cloudflare/vitest-pool-workers";
import { defineConfig } from "vitest/config";

const here = (path: string) => fileURLToPath(new URL(path, import.meta.url));

export default defineConfig({
  plugins: [
    cloudflareTest({
      wrangler: { configPath: "../wrangler.toml" },
      // Event streams end after 3 s here, so that a test sees their places given back.
      miniflare: {
        bindings: { PANGEA_ADMIN_TOKEN: "workerd-test-token", PANGEA_STREAM_MAX_MS: "3000" },
      },
    }),
  ],
  resolve: {
    alias: [
      {
        find: /^(.*)\/testing\/with-store\.ts$/,
        replacement: here("./src/testing/with-do-store.ts"),
      },
    ],
  },
  test: {
    include: ["src/**/*.test.ts", "../coordinator/src/core/*.test.ts"],
    testTimeout: 600_000,
  },
});
