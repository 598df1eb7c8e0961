// Acquiring a WebGPU device, and saying plainly what it is.

export interface AdapterReport {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** True on a software fallback (SwiftShader, WARP): training works, slowly. */
  softwareFallback: boolean;
  limits: {
    maxStorageBufferBindingSize: number;
    maxBufferSize: number;
    maxComputeWorkgroupStorageSize: number;
    maxComputeInvocationsPerWorkgroup: number;
  };
}

export class WebGpuUnavailableError extends Error {
  override readonly name = "WebGpuUnavailableError";
}

/** A device with the adapter's own buffer limits, and a report of the adapter. */
export async function acquireDevice(
  gpu: GPU | undefined = globalThis.navigator?.gpu,
): Promise<{ device: GPUDevice; adapter: AdapterReport }> {
  if (!gpu) {
    throw new WebGpuUnavailableError(
      "WebGPU is not available in this browser. Chrome or Edge 113+, or Safari 26+, can contribute.",
    );
  }
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (!adapter)
    throw new WebGpuUnavailableError("This browser has WebGPU but no usable GPU adapter.");
  const info = adapter.info;
  const description = [info.vendor, info.architecture, info.device, info.description]
    .filter(Boolean)
    .join(" ");
  // isFallbackAdapter moved from the adapter to its info; read either.
  const fallbackFlag =
    (info as GPUAdapterInfo & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    (adapter as GPUAdapter & { isFallbackAdapter?: boolean }).isFallbackAdapter ??
    false;
  const softwareFallback = fallbackFlag || /swiftshader|llvmpipe|warp|software/i.test(description);
  const limits = {
    maxStorageBufferBindingSize: adapter.limits.maxStorageBufferBindingSize,
    maxBufferSize: adapter.limits.maxBufferSize,
    maxComputeWorkgroupStorageSize: adapter.limits.maxComputeWorkgroupStorageSize,
    maxComputeInvocationsPerWorkgroup: adapter.limits.maxComputeInvocationsPerWorkgroup,
  };
  const device = await adapter.requestDevice({
    requiredLimits: {
      maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
      maxBufferSize: limits.maxBufferSize,
    },
  });
  return {
    device,
    adapter: {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: description || "unknown adapter",
      softwareFallback,
      limits,
    },
  };
}
