// Builds each kernel's compute pipeline once per device and records dispatches. Binding 0 is the
// kernel's uniform, then its storage buffers in the order its descriptor lists them.
import type { KernelDescriptor } from "../kernels/index.ts";

const cache = new WeakMap<GPUDevice, Map<string, GPUComputePipeline>>();

export function pipelineFor(device: GPUDevice, kernel: KernelDescriptor): GPUComputePipeline {
  let pipelines = cache.get(device);
  if (!pipelines) {
    pipelines = new Map();
    cache.set(device, pipelines);
  }
  let pipeline = pipelines.get(kernel.name);
  if (!pipeline) {
    const module = device.createShaderModule({ label: kernel.name, code: kernel.source });
    const bindGroupLayout = device.createBindGroupLayout({
      label: kernel.name,
      entries: [
        { binding: 0, visibility: GPUShaderStage.COMPUTE, buffer: { type: "uniform" } },
        ...kernel.storage.map((access, i) => ({
          binding: i + 1,
          visibility: GPUShaderStage.COMPUTE,
          buffer: {
            type: access === "read" ? ("read-only-storage" as const) : ("storage" as const),
          },
        })),
      ],
    });
    pipeline = device.createComputePipeline({
      label: kernel.name,
      layout: device.createPipelineLayout({ bindGroupLayouts: [bindGroupLayout] }),
      compute: {
        module,
        entryPoint: kernel.entryPoint,
        ...(kernel.constants ? { constants: kernel.constants } : {}),
      },
    });
    pipelines.set(kernel.name, pipeline);
  }
  return pipeline;
}

/** A recorded dispatch: everything but the pass it goes into. */
export interface Dispatch {
  pipeline: GPUComputePipeline;
  bindGroup: GPUBindGroup;
  workgroups: [number, number, number];
}

/** Prepares a dispatch: a uniform buffer holding `uniform`, and the bind group. */
export function prepareDispatch(
  device: GPUDevice,
  kernel: KernelDescriptor,
  uniform: ArrayBuffer,
  storage: GPUBuffer[],
  workgroups: [number, number, number],
): Dispatch & { uniform: GPUBuffer } {
  const pipeline = pipelineFor(device, kernel);
  const uniformBuffer = device.createBuffer({
    label: `${kernel.name}.uniform`,
    size: Math.max(16, Math.ceil(uniform.byteLength / 16) * 16),
    usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST,
  });
  device.queue.writeBuffer(uniformBuffer, 0, uniform);
  const bindGroup = device.createBindGroup({
    label: kernel.name,
    layout: pipeline.getBindGroupLayout(0),
    entries: [uniformBuffer, ...storage].map((buffer, binding) => ({
      binding,
      resource: { buffer },
    })),
  });
  return { pipeline, bindGroup, workgroups, uniform: uniformBuffer };
}

export function record(pass: GPUComputePassEncoder, dispatch: Dispatch): void {
  pass.setPipeline(dispatch.pipeline);
  pass.setBindGroup(0, dispatch.bindGroup);
  pass.dispatchWorkgroups(...dispatch.workgroups);
}

/**
 * How many workgroups one dispatch may use. A GPU wants many to fill its cores. A software
 * adapter (SwiftShader) runs workgroups on a few CPU threads and pays a fixed cost for each one it
 * starts (about a millisecond with barriers), so there a handful of workgroups that each loop over
 * more work is several times faster.
 */
export function workgroupBudget(adapter: { softwareFallback: boolean }): number {
  return adapter.softwareFallback ? 8 : 4096;
}

/** Workgroups for a grid-stride elementwise kernel over n items: enough to fill, within budget. */
export function strideGroups(
  n: number,
  budget = 4096,
  workgroupSize = 256,
): [number, number, number] {
  return [Math.max(1, Math.min(budget, Math.ceil(n / workgroupSize))), 1, 1];
}

/** Workgroups for matmul.wgsl producing an M×N matrix: one per 64×64 tile, within budget. */
export function matmulGroups(m: number, n: number, budget = 65_535): [number, number, number] {
  return [Math.max(1, Math.min(budget, 65_535, Math.ceil(m / 64) * Math.ceil(n / 64))), 1, 1];
}

/**
 * Workgroups for the first pass of a reduction over n items (grad_norm's partial): each of the
 * 256 threads of a group sums at least 32 items before the group's tree of barriers, because the
 * barriers, not the loads, are the cost of a small reduction; at most 256 groups.
 */
export function reductionGroups(n: number): number {
  return Math.max(1, Math.min(256, Math.ceil(n / (256 * 32))));
}

/** A uniform of u32 and f32 fields, in order. */
export function uniformOf(fields: Array<number | { f32: number }>): ArrayBuffer {
  const buffer = new ArrayBuffer(Math.max(16, Math.ceil((fields.length * 4) / 16) * 16));
  const view = new DataView(buffer);
  fields.forEach((field, i) => {
    if (typeof field === "number") view.setUint32(i * 4, field, true);
    else view.setFloat32(i * 4, field.f32, true);
  });
  return buffer;
}
