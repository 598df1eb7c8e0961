// One descriptor per kernel (tfjs's program descriptors): its WGSL, entry point, the override
// constants that specialize it, and its workgroup size. src/runtime/pipelines.ts builds each
// pipeline once per device.
import adamw from "./adamw.wgsl?raw";
import attention from "./attention.wgsl?raw";
import attentionBackward from "./attention_backward.wgsl?raw";
import attentionForward from "./attention_forward.wgsl?raw";
import biasBackward from "./bias_backward.wgsl?raw";
import dropout from "./dropout.wgsl?raw";
import embedding from "./embedding.wgsl?raw";
import geluBackward from "./gelu_backward.wgsl?raw";
import geluForward from "./gelu_forward.wgsl?raw";
import gradNorm from "./grad_norm.wgsl?raw";
import layernormBackward from "./layernorm_backward.wgsl?raw";
import layernormForward from "./layernorm_forward.wgsl?raw";
import matmul from "./matmul.wgsl?raw";
import packFp16 from "./pack_fp16.wgsl?raw";
import packInt8 from "./pack_int8.wgsl?raw";
import random from "./random.wgsl?raw";
import reluBackward from "./relu_backward.wgsl?raw";
import reluForward from "./relu_forward.wgsl?raw";
import residual from "./residual.wgsl?raw";
import sgdMomentum from "./sgd_momentum.wgsl?raw";
import softmaxXent from "./softmax_xent.wgsl?raw";

export interface KernelDescriptor {
  /** Unique: the pipeline cache's key. */
  readonly name: string;
  readonly source: string;
  readonly entryPoint: string;
  readonly constants?: Readonly<Record<string, number>>;
  /**
   * The storage buffers after the uniform (binding 0), in binding order: "read" or "write".
   * Explicit, because a layout inferred per entry point drops the bindings that entry point does
   * not use, and two entry points of one file must share their bind groups.
   */
  readonly storage: ReadonlyArray<"read" | "write">;
  /** Threads per workgroup along x (elementwise kernels dispatch a grid-stride loop of these). */
  readonly workgroupSize: number;
}

type Access = "read" | "write";

const k = (
  name: string,
  source: string,
  storage: Access[],
  options: { entryPoint?: string; workgroupSize?: number; constants?: Record<string, number> } = {},
): KernelDescriptor => ({
  name,
  source,
  storage,
  entryPoint: options.entryPoint ?? "main",
  workgroupSize: options.workgroupSize ?? 256,
  ...(options.constants ? { constants: options.constants } : {}),
});

const R = "read";
const W = "write";

// WGSL has no includes: the kernels that drop elements get random.wgsl's generator prepended.
const withRandom = (source: string) => `${random}\n${source}`;

export const kernels = {
  matmulForward: k("matmul_forward", matmul, [R, R, W], { workgroupSize: 8 }),
  matmulBackwardInput: k("matmul_backward_input", matmul, [R, R, W], {
    workgroupSize: 8,
    constants: { TRANSPOSE_B: 1 },
  }),
  matmulBackwardWeight: k("matmul_backward_weight", matmul, [R, R, W], {
    workgroupSize: 8,
    constants: { TRANSPOSE_A: 1 },
  }),
  matmulForwardWide: k("matmul_forward_wide", matmul, [R, R, W], {
    entryPoint: "main_wide",
    workgroupSize: 16,
  }),
  matmulBackwardInputWide: k("matmul_backward_input_wide", matmul, [R, R, W], {
    entryPoint: "main_wide",
    workgroupSize: 16,
    constants: { TRANSPOSE_B: 1 },
  }),
  matmulBackwardWeightWide: k("matmul_backward_weight_wide", matmul, [R, R, W], {
    entryPoint: "main_wide",
    workgroupSize: 16,
    constants: { TRANSPOSE_A: 1 },
  }),
  biasBackward: k("bias_backward", biasBackward, [R, W], { workgroupSize: 64 }),
  reluForward: k("relu_forward", reluForward, [R, W]),
  reluBackward: k("relu_backward", reluBackward, [R, R, W]),
  geluForward: k("gelu_forward", geluForward, [R, W]),
  geluBackward: k("gelu_backward", geluBackward, [R, R, W]),
  softmaxXent: k("softmax_xent", softmaxXent, [R, R, W, W]),
  gradNormPartial: k("grad_norm_partial", gradNorm, [R, W, W], { entryPoint: "partial" }),
  gradNormFinish: k("grad_norm_finish", gradNorm, [R, W, W], { entryPoint: "finish" }),
  sgdMomentum: k("sgd_momentum", sgdMomentum, [R, W, W]),
  adamw: k("adamw", adamw, [R, W, W, W, R, R]),
  dropout: k("dropout", withRandom(dropout), [R, W]),
  residual: k("residual", withRandom(residual), [R, R, W]),
  embeddingForward: k("embedding_forward", withRandom(embedding), [R, R, W], {
    entryPoint: "forward",
  }),
  embeddingBackwardWte: k("embedding_backward_wte", withRandom(embedding), [R, R, W], {
    entryPoint: "backward_wte",
  }),
  embeddingBackwardWpe: k("embedding_backward_wpe", withRandom(embedding), [R, R, W], {
    entryPoint: "backward_wpe",
  }),
  layernormForward: k("layernorm_forward", layernormForward, [R, R, W, W], { workgroupSize: 64 }),
  layernormBackwardInput: k("layernorm_backward_input", layernormBackward, [R, R, R, R, W, W], {
    entryPoint: "input",
    workgroupSize: 64,
  }),
  layernormBackwardParams: k("layernorm_backward_params", layernormBackward, [R, R, R, R, W, W], {
    entryPoint: "params_grad",
    workgroupSize: 64,
  }),
  packFp16: k("pack_fp16", packFp16, [R, W]),
  packInt8Absmax: k("pack_int8_absmax", packInt8, [R, R, W, W], { entryPoint: "absmax" }),
  packInt8Quantize: k("pack_int8_quantize", packInt8, [R, R, W, W], { entryPoint: "quantize" }),
} as const;

