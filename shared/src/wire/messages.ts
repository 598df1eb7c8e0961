// The protocol's messages as TypeScript sees them. Names follow shared/schema/pangea.capnp; the
// codec (codec.ts) maps between these and frames. UInt64 fields are numbers below 2^53.
import type { enums } from "../gen/layout.ts";

export type DataType = (typeof enums.DataType)[number];
export type Encoding = (typeof enums.Encoding)[number];
export type UpdateKind = (typeof enums.UpdateKind)[number];
export type MessageType = (typeof enums.MessageType)[number];
export type ErrorCode = (typeof enums.ErrorCode)[number];
export type Activation = (typeof enums.Activation)[number];
export type Loss = (typeof enums.Loss)[number];
export type Strategy = (typeof enums.Strategy)[number];
export type LocalOptimizer = (typeof enums.LocalOptimizer)[number];
export type PeerFailure = (typeof enums.PeerFailure)[number];
export type Aggregator = (typeof enums.Aggregator)[number];

export type TensorData = Float32Array | Int32Array | Uint8Array | Uint16Array | Int8Array;

/**
 * A tensor. To encode: float32 data as Float32Array, float16 as Uint16Array (raw bits), int8 as
 * Int8Array with `scale`, int32 as Int32Array, uint8 as Uint8Array. Decoded float16 and int8
 * tensors come back as float32 (`dtype: "float32"`), with the wire's dtype in `wire`.
 */
export interface Tensor {
  shape: number[];
  dtype: DataType;
  data: TensorData;
  /** int8 only: value = q * scale. */
  scale?: number;
  /** The parameter's name in the model's layout, when it has one. */
  name?: string;
  /** Set by the decoder when the wire carried a compact dtype that was expanded to float32. */
  wire?: DataType;
}

export interface TrainingBatch {
  batchId: string;
  /** The samples themselves (a batch carried by value), absent when `offsets` names them. */
  samples?: Tensor;
  labels?: Tensor;
  metadata?: Record<string, string>;
  epoch?: number;
  index?: number;
  /** Data by reference: where the samples are in the run's dataset shard (see DataSource). */
  offsets?: number[];
}

/** Where the run's dataset shard is, and the hash that its bytes must have. */
export interface DataSource {
  name: string;
  url: string;
  sha256: string;
  bytes: number;
}

/** A STUN or TURN server for WebRTC between sessions, as RTCIceServer takes it. */
export interface IceServer {
  /** "stun:host:3478", "turn:host:3478?transport=tcp", … */
  url: string;
  username?: string;
  credential?: string;
}

/**
 * The protocol version a client states in its join; the coordinator refuses any other.
 * 2: the welcome carries no parameters (they come with the first lease).
 */
export const PROTOCOL_VERSION = 2;

export interface GradientUpdate {
  gradientId: string;
  /** One tensor per parameter, in the model's order. Encoded as `encoding` says (fp32 data in). */
  gradients: Tensor[];
  loss: number;
  timestamp: number;
  nodeId: string;
  batchId: string;
  leaseId: number;
  baseVersion: number;
  sampleCount: number;
  encoding: Encoding;
  kind: UpdateKind;
  correct?: number;
  innerSteps?: number;
  /**
   * Set, with `gradients` empty: a declaration for reduction among peers, the SHA-256 (32 bytes
   * each) of each of the update's REDUCE_PIECES pieces as fp32 bytes (shared/src/reduce.ts).
   */
  pieceHashes?: Uint8Array;
}

/** One declared update in a reduction group (see ReducePlan in the schema). */
export interface ReduceMember {
  session: string;
  leaseId: number;
  /** Its weight in the mean: the samples it trained on. */
  weight: number;
  pieceHashes: Uint8Array;
}

/**
 * An evaluation lease's work: the loss and correct predictions on held-out data of the run's
 * shard (test images, or validation windows starting at `offsets`), or, when `sampleTokens` > 0,
 * that many tokens generated after `prompt` from a generator seeded with `seed`.
 */
export interface HeldOut {
  offsets: number[];
  sampleTokens: number;
  prompt: string;
  seed: number;
}

/** What a contributor measured for an evaluation lease. */
export interface EvaluationReport {
  leaseId: number;
  version: number;
  /** The sum over the offsets of each one's mean loss, in nats. */
  loss: number;
  /** Correct predictions: images, or next characters. */
  correct: number;
  /** The generated text, the prompt included ("" for a loss part). */
  sample: string;
}

export interface ClientInfo {
  kind: string;
  adapter: string;
  softwareFallback: boolean;
  userAgent: string;
}

export type Layer =
  | { kind: "dense"; inputs: number; outputs: number; activation: Activation }
  | { kind: "flatten" };

/**
 * A decoder-only GPT (GPT-2's layout): token and learned position embeddings, `layers`
 * pre-LayerNorm blocks of causal self-attention and a 4×-wide GELU MLP, a final LayerNorm and a
 * head tied to the token embedding.
 */
