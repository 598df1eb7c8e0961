// A Node module hook for `pangea worker --gpu`: the engine imports its WGSL as `./x.wgsl?raw`
// (a Vite convention the web build and the browser tests use); here such an import is the file's
// text as the module's default export, so the engine runs in Node without a bundler.
import { readFile } from "node:fs/promises";

export async function resolve(specifier, context, next) {
  if (specifier.endsWith(".wgsl?raw") && context.parentURL)
    return { url: new URL(specifier, context.parentURL).href, shortCircuit: true };
  return next(specifier, context);
}

export async function load(url, context, next) {
  if (url.endsWith(".wgsl?raw")) {
    const text = await readFile(new URL(url.slice(0, -"?raw".length)), "utf8");
    return {
      format: "module",
      source: `export default ${JSON.stringify(text)};`,
      shortCircuit: true,
    };
  }
  return next(url, context);
}
