// Runs one kernel on host arrays and reads its outputs back: for kernel tests and benchmarks.
// Output buffers are filled with a NaN pattern first, so an element a kernel fails to write
// shows up as NaN instead of a stale or zero value that happens to be right.
import type { KernelDescriptor } from "../kernels/index.ts";
import { prepareDispatch, record } from "./pipelines.ts";

export type HostArray = Float32Array | Int32Array | Uint32Array;

export interface KernelBinding {
  data: HostArray;
  /** Read back after the run (outputs). */
  read?: boolean;
  /** An output that starts from `data` instead of poison (kernels that add into it). */
  keep?: boolean;
}

const POISON = 0x7fc0dead; // a quiet NaN with a recognizable payload

export async function runKernel(
  device: GPUDevice,
  kernel: KernelDescriptor,
  uniform: ArrayBuffer,
  bindings: KernelBinding[],
  workgroups: [number, number, number],
  passes: Array<{
    kernel: KernelDescriptor;
    uniform: ArrayBuffer;
    bindings: number[];
    workgroups: [number, number, number];
  }> = [],
): Promise<HostArray[]> {
  // A shader that does not compile, or a binding that does not fit, invalidates the whole
  // submission silently: the outputs would read back as zeros. Say what went wrong instead.
  device.pushErrorScope("validation");
  const buffers = bindings.map((b, i) => {
    const buffer = device.createBuffer({
      label: `${kernel.name}.binding${i + 1}`,
      size: Math.max(16, Math.ceil(b.data.byteLength / 4) * 4),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    const init = b.read && !b.keep ? new Uint32Array(b.data.length).fill(POISON) : b.data;
    device.queue.writeBuffer(buffer, 0, init.buffer, init.byteOffset, init.byteLength);
    return buffer;
  });
  const first = prepareDispatch(device, kernel, uniform, buffers, workgroups);
  const more = passes.map((p) =>
    prepareDispatch(
      device,
      p.kernel,
      p.uniform,
      p.bindings.map((i) => buffers[i]!),
      p.workgroups,
    ),
  );
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  record(pass, first);
  for (const d of more) record(pass, d);
  pass.end();
  const reads = bindings.flatMap((b, i) => {
    if (!b.read) return [];
    const staging = device.createBuffer({
      size: buffers[i]!.size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.copyBufferToBuffer(buffers[i]!, 0, staging, 0, buffers[i]!.size);
    return [{ staging, like: b.data }];
  });
  device.queue.submit([encoder.finish()]);
  const error = await device.popErrorScope();
  if (error) throw new Error(`${kernel.name}: ${error.message}`);
  const out: HostArray[] = [];
  for (const { staging, like } of reads) {
    await staging.mapAsync(GPUMapMode.READ);
    const copy = staging.getMappedRange().slice(0, like.byteLength);
    staging.unmap();
    staging.destroy();
    out.push(new (like.constructor as new (b: ArrayBuffer) => HostArray)(copy));
  }
  for (const b of buffers) b.destroy();
  first.uniform.destroy();
  for (const d of more) d.uniform.destroy();
  return out;
}
