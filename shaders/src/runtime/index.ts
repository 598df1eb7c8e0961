// @pangea/shaders/runtime: the WebGPU training engine, for the contributor page's Web Worker.
export { type AdapterReport, acquireDevice, WebGpuUnavailableError } from "./gpu.ts";
export {
  DeviceLostError,
  type LocalOptimizerConfig,
  type StepStats,
  TrainingEngine,
} from "./engine.ts";
export { GpuTrainer } from "./gpu-trainer.ts";
