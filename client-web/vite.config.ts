// The contributor page (/) and the admin dashboard (/admin), built as two pages of one Vite app.
// `pnpm dev` serves them with the coordinator's API and WebSocket proxied to PANGEA_URL.
import { resolve } from "node:path";
import { defineConfig } from "vite";

const coordinator = process.env.PANGEA_URL ?? "http://127.0.0.1:8080";

export default defineConfig({
  root: import.meta.dirname,
  esbuild: { jsx: "automatic" },
  worker: { format: "es" },
  build: {
    outDir: "dist",
    emptyOutDir: true,
    target: "es2022",
    rollupOptions: {
      input: {
        contributor: resolve(import.meta.dirname, "index.html"),
        admin: resolve(import.meta.dirname, "admin/index.html"),
      },
    },
  },
  server: {
    proxy: {
      "/api": coordinator,
      "/health": coordinator,
      "/ws": { target: coordinator.replace(/^http/, "ws"), ws: true },
    },
  },
});
