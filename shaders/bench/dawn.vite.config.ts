// Builds bench/kernels-dawn.ts into one ES module for Node, everything bundled but the native
// `webgpu` package (dawn.node), which must sit beside it in node_modules.
import { fileURLToPath } from "node:url";
import { defineConfig } from "vite";

export default defineConfig({
  root: fileURLToPath(new URL(".", import.meta.url)),
  logLevel: "warn",
  build: {
    ssr: fileURLToPath(new URL("./kernels-dawn.ts", import.meta.url)),
    outDir: fileURLToPath(new URL("./dist", import.meta.url)),
    emptyOutDir: true,
    target: "node20",
    rollupOptions: {
      output: {
        entryFileNames: "kernels-dawn.mjs",
        // TF.js's Node platform calls require("util").
        banner:
          'import { createRequire as __pangeaRequire } from "node:module"; const require = __pangeaRequire(import.meta.url);',
      },
    },
  },
  ssr: { noExternal: true, external: ["webgpu"], target: "node" },
});
