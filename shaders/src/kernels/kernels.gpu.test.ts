// Every kernel against its CPU reference (float64), on fresh random inputs of several shapes,
// including shapes that are not multiples of the tile sizes. Outputs are poisoned with NaN
// before each run. Tolerance: max|gpu − ref| ≤ 1e-4 · max|ref| (fp32).
import { fp16ToFp32, fp32ToInt8 } from "@pangea/shared";
import { beforeAll, describe, expect, it } from "vitest";
import * as ref from "../reference/ops.ts";
import { acquireDevice } from "../runtime/gpu.ts";
import { matmulGroups, strideGroups, uniformOf } from "../runtime/pipelines.ts";
import { runKernel } from "../runtime/run-kernel.ts";
import { kernels, matmulKernels } from "./index.ts";
import { expectClose, random } from "./testing.ts";

let device: GPUDevice;
beforeAll(async () => {
  device = (await acquireDevice()).device;
});

// M, K, N, and the most workgroups the product may use: fewer than its 64×64 tiles makes each
// workgroup loop over several tiles (as on software adapters).
const shapes: Array<[number, number, number, number]> = [
  [1, 1, 1, 65_535],
  [7, 13, 5, 1],
  [64, 64, 64, 65_535],
  [65, 130, 33, 2],
  [100, 37, 300, 3],
  [128, 784, 128, 65_535],
  [200, 70, 150, 5],
];

const variants = [
  ["direct", matmulKernels({ softwareFallback: true })],
  ["wide", matmulKernels({ softwareFallback: false })],
] as const;

describe.each(variants)("matmul kernels, %s variant", (_, mm) => {
  it.each(shapes)(
    "forward C = X·W at M=%i K=%i N=%i (≤ %i workgroups), read at offsets",
    async (m, k, n, budget) => {
      const x = random(m * k);
      const w = random(k * n + 3); // W sits 3 elements into its buffer
      const [c] = await runKernel(
        device,
        mm.forward,
        uniformOf([m, n, k, 0, 3, 2, 0, 0]),
        [{ data: x }, { data: w }, { data: new Float32Array(m * n + 2), read: true }],
        matmulGroups(m, n, budget),
      );
      expectClose(c!.subarray(2), ref.matmulForward(x, w.subarray(3), null, m, k, n));
    },
  );

  it.each(shapes)(
    "forward with the bias fused, C = X·W + b, at M=%i K=%i N=%i (≤ %i workgroups)",
    async (m, k, n, budget) => {
      const x = random(m * k);
      const wb = random(k * n + n + 1); // W, then one spare element, then b
      const [c] = await runKernel(
        device,
        mm.forward,
        uniformOf([m, n, k, 0, 0, 0, 1, k * n + 1]),
        [{ data: x }, { data: wb }, { data: new Float32Array(m * n), read: true }],
        matmulGroups(m, n, budget),
      );
      const w = wb.subarray(0, k * n);
      expectClose(c!, ref.matmulForward(x, w, wb.subarray(k * n + 1), m, k, n));
    },
  );

  it.each(shapes)(
    "backward dX = dY·Wᵀ at M=%i K=%i N=%i (≤ %i workgroups)",
    async (m, k, n, budget) => {
      const dy = random(m * n);
      const w = random(k * n);
      const [dx] = await runKernel(
        device,
        mm.backwardInput,
        uniformOf([m, k, n, 0, 0, 0, 0, 0]),
        [{ data: dy }, { data: w }, { data: new Float32Array(m * k), read: true }],
        matmulGroups(m, k, budget),
      );
      expectClose(dx!, ref.matmulBackwardInput(dy, w, m, k, n));
    },
  );

  it.each(shapes)(
    "backward dW = Xᵀ·dY at M=%i K=%i N=%i (≤ %i workgroups)",
    async (m, k, n, budget) => {
      const x = random(m * k);
      const dy = random(m * n);
      const [dw] = await runKernel(
        device,
        mm.backwardWeight,
        uniformOf([k, n, m, 0, 0, 0, 0, 0]),
        [{ data: x }, { data: dy }, { data: new Float32Array(k * n), read: true }],
        matmulGroups(k, n, budget),
      );
      expectClose(dw!, ref.matmulBackwardWeight(x, dy, m, k, n));
    },
  );
});

