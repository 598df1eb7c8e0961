// The transformer's kernels against their float64 CPU references (src/reference/
// transformer-ops.ts, itself checked against finite differences through the whole GPT), at
// several shapes including ragged ones and fewer workgroups than blocks. Outputs start poisoned
// with NaN, except those a kernel adds into, which start from known values.
import { beforeAll, describe, expect, it } from "vitest";
import * as ref from "../reference/transformer-ops.ts";
import { acquireDevice } from "../runtime/gpu.ts";
import { strideGroups, uniformOf } from "../runtime/pipelines.ts";
import { runKernel } from "../runtime/run-kernel.ts";
import { attentionKernels, kernels } from "./index.ts";
import { expectClose, random } from "./testing.ts";

let device: GPUDevice;
beforeAll(async () => {
  device = (await acquireDevice()).device;
});

/** The uniform fields of a dropout site: key, threshold and the kept elements' scale. */
function dropoutFields(p: number, seed: number): [number, number, { f32: number }] {
  return [ref.dropoutKey(seed, 5), ref.dropThreshold(p), { f32: 1 / (1 - p) }];
}

function tokensOf(n: number, V: number): Int32Array {
  return Int32Array.from(random(n), (x) => Math.min(V - 1, Math.floor(((x + 1) / 2) * V)));
}

describe("dropout and residual", () => {
  it.each([
    [1, 0],
    [1000, 0.1],
    [70_001, 0.5],
  ])("drops as the reference does over %i elements at p=%f, forward and residual", async (n, p) => {
    const x = random(n);
    const fields = dropoutFields(p, n);
    const [y] = await runKernel(
      device,
      kernels.dropout,
      uniformOf([n, ...fields]),
      [{ data: x }, { data: new Float32Array(n), read: true }],
      strideGroups(n, 3),
    );
    const expected = ref.dropoutForward(x, fields[0], p);
    expectClose(y!, expected);
    for (let i = 0; i < n; i++) expect(y![i] === 0).toBe(expected[i] === 0);

    const a = random(n);
    const [sum] = await runKernel(
      device,
      kernels.residual,
      uniformOf([n, ...fields]),
      [{ data: a }, { data: x }, { data: new Float32Array(n), read: true }],
      strideGroups(n),
    );
    expectClose(sum!, ref.residualForward(a, expected));
  });
});

describe("embedding", () => {
  it.each([
    [1, 1, 1, 2, 0],
    [2, 5, 7, 3, 0.2],
    [3, 64, 64, 65, 0.1],
    [2, 70, 33, 11, 0],
  ])("gathers and scatters at B=%i T=%i C=%i V=%i with dropout %f", async (B, T, C, V, p) => {
    const N = B * T;
    const tokens = tokensOf(N, V);
    const offsetWte = 3;
    const offsetWpe = offsetWte + V * C + 2;
    const params = random(offsetWpe + T * C + 1);
    const fields = dropoutFields(p, N);
    const uniform = uniformOf([N, T, C, V, offsetWte, offsetWpe, fields[0], fields[1], fields[2]]);
    const [x] = await runKernel(
      device,
      kernels.embeddingForward,
      uniform,
      [{ data: tokens }, { data: params }, { data: new Float32Array(N * C), read: true }],
      strideGroups(N * C, 2),
    );
    const wte = params.subarray(offsetWte, offsetWte + V * C);
    const wpe = params.subarray(offsetWpe, offsetWpe + T * C);
    const mask = ref.dropoutMask(fields[0], p, N * C);
    const expected = ref.embeddingForward(tokens, wte, wpe, B, T, C).map((v, i) => v * mask[i]!);
    expectClose(x!, expected);

    // Backward: wte's rows already hold the tied head's gradient (added to); wpe's are written.
    const dx = random(N * C);
    const grads = new Float32Array(params.length).fill(Number.NaN);
    const head = random(V * C);
    grads.set(head, offsetWte);
    const [out] = await runKernel(
      device,
      kernels.embeddingBackwardWte,
      uniform,
      [{ data: tokens }, { data: dx }, { data: grads, read: true, keep: true }],
      strideGroups(V * C, 3),
      [
        {
          kernel: kernels.embeddingBackwardWpe,
          uniform,
          bindings: [0, 1, 2],
          workgroups: strideGroups(T * C, 1),
        },
      ],
    );
    const { dwte, dwpe } = ref.embeddingBackward(
      tokens,
      dx.map((v, i) => v * mask[i]!),
      B,
      T,
      C,
      V,
    );
    expectClose(
      out!.subarray(offsetWte, offsetWte + V * C),
      dwte.map((v, i) => v + head[i]!),
    );
    expectClose(out!.subarray(offsetWpe, offsetWpe + T * C), dwpe);
  });
});

