// WebGPU's globals and navigator.gpu from Dawn for Node, installed before any module that reads
// them at load (the engine reads GPUBufferUsage): kernels-dawn.ts imports this first.
import { cpus } from "node:os";
import { create, globals } from "webgpu";

Object.assign(globalThis, globals);
const gpu = create(process.env.DAWN_FLAGS?.split(",").filter(Boolean) ?? []);
// What the page reads of `navigator`; TF.js and jax-js look for navigator.gpu too.
Object.defineProperty(globalThis, "navigator", {
  configurable: true,
  value: {
    gpu,
    userAgent: `Node ${process.version}, Dawn (webgpu npm package)`,
    hardwareConcurrency: cpus().length,
  },
});