export interface Transformer {
  vocabSize: number;
  contextLength: number;
  layers: number;
  heads: number;
  width: number;
  /** Drop probability after the embedding and after each attention and MLP, in [0, 1). */
  dropout: number;
}

export interface ModelSpec {
  name: string;
  inputShape: number[];
  /** Dense layers; empty for a transformer. */
  layers: Layer[];
  loss: Loss;
  seed: number;
  /** Set for a GPT; then inputShape is [contextLength]. */
  transformer?: Transformer;
}

export interface TrainingConfig {
  strategy: Strategy;
  batchSize: number;
  innerSteps: number;
  localOptimizer: LocalOptimizer;
  learningRate: number;
  momentum: number;
  weightDecay: number;
  updateEncoding: Encoding;
  /** ≥ 2: sessions with peers declare their updates and reduce them in groups; 0 or absent: off. */
  reduceGroup?: number;
}

export type Payload =
  | { type: "raw"; messageType: "request" | "response"; bytes: Uint8Array }
  | {
      type: "join";
      runId: string;
      sessionToken: string;
      client: ClientInfo;
      encodings: Encoding[];
      protocolVersion: number;
      /** It can take evaluation leases (a lease with `heldOut`). */
      evaluates?: boolean;
      /** The visitor's name for the leaderboard; absent or "" = anonymous. */
      displayName?: string;
      /** It can fetch and serve parameter frames over WebRTC. */
      peers?: boolean;
    }
  | {
      type: "welcome";
      runId: string;
      sessionId: string;
      sessionToken: string;
      model: ModelSpec;
      version: number;
      parameters: Tensor[];
      training: TrainingConfig;
      heartbeatMs: number;
      maxFrameBytes: number;
      /** The run's dataset shard, when leases name their batches by offsets. */
      data?: DataSource;
      /** STUN/TURN servers for WebRTC between sessions; absent = none (one machine or network). */
      iceServers?: IceServer[];
    }
  | { type: "leaseRequest"; maxBatches: number }
  | {
      type: "lease";
      leaseId: number;
      batch: TrainingBatch;
      baseVersion: number;
      deadline: number;
      innerSteps: number;
      /** Set: an evaluation lease on baseVersion's parameters (its batch is empty). */
      heldOut?: HeldOut;
      /**
       * Set: fetch baseVersion's parameter frame from this session over WebRTC, and check it
       * against `parametersSha256` (lowercase hex) before use.
       */
      parametersFrom?: string;
      parametersSha256?: string;
    }
  | ({ type: "gradientUpdate" } & GradientUpdate)
  | {
      type: "parameters";
      version: number;
      /** Absent: the tensors are the parameters. Set: they are params(version) - params(deltaFrom). */
      deltaFrom?: number;
      tensors: Tensor[];
    }
  | { type: "ack"; ref: string; leaseId: number; version: number }
  | { type: "error"; code: ErrorCode; message: string; ref: string; retryAfterMs: number }
  | { type: "heartbeat"; sentAt: number; samplesPerSecond: number }
  | { type: "signal"; payload: Uint8Array }
  | { type: "leave"; reason: string }
  | ({ type: "trainingBatch" } & TrainingBatch)
  | ({ type: "evaluation" } & EvaluationReport)
  /** The peer a lease named did not deliver `version`'s frame: the coordinator sends it. */
  | { type: "parametersRequest"; version: number; peer: string; failure: PeerFailure }
  /** The coordinator's plan for a group of declared updates: who reduces which part. */
  | {
      type: "reducePlan";
      group: number;
      version: number;
      members: ReduceMember[];
      deadline: number;
      aggregator: Aggregator;
      trim: number;
    }
  /** An owner's reduction of one part of a group's updates (data only from the reducing owner). */
  | {
      type: "reducedPart";
      group: number;
      part: number;
      data: Uint8Array;
      sha256: string;
      badBytes: string[];
      missing: string[];
    };

export type PayloadType = Payload["type"];

export interface WireMessage<P extends Payload = Payload> {
  messageId: string;
  /** A session id, or "coordinator". */
  sender: string;
  /** A session id, "coordinator", or "" for a broadcast. */
  recipient: string;
  /** Milliseconds since the Unix epoch. */
  timestamp: number;
  payload: P;
}

/** The MessageType each payload travels under (raw carries its own: request or response). */
export const messageTypeOf: Record<Exclude<PayloadType, "raw">, MessageType> = {
  join: "join",
  welcome: "welcome",
  leaseRequest: "request",
  lease: "lease",
  gradientUpdate: "gradientSync",
  parameters: "parameters",
  ack: "ack",
  error: "error",
  heartbeat: "heartbeat",
  signal: "signal",
  leave: "leave",
  trainingBatch: "response",
  evaluation: "evaluation",
  parametersRequest: "parametersRequest",
  reducePlan: "reducePlan",
  reducedPart: "reducedPart",
};
