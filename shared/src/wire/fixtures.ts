// One sample message of every payload variant, for the codec's tests, fuzzing and benchmarks.
import { seededRandom } from "../random.ts";
import type { Payload, Tensor, WireMessage } from "./messages.ts";

export { seededRandom };

export function randomFloats(count: number, seed = 1, scale = 1): Float32Array {
  const next = seededRandom(seed);
  const out = new Float32Array(count);
  for (let i = 0; i < count; i++) out[i] = (next() * 2 - 1) * scale;
  return out;
}

const tensor = (name: string, shape: number[], seed: number): Tensor => ({
  name,
  shape,
  dtype: "float32",
  data: randomFloats(
    shape.reduce((a, b) => a * b, 1),
    seed,
  ),
});

const mlp = {
  name: "mlp-784-128-10",
  inputShape: [784],
  layers: [
    { kind: "flatten" as const },
    { kind: "dense" as const, inputs: 784, outputs: 128, activation: "relu" as const },
    { kind: "dense" as const, inputs: 128, outputs: 10, activation: "none" as const },
  ],
  loss: "softmaxCrossEntropy" as const,
  seed: 7,
};

const gpt = {
  name: "gpt-2x64",
  inputShape: [64],
  layers: [],
  loss: "softmaxCrossEntropy" as const,
  seed: 3,
  transformer: { vocabSize: 65, contextLength: 64, layers: 2, heads: 4, width: 64, dropout: 0.125 },
};