describe("elementwise and reduction kernels", () => {
  const sizes: Array<[number, number]> = [
    [1, 1],
    [3, 10],
    [64, 128],
    [257, 33],
  ];

  it.each(sizes)("bias backward at M=%i N=%i", async (m, n) => {
    const dout = random(m * n);
    const [dbias] = await runKernel(
      device,
      kernels.biasBackward,
      uniformOf([m, n, 1, 0]),
      [{ data: dout }, { data: new Float32Array(n + 1), read: true }],
      [Math.ceil(n / 64), 1, 1],
    );
    expectClose(dbias!.subarray(1), ref.biasBackward(dout, m, n));
  });

  it.each([1, 1000, 70_001])("relu and gelu, forward and backward, over %i elements", async (n) => {
    const x = random(n, 4);
    const dout = random(n);
    for (const [fwd, bwd, refF, refB] of [
      [kernels.reluForward, kernels.reluBackward, ref.reluForward, ref.reluBackward],
      [kernels.geluForward, kernels.geluBackward, ref.geluForward, ref.geluBackward],
    ] as const) {
      const [y] = await runKernel(
        device,
        fwd,
        uniformOf([n]),
        [{ data: x }, { data: new Float32Array(n), read: true }],
        strideGroups(n),
      );
      expectClose(y!, refF(x));
      const [dx] = await runKernel(
        device,
        bwd,
        uniformOf([n]),
        [{ data: x }, { data: dout }, { data: new Float32Array(n), read: true }],
        strideGroups(n),
      );
      expectClose(dx!, refB(x, dout));
    }
  });

  it.each([
    [1, 2],
    [64, 10],
    [300, 10],
    [37, 257],
    [1024, 65], // a GPT's positions over Tiny Shakespeare's characters
  ])("fused softmax cross-entropy: loss, correct count and dlogits at M=%i C=%i", async (m, c) => {
    const logits = random(m * c, 5);
    const labels = Int32Array.from({ length: m }, (_, i) => (i * 7) % c);
    const [dlogits, stats] = await runKernel(
      device,
      kernels.softmaxXent,
      uniformOf([m, c, 0, 0]),
      [
        { data: logits },
        { data: labels },
        { data: new Float32Array(m * c), read: true },
        { data: new Float32Array(4), read: true },
      ],
      [1, 1, 1],
    );
    const expected = ref.softmaxCrossEntropy(logits, labels, m, c);
    expectClose(dlogits!, expected.dlogits);
    expect(Math.abs(stats![0]! - expected.loss) / expected.loss).toBeLessThanOrEqual(1e-4);
    expect(stats![1]).toBe(expected.correct);
  });

  it.each([1, 255, 101_770, 1_000_003])(
    "gradient norm over %i elements (two passes)",
    async (n) => {
      const g = random(n);
      const groups = Math.min(256, Math.ceil(n / 256));
      const u = uniformOf([n, groups, 1, 0]);
      const [, out] = await runKernel(
        device,
        kernels.gradNormPartial,
        u,
        [{ data: g }, { data: new Float32Array(256) }, { data: new Float32Array(2), read: true }],
        [groups, 1, 1],
        [
          {
            kernel: kernels.gradNormFinish,
            uniform: u,
            bindings: [0, 1, 2],
            workgroups: [1, 1, 1],
          },
        ],
      ).then((r) => [undefined, r[0]]);
      expect(Math.abs(out![1]! - ref.gradNorm(g)) / ref.gradNorm(g)).toBeLessThanOrEqual(1e-4);
    },
  );
});