describe("LayerNorm", () => {
  it.each([
    [1, 1],
    [1, 2],
    [7, 13],
    [64, 64],
    [130, 384],
  ])("normalizes and differentiates rows at N=%i C=%i", async (N, C) => {
    const x = random(N * C, 3).map((v, i) => v + (i % 7)); // rows with a mean and a spread
    const offsetWeight = 1;
    const offsetBias = 1 + C + 4;
    const params = random(offsetBias + C);
    const weight = params.subarray(offsetWeight, offsetWeight + C);
    const bias = params.subarray(offsetBias, offsetBias + C);
    const uniform = uniformOf([N, C, offsetWeight, offsetBias]);
    const [out, stats] = await runKernel(
      device,
      kernels.layernormForward,
      uniform,
      [
        { data: x },
        { data: params },
        { data: new Float32Array(N * C), read: true },
        { data: new Float32Array(2 * N), read: true },
      ],
      strideGroups(N, 2, 64),
    );
    const f = ref.layernormForward(x, weight, bias, N, C);
    expectClose(out!, f.out);
    expectClose(stats!.subarray(0, N), f.mean);
    expectClose(stats!.subarray(N), f.rstd);

    const dout = random(N * C);
    const stream = random(N * C); // the residual stream's gradient, which the input adds into
    const [dinp, grads] = await runKernel(
      device,
      kernels.layernormBackwardInput,
      uniform,
      [
        { data: x },
        { data: params },
        { data: Float32Array.from([...f.mean, ...f.rstd]) },
        { data: dout },
        { data: stream, read: true, keep: true },
        { data: new Float32Array(params.length), read: true },
      ],
      strideGroups(N, 3, 64),
      [
        {
          kernel: kernels.layernormBackwardParams,
          uniform,
          bindings: [0, 1, 2, 3, 4, 5],
          workgroups: strideGroups(C, 1, 64),
        },
      ],
    );
    const b = ref.layernormBackward(x, weight, f.mean, f.rstd, dout, N, C);
    expectClose(
      dinp!,
      b.dinp.map((v, i) => v + stream[i]!),
    );
    expectClose(grads!.subarray(offsetWeight, offsetWeight + C), b.dweight);
    expectClose(grads!.subarray(offsetBias, offsetBias + C), b.dbias);
  });
});

describe("causal attention, fused", () => {
  it.each([
    [1, 1, 4, 1, 8],
    [2, 5, 8, 2, 8],
    [1, 64, 64, 4, 8],
    [2, 70, 48, 3, 3],
    [1, 130, 32, 2, 1],
    [1, 17, 256, 2, 8],
    [2, 33, 30, 6, 8],
  ])(
    "forward and backward at B=%i T=%i C=%i H=%i (≤ %i workgroups)",
    async (B, T, C, H, budget) => {
      const N = B * T;
      const qkv = random(N * 3 * C, 2);
      const uniform = uniformOf([B, T, C, H]);
      const attention = attentionKernels(C / H);
      const blocks = Math.ceil(T / 64) * B * H;
      const groups: [number, number, number] = [Math.min(budget, blocks), 1, 1];
      const [out, lse] = await runKernel(
        device,
        attention.forward,
        uniform,
        [
          { data: qkv },
          { data: new Float32Array(N * C), read: true },
          { data: new Float32Array(B * H * T), read: true },
        ],
        groups,
      );
      const f = ref.attentionForward(qkv, B, T, C, H);
      expectClose(out!, f.out);
      expectClose(lse!, f.lse);

      const dout = random(N * C);
      const [dqkv] = await runKernel(
        device,
        attention.backwardQuery,
        uniform,
        [
          { data: qkv },
          { data: Float32Array.from(f.out) },
          { data: Float32Array.from(f.lse) },
          { data: dout },
          { data: new Float32Array(N * 3 * C), read: true },
          { data: new Float32Array(B * H * T), read: true }, // δ: poisoned, query must write it
        ],
        groups,
        [
          {
            kernel: attention.backwardKey,
            uniform,
            bindings: [0, 1, 2, 3, 4, 5],
            workgroups: groups,
          },
        ],
      );
      expectClose(dqkv!, ref.attentionBackward(qkv, f.out, f.lse, dout, B, T, C, H), 2e-4);
    },
  );
});