export const samplePayloads: Payload[] = [
  { type: "raw", messageType: "request", bytes: new Uint8Array([1, 2, 3, 250]) },
  {
    type: "join",
    runId: "run-1",
    sessionToken: "tok-ü",
    client: {
      kind: "browser",
      adapter: "SwiftShader",
      softwareFallback: true,
      userAgent: "Chromium",
    },
    encodings: ["fp32", "fp16", "int8"],
    protocolVersion: 1,
    evaluates: true,
    displayName: "Ada ✓",
    peers: true,
  },
  {
    type: "welcome",
    runId: "run-1",
    sessionId: "s-9",
    sessionToken: "tok",
    model: mlp,
    version: 12,
    parameters: [tensor("dense0.weight", [4, 3], 2), tensor("dense0.bias", [3], 3)],
    training: {
      strategy: "localSgd",
      batchSize: 64,
      innerSteps: 8,
      localOptimizer: "adamw",
      learningRate: 0.0009765625,
      momentum: 0.875,
      weightDecay: 0.015625,
      updateEncoding: "fp16",
    },
    heartbeatMs: 5000,
    maxFrameBytes: 1 << 20,
  },
  {
    type: "welcome",
    runId: "run-gpt",
    sessionId: "s-10",
    sessionToken: "tok-gpt",
    model: gpt,
    version: 0,
    parameters: [],
    training: {
      strategy: "localSgd",
      batchSize: 16,
      innerSteps: 32,
      localOptimizer: "adamw",
      learningRate: 0.0009765625,
      momentum: 0,
      weightDecay: 0.125,
      updateEncoding: "fp32",
      reduceGroup: 4,
    },
    heartbeatMs: 5000,
    maxFrameBytes: 1 << 24,
    iceServers: [
      { url: "stun:stun.example.org:3478" },
      { url: "turn:turn.example.org:3478?transport=tcp", username: "ada", credential: "s3cret" },
    ],
  },
  { type: "leaseRequest", maxBatches: 2 },
  {
    type: "lease",
    leaseId: 2 ** 40 + 5,
    batch: {
      batchId: "e0-b3",
      samples: tensor("", [2, 4], 4),
      labels: { shape: [2], dtype: "int32", data: new Int32Array([7, 1]) },
      metadata: { source: "mnist", shard: "0" },
      epoch: 0,
      index: 3,
    },
    baseVersion: 12,
    deadline: 1_700_000_000_123,
    innerSteps: 1,
    parametersFrom: "s-7",
    parametersSha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
  },
  {
    type: "lease",
    leaseId: 2 ** 40 + 6,
    batch: { batchId: "eval:12:4", metadata: {} },
    baseVersion: 12,
    deadline: 1_700_000_000_456,
    innerSteps: 0,
    heldOut: {
      offsets: [0, 71, 2 ** 31 + 3],
      sampleTokens: 160,
      prompt: "ROMEO:",
      seed: 2 ** 32 - 1,
    },
  },
  {
    type: "evaluation",
    leaseId: 2 ** 40 + 6,
    version: 12,
    loss: 17.123456789012344,
    correct: 1234,
    sample: "ROMEO: — ü",
  },
  {
    type: "gradientUpdate",
    gradientId: "g-1",
    gradients: [tensor("dense0.weight", [4, 3], 5), tensor("dense0.bias", [3], 6)],
    loss: 2.5,
    timestamp: 1_700_000_000_999,
    nodeId: "s-9",
    batchId: "e0-b3",
    leaseId: 2 ** 40 + 5,
    baseVersion: 12,
    sampleCount: 64,
    encoding: "fp32",
    kind: "gradient",
    correct: 50,
    innerSteps: 0,
  },
  { type: "parameters", version: 13, tensors: [tensor("dense0.bias", [3], 7)] },
  { type: "parameters", version: 14, deltaFrom: 13, tensors: [tensor("dense0.bias", [3], 8)] },
  { type: "ack", ref: "m-1", leaseId: 9, version: 13 },
  {
    type: "error",
    code: "leaseExpired",
    message: "lease 9 expired at 12:00",
    ref: "m-2",
    retryAfterMs: 250,
  },
  { type: "heartbeat", sentAt: 1_700_000_000_000, samplesPerSecond: 1234.5 },
  { type: "signal", payload: new TextEncoder().encode('{"sdp":"v=0"}') },
  { type: "leave", reason: "tab closed" },
  { type: "parametersRequest", version: 12, peer: "s-7", failure: "badHash" },
  {
    type: "gradientUpdate",
    gradientId: "g-2",
    gradients: [],
    loss: 2.25,
    timestamp: 1_700_000_001_000,
    nodeId: "s-9",
    batchId: "e0-b4",
    leaseId: 2 ** 40 + 7,
    baseVersion: 12,
    sampleCount: 64,
    encoding: "fp32",
    kind: "gradient",
    correct: 51,
    innerSteps: 1,
    pieceHashes: Uint8Array.from({ length: 64 }, (_, i) => (i * 37) & 255),
  },
  {
    type: "reducePlan",
    group: 2 ** 33 + 1,
    version: 12,
    members: [
      { session: "s-9", leaseId: 2 ** 40 + 7, weight: 64, pieceHashes: new Uint8Array(32).fill(1) },
      { session: "s-7", leaseId: 41, weight: 32.5, pieceHashes: new Uint8Array(32).fill(2) },
    ],
    deadline: 1_700_000_009_000,
    aggregator: "trimmedMean",
    trim: 0.25,
  },
  {
    type: "reducedPart",
    group: 2 ** 33 + 1,
    part: 1,
    data: new Uint8Array(new Float32Array([0.5, -1.25, 3]).buffer),
    sha256: "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
    badBytes: ["s-7"],
    missing: ["s-3", "s-4"],
  },
  {
    type: "trainingBatch",
    batchId: "b-1",
    samples: tensor("", [1, 3], 9),
    labels: { shape: [1], dtype: "int32", data: new Int32Array([4]) },
    metadata: {},
    epoch: 1,
    index: 0,
  },
];

export function sampleMessages(): WireMessage[] {
  return samplePayloads.map((payload, i) => ({
    messageId: `m-${i}`,
    sender: i % 2 ? "coordinator" : "s-9",
    recipient: i % 2 ? "s-9" : "coordinator",
    timestamp: 1_700_000_000_000 + i,
    payload,
  }));
}