describe("optimizer and packing kernels", () => {
  it("steps SGD with momentum like the reference", async () => {
    const n = 10_007;
    const [p, g, v] = [random(n), random(n), random(n, 0.1)];
    const h = { learningRate: 0.05, momentum: 0.9, weightDecay: 0.01 };
    const [pOut, vOut] = await runKernel(
      device,
      kernels.sgdMomentum,
      uniformOf([n, { f32: h.learningRate }, { f32: h.momentum }, { f32: h.weightDecay }]),
      [{ data: g }, { data: p.slice(), read: true }, { data: v.slice(), read: true }],
      strideGroups(n),
    ).then(async () =>
      readBoth(
        kernels.sgdMomentum,
        [n, { f32: h.learningRate }, { f32: h.momentum }, { f32: h.weightDecay }],
        g,
        [p, v],
      ),
    );
    const [pr, vr] = [Float64Array.from(p), Float64Array.from(v)];
    ref.sgdMomentumStep(pr, g, vr, h);
    expectClose(pOut!, pr);
    expectClose(vOut!, vr);
  });

  it("steps AdamW like the reference: gradient clipped to a global norm, decay by mask", async () => {
    const n = 5003;
    const [p, g, m1, m2] = [random(n), random(n), random(n, 0.1), random(n, 0.01).map(Math.abs)];
    const h = {
      learningRate: 1e-3,
      beta1: 0.9,
      beta2: 0.999,
      epsilon: 1e-8,
      weightDecay: 0.01,
      step: 3,
    };
    const decay = new Uint32Array(Math.ceil(n / 32)).map((_, i) => (i * 0x9e3779b9) >>> 0);
    const norm = ref.gradNorm(g);
    const maxNorm = norm / 3;
    const stats = Float32Array.from([0, 0, norm, 0]);
    const [pOut, m1Out, m2Out] = await runKernelSeeded(
      kernels.adamw,
      uniformOf([
        n,
        { f32: h.learningRate },
        { f32: h.beta1 },
        { f32: h.beta2 },
        { f32: h.epsilon },
        { f32: h.weightDecay },
        { f32: 1 - h.beta1 ** h.step },
        { f32: 1 - h.beta2 ** h.step },
        { f32: maxNorm },
        2,
      ]),
      [g],
      [p, m1, m2],
      strideGroups(n),
      [decay, stats],
    );
    const [pr, ar, br] = [Float64Array.from(p), Float64Array.from(m1), Float64Array.from(m2)];
    const clipped = Float64Array.from(g);
    ref.clipByGlobalNorm(clipped, maxNorm);
    ref.adamwStep(pr, clipped, ar, br, h, decay);
    expectClose(pOut!, pr);
    expectClose(m1Out!, ar);
    expectClose(m2Out!, br);
  });

  it("packs the gradient as fp16 within half an fp16 step", async () => {
    const n = 1001;
    const g = random(n, 3);
    const [packed] = await runKernel(
      device,
      kernels.packFp16,
      uniformOf([n]),
      [{ data: g }, { data: new Uint32Array(Math.ceil(n / 2)), read: true }],
      strideGroups(n),
    );
    const halves = new Float32Array(n);
    fp16ToFp32(new Uint16Array(packed!.buffer, 0, n), halves);
    for (let i = 0; i < n; i++)
      expect(Math.abs(halves[i]! - g[i]!)).toBeLessThanOrEqual(
        Math.abs(g[i]!) * 2 ** -10 + 2 ** -24,
      );
  });

  it("packs the gradient as int8 with one scale per tensor, matching the codec's quantizer", async () => {
    const slots = [
      [0, 7],
      [7, 1000],
      [1007, 1],
      [1008, 333],
    ];
    const n = 1341;
    const g = random(n, 2);
    g.fill(0, 1007, 1008); // an all-zero tensor gets scale 0
    const slotData = Uint32Array.from(slots.flat());
    const u = uniformOf([n, slots.length, 0, 0]);
    const [scales, packed] = await runKernel(
      device,
      kernels.packInt8Absmax,
      u,
      [
        { data: g },
        { data: slotData },
        { data: new Float32Array(slots.length), read: true },
        { data: new Uint32Array(Math.ceil(n / 4)), read: true },
      ],
      [slots.length, 1, 1],
      [
        {
          kernel: kernels.packInt8Quantize,
          uniform: u,
          bindings: [0, 1, 2, 3],
          workgroups: strideGroups(n / 4),
        },
      ],
    );
    const q = new Int8Array(packed!.buffer, 0, n);
    for (const [t, [offset, size]] of slots.entries()) {
      const expected = new Int8Array(size!);
      const scale = fp32ToInt8(g.subarray(offset!, offset! + size!), expected);
      expect(Math.abs(scales![t]! - scale)).toBeLessThanOrEqual(scale * 1e-6);
      for (let i = 0; i < size!; i++)
        expect(Math.abs(q[offset! + i]! - expected[i]!)).toBeLessThanOrEqual(1);
    }
  });
});

// --- helpers ------------------------------------------------------------------------------------

/** Like runKernel, but the read-back buffers start from the given data instead of poison. */
async function runKernelSeeded(
  kernel: (typeof kernels)[keyof typeof kernels],
  uniform: ArrayBuffer,
  inputs: Float32Array[],
  inOut: Float32Array[],
  workgroups: [number, number, number],
  after: Array<Float32Array | Uint32Array> = [],
): Promise<Float32Array[]> {
  const { prepareDispatch, record } = await import("../runtime/pipelines.ts");
  const make = (data: Float32Array | Uint32Array) => {
    const b = device.createBuffer({
      size: Math.max(16, data.byteLength),
      usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST,
    });
    device.queue.writeBuffer(b, 0, data.buffer as ArrayBuffer, data.byteOffset, data.byteLength);
    return b;
  };
  const ins = inputs.map(make);
  const outs = inOut.map(make);
  const d = prepareDispatch(
    device,
    kernel,
    uniform,
    [...ins, ...outs, ...after.map(make)],
    workgroups,
  );
  const encoder = device.createCommandEncoder();
  const pass = encoder.beginComputePass();
  record(pass, d);
  pass.end();
  const stagings = outs.map((b) => {
    const s = device.createBuffer({
      size: b.size,
      usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST,
    });
    encoder.copyBufferToBuffer(b, 0, s, 0, b.size);
    return s;
  });
  device.queue.submit([encoder.finish()]);
  const result: Float32Array[] = [];
  for (const [i, s] of stagings.entries()) {
    await s.mapAsync(GPUMapMode.READ);
    result.push(new Float32Array(s.getMappedRange().slice(0, inOut[i]!.byteLength)));
    s.unmap();
  }
  return result;
}

/** Runs an optimizer kernel: binding 1 the gradient, the rest read-write state seeded from `state`. */
function readBoth(
  kernel: (typeof kernels)[keyof typeof kernels],
  uniform: Array<number | { f32: number }>,
  grad: Float32Array,
  state: Float32Array[],
): Promise<Float32Array[]> {
  return runKernelSeeded(kernel, uniformOf(uniform), [grad], state, strideGroups(grad.length));
}