export type KernelName = keyof typeof kernels;

export interface MatmulKernels {
  forward: KernelDescriptor;
  backwardInput: KernelDescriptor;
  backwardWeight: KernelDescriptor;
}

/** matmul.wgsl's variant for an adapter: direct reads into deep register blocks on a CPU, staged tiles and wide workgroups on a GPU. */
export function matmulKernels(adapter: { softwareFallback: boolean }): MatmulKernels {
  return adapter.softwareFallback
    ? {
        forward: kernels.matmulForward,
        backwardInput: kernels.matmulBackwardInput,
        backwardWeight: kernels.matmulBackwardWeight,
      }
    : {
        forward: kernels.matmulForwardWide,
        backwardInput: kernels.matmulBackwardInputWide,
        backwardWeight: kernels.matmulBackwardWeightWide,
      };
}

export interface AttentionKernels {
  forward: KernelDescriptor;
  backwardQuery: KernelDescriptor;
  backwardKey: KernelDescriptor;
}

/** The widest head the attention kernels hold (checkModelSpec refuses wider ones). */
export const MAX_HEAD_SIZE = 128;

/**
 * The attention kernels specialized for a head size: each thread's private rows hold the head
 * rounded up to a power of two (at least 4), and the staged tiles take as many keys as fit 8 KiB
 * per operand, up to the 64 queries of a block. A private array sized for the widest head would
 * cost every thread that memory (on a software adapter, every lane); small heads run faster.
 */
export function attentionKernels(headSize: number): AttentionKernels {
  if (!(headSize >= 1 && headSize <= MAX_HEAD_SIZE))
    throw new Error(`a head of ${headSize} is outside 1..${MAX_HEAD_SIZE}`);
  const width = Math.max(4, 2 ** Math.ceil(Math.log2(headSize)));
  const tile = Math.min(64, 2048 / width);
  // attention.wgsl, specialized, is prepended to both kernels.
  const prelude = attention
    .replace("const MAX_HEAD = 128u;", `const MAX_HEAD = ${width}u;`)
    .replace("const TILE = 16u;", `const TILE = ${tile}u;`);
  if (width !== 128 && prelude === attention)
    throw new Error("attention kernels: nothing to specialize");
  const specialize = (source: string) => `${prelude}\n${source}`;
  const forward = specialize(attentionForward);
  const backward = specialize(attentionBackward);
  return {
    forward: k(`attention_forward_h${width}`, forward, [R, W, W], { workgroupSize: 64 }),
    backwardQuery: k(`attention_backward_query_h${width}`, backward, [R, R, R, R, W, W], {
      entryPoint: "query",
      workgroupSize: 64,
    }),
    backwardKey: k(`attention_backward_key_h${width}`, backward, [R, R, R, R, W, W], {
      entryPoint: "key",
      workgroupSize: 64,
    }),
  };
}
