// The codec: every Pangea frame is encoded and decoded here, and only here.
//
// decodeMessage never throws: a frame is either a WireMessage or a WireError that says why not.
// fp32 (and int32, uint8) tensors decode to typed-array views over the frame's own bytes when
// the frame sits at a 4-byte-aligned offset (a WebSocket's ArrayBuffer always does); otherwise
// that tensor is copied once. fp16 and int8 tensors decode to fp32.
import { enums, structs } from "../gen/layout.ts";
import {
  type DecodeLimits,
  defaultDecodeLimits,
  FrameReader,
  type StructView,
} from "./frame-reader.ts";
import { FrameWriter, type StructSlot } from "./frame-writer.ts";
import type {
  ClientInfo,
  DataSource,
  DataType,
  Encoding,
  GradientUpdate,
  HeldOut,
  IceServer,
  ModelSpec,
  Payload,
  PayloadType,
  Tensor,
  TrainingBatch,
  TrainingConfig,
  WireMessage,
} from "./messages.ts";
import { messageTypeOf } from "./messages.ts";
import { fp16ToFp32, fp32ToFp16, fp32ToInt8, int8ToFp32 } from "./quantize.ts";
import { WireError } from "./wire-error.ts";

if (new Uint8Array(new Uint16Array([1]).buffer)[0] !== 1) {
  // Tensors are copied as raw bytes; Cap'n Proto is little-endian.
  throw new Error("Pangea's wire codec needs a little-endian platform");
}

export type DecodeResult = { ok: true; message: WireMessage } | { ok: false; error: WireError };

const BYTES_PER: Record<DataType, number> = {
  float32: 4,
  float16: 2,
  int32: 4,
  int8: 1,
  uint8: 1,
};

// ---------------------------------------------------------------------------------------------
// Encoding
// ---------------------------------------------------------------------------------------------

/**
 * Encodes a message into a fresh buffer. For a stream of large frames prefer a FrameEncoder,
 * which reuses one buffer (allocating a large ArrayBuffer costs more than filling it).
 */
export function encodeMessage(message: WireMessage): Uint8Array {
  const writer = new FrameWriter(estimateBytes(message.payload));
  return writeMessage(writer, message);
}

/** Encodes into one buffer that it reuses: each frame is valid until the next `encode`. */
export class FrameEncoder {
  private readonly writer: FrameWriter;
  constructor(capacity = 64 * 1024) {
    this.writer = new FrameWriter(capacity);
  }
  encode(message: WireMessage): Uint8Array {
    return writeMessage(this.writer, message);
  }
}

function writeMessage(w: FrameWriter, message: WireMessage): Uint8Array {
  const M = structs.Message;
  const root = w.begin(M, estimateBytes(message.payload));
  const payload = message.payload;
  const messageType = payload.type === "raw" ? payload.messageType : messageTypeOf[payload.type];
  w.text(root, M.fields.messageId.ptr, message.messageId);
  w.u16(root, M.fields.messageType.byte, enumIndex("MessageType", messageType));
  w.text(root, M.fields.sender.ptr, message.sender);
  w.text(root, M.fields.recipient.ptr, message.recipient);
  w.u64(root, M.fields.timestamp.byte, message.timestamp, "timestamp");
  const P = structs["Message.payload"];
  const field = P.fields[payload.type];
  w.u16(root, P.unionAt, field.when);
  const at = field.ptr;
  switch (payload.type) {
    case "raw":
      writeBytes(w, root, at, payload.bytes);
      break;
    case "join": {
      const s = w.struct(root, at, structs.Join);
      const F = structs.Join.fields;
      w.text(s, F.runId.ptr, payload.runId);
      w.text(s, F.sessionToken.ptr, payload.sessionToken);
      writeClientInfo(w, w.struct(s, F.client.ptr, structs.ClientInfo), payload.client);
      w.scalars(
        s,
        F.encodings.ptr,
        16,
        payload.encodings.map((e) => enumIndex("Encoding", e)),
      );
      w.u16(s, F.protocolVersion.byte, payload.protocolVersion);
      w.bool(s, F.evaluates.bit, payload.evaluates === true);
      if (payload.displayName) w.text(s, F.displayName.ptr, payload.displayName);
      w.bool(s, F.peers.bit, payload.peers === true);
      break;
    }
    case "welcome": {
      const s = w.struct(root, at, structs.Welcome);
      const F = structs.Welcome.fields;
      w.text(s, F.runId.ptr, payload.runId);
      w.text(s, F.sessionId.ptr, payload.sessionId);
      w.text(s, F.sessionToken.ptr, payload.sessionToken);
      writeModelSpec(w, w.struct(s, F.model.ptr, structs.ModelSpec), payload.model);
      w.u64(s, F.version.byte, payload.version, "version");
      writeTensors(w, s, F.parameters.ptr, payload.parameters, "fp32");
      writeTrainingConfig(w, w.struct(s, F.training.ptr, structs.TrainingConfig), payload.training);
      w.u32(s, F.heartbeatMs.byte, payload.heartbeatMs);
      w.u32(s, F.maxFrameBytes.byte, payload.maxFrameBytes);
      if (payload.data) {
        const d = w.struct(s, F.data.ptr, structs.DataSource);
        const D = structs.DataSource.fields;
        w.text(d, D.name.ptr, payload.data.name);
        w.text(d, D.url.ptr, payload.data.url);
        w.text(d, D.sha256.ptr, payload.data.sha256);
        w.u64(d, D.bytes.byte, payload.data.bytes, "data.bytes");
      }
      if (payload.iceServers?.length) {
        const I = structs.IceServer.fields;
        const slots = w.structs(s, F.iceServers.ptr, structs.IceServer, payload.iceServers.length);
        payload.iceServers.forEach((server, i) => {
          const slot = slots[i]!;
          w.text(slot, I.url.ptr, server.url);
          if (server.username) w.text(slot, I.username.ptr, server.username);
          if (server.credential) w.text(slot, I.credential.ptr, server.credential);
        });
      }
      break;
    }
    case "leaseRequest": {
      const s = w.struct(root, at, structs.LeaseRequest);
      w.u32(s, structs.LeaseRequest.fields.maxBatches.byte, payload.maxBatches);
      break;
    }
    case "lease": {
      const s = w.struct(root, at, structs.Lease);
      const F = structs.Lease.fields;
      w.u64(s, F.leaseId.byte, payload.leaseId, "leaseId");
      writeTrainingBatch(w, w.struct(s, F.batch.ptr, structs.TrainingBatch), payload.batch);
      w.u64(s, F.baseVersion.byte, payload.baseVersion, "baseVersion");
      w.u64(s, F.deadline.byte, payload.deadline, "deadline");
      w.u32(s, F.innerSteps.byte, payload.innerSteps);
      if (payload.heldOut) {
        const h = w.struct(s, F.heldOut.ptr, structs.HeldOut);
        const H = structs.HeldOut.fields;
        w.scalars(h, H.offsets.ptr, 32, payload.heldOut.offsets);
        w.u32(h, H.sampleTokens.byte, payload.heldOut.sampleTokens);
        w.text(h, H.prompt.ptr, payload.heldOut.prompt);
        w.u32(h, H.seed.byte, payload.heldOut.seed);
      }
      if (payload.parametersFrom) w.text(s, F.parametersFrom.ptr, payload.parametersFrom);
      if (payload.parametersSha256) w.text(s, F.parametersSha256.ptr, payload.parametersSha256);
      break;
    }
    case "gradientUpdate":
      writeGradientUpdate(w, w.struct(root, at, structs.GradientUpdate), payload);
      break;
    case "parameters": {
      const s = w.struct(root, at, structs.ParameterBroadcast);
      const F = structs.ParameterBroadcast.fields;
      w.u64(s, F.version.byte, payload.version, "version");
      if (payload.deltaFrom !== undefined) {
        w.u16(s, structs.ParameterBroadcast.unionAt, F.deltaFrom.when);
        w.u64(s, F.deltaFrom.byte, payload.deltaFrom, "deltaFrom");
      }
      writeTensors(w, s, F.tensors.ptr, payload.tensors, "fp32");
      break;
    }
    case "ack": {
      const s = w.struct(root, at, structs.Ack);
      const F = structs.Ack.fields;
      w.text(s, F.ref.ptr, payload.ref);
      w.u64(s, F.leaseId.byte, payload.leaseId, "leaseId");
      w.u64(s, F.version.byte, payload.version, "version");
      break;
    }
    case "error": {
      const s = w.struct(root, at, structs.Error);
      const F = structs.Error.fields;
      w.u16(s, F.code.byte, enumIndex("ErrorCode", payload.code));
      w.text(s, F.message.ptr, payload.message);
      w.text(s, F.ref.ptr, payload.ref);
      w.u32(s, F.retryAfterMs.byte, payload.retryAfterMs);
      break;
    }
    case "heartbeat": {
      const s = w.struct(root, at, structs.Heartbeat);
      const F = structs.Heartbeat.fields;
      w.u64(s, F.sentAt.byte, payload.sentAt, "sentAt");
      w.f32(s, F.samplesPerSecond.byte, payload.samplesPerSecond);
      break;
    }
    case "signal": {
      const s = w.struct(root, at, structs.Signal);
      writeBytes(w, s, structs.Signal.fields.payload.ptr, payload.payload);
      break;
    }
    case "leave": {
      const s = w.struct(root, at, structs.Leave);
      w.text(s, structs.Leave.fields.reason.ptr, payload.reason);
      break;
    }
    case "trainingBatch":
      writeTrainingBatch(w, w.struct(root, at, structs.TrainingBatch), payload);
      break;
    case "evaluation": {
      const s = w.struct(root, at, structs.EvaluationReport);
      const F = structs.EvaluationReport.fields;
      w.u64(s, F.leaseId.byte, payload.leaseId, "leaseId");
      w.u64(s, F.version.byte, payload.version, "version");
      w.f64(s, F.loss.byte, payload.loss);
      w.u32(s, F.correct.byte, payload.correct);
      w.text(s, F.sample.ptr, payload.sample);
      break;
    }
    case "parametersRequest": {
      const s = w.struct(root, at, structs.ParametersRequest);
      const F = structs.ParametersRequest.fields;
      w.u64(s, F.version.byte, payload.version, "version");
      w.text(s, F.peer.ptr, payload.peer);
      w.u16(s, F.failure.byte, enumIndex("PeerFailure", payload.failure));
      break;
    }
    case "reducePlan": {
      const s = w.struct(root, at, structs.ReducePlan);
      const F = structs.ReducePlan.fields;
      const M = structs.ReduceMember.fields;
      w.u64(s, F.group.byte, payload.group, "group");
      w.u64(s, F.version.byte, payload.version, "version");
      const slots = w.structs(s, F.members.ptr, structs.ReduceMember, payload.members.length);
      payload.members.forEach((m, i) => {
        const slot = slots[i]!;
        w.text(slot, M.session.ptr, m.session);
        w.u64(slot, M.leaseId.byte, m.leaseId, "leaseId");
        w.f64(slot, M.weight.byte, m.weight);
        writeBytes(w, slot, M.pieceHashes.ptr, m.pieceHashes);
      });
      w.u64(s, F.deadline.byte, payload.deadline, "deadline");
      w.u16(s, F.aggregator.byte, enumIndex("Aggregator", payload.aggregator));
      w.f32(s, F.trim.byte, payload.trim);
      break;
    }
    case "reducedPart": {
      const s = w.struct(root, at, structs.ReducedPart);
      const F = structs.ReducedPart.fields;
      w.u64(s, F.group.byte, payload.group, "group");
      w.u32(s, F.part.byte, payload.part);
      if (payload.data.byteLength > 0) writeBytes(w, s, F.data.ptr, payload.data);
      w.text(s, F.sha256.ptr, payload.sha256);
      if (payload.badBytes.length) w.text(s, F.badBytes.ptr, payload.badBytes.join(","));
      if (payload.missing.length) w.text(s, F.missing.ptr, payload.missing.join(","));
      break;
    }
  }
  return w.finish();
}

function writeClientInfo(w: FrameWriter, s: StructSlot, c: ClientInfo): void {
  const F = structs.ClientInfo.fields;
  w.text(s, F.kind.ptr, c.kind);
  w.text(s, F.adapter.ptr, c.adapter);
  w.bool(s, F.softwareFallback.bit, c.softwareFallback);
  w.text(s, F.userAgent.ptr, c.userAgent);
}

function writeModelSpec(w: FrameWriter, s: StructSlot, m: ModelSpec): void {
  const F = structs.ModelSpec.fields;
  w.text(s, F.name.ptr, m.name);
  w.scalars(s, F.inputShape.ptr, 32, m.inputShape);
  const layers = w.structs(s, F.layers.ptr, structs.Layer, m.layers.length);
  const K = structs["Layer.kind"];
  m.layers.forEach((layer, i) => {
    const slot = layers[i]!;
    w.u16(slot, K.unionAt, K.fields[layer.kind].when);
    if (layer.kind === "dense") {
      const d = w.struct(slot, K.fields.dense.ptr, structs.DenseLayer);
      const D = structs.DenseLayer.fields;
      w.u32(d, D.inputs.byte, layer.inputs);
      w.u32(d, D.outputs.byte, layer.outputs);
      w.u16(d, D.activation.byte, enumIndex("Activation", layer.activation));
    }
  });
  w.u16(s, F.loss.byte, enumIndex("Loss", m.loss));
  w.u32(s, F.seed.byte, m.seed);
  if (m.transformer) {
    const t = w.struct(s, F.transformer.ptr, structs.Transformer);
    const X = structs.Transformer.fields;
    w.u32(t, X.vocabSize.byte, m.transformer.vocabSize);
    w.u32(t, X.contextLength.byte, m.transformer.contextLength);
    w.u32(t, X.layers.byte, m.transformer.layers);
    w.u32(t, X.heads.byte, m.transformer.heads);
    w.u32(t, X.width.byte, m.transformer.width);
    w.f32(t, X.dropout.byte, m.transformer.dropout);
  }
}

function writeTrainingConfig(w: FrameWriter, s: StructSlot, t: TrainingConfig): void {
  const F = structs.TrainingConfig.fields;
  w.u16(s, F.strategy.byte, enumIndex("Strategy", t.strategy));
  w.u32(s, F.batchSize.byte, t.batchSize);
  w.u32(s, F.innerSteps.byte, t.innerSteps);
  w.u16(s, F.localOptimizer.byte, enumIndex("LocalOptimizer", t.localOptimizer));
  w.f32(s, F.learningRate.byte, t.learningRate);
  w.f32(s, F.momentum.byte, t.momentum);
  w.f32(s, F.weightDecay.byte, t.weightDecay);
  w.u16(s, F.updateEncoding.byte, enumIndex("Encoding", t.updateEncoding));
  w.u32(s, F.reduceGroup.byte, t.reduceGroup ?? 0);
}

function writeTrainingBatch(w: FrameWriter, s: StructSlot, b: TrainingBatch): void {
  const F = structs.TrainingBatch.fields;
  w.text(s, F.batchId.ptr, b.batchId);
  if (b.samples) writeTensor(w, w.struct(s, F.samples.ptr, structs.Tensor), b.samples, "fp32");
  if (b.labels) writeTensor(w, w.struct(s, F.labels.ptr, structs.Tensor), b.labels, "fp32");
  if (b.offsets) w.scalars(s, F.offsets.ptr, 32, b.offsets);
  const entries = Object.entries(b.metadata ?? {});
  const slots = w.structs(s, F.metadata.ptr, structs.MetadataEntry, entries.length);
  entries.forEach(([key, value], i) => {
    w.text(slots[i]!, structs.MetadataEntry.fields.key.ptr, key);
    w.text(slots[i]!, structs.MetadataEntry.fields.value.ptr, value);
  });
  w.u32(s, F.epoch.byte, b.epoch ?? 0);
  w.u32(s, F.index.byte, b.index ?? 0);
}

function writeGradientUpdate(w: FrameWriter, s: StructSlot, g: GradientUpdate): void {
  const F = structs.GradientUpdate.fields;
  w.text(s, F.gradientId.ptr, g.gradientId);
  writeTensors(w, s, F.gradients.ptr, g.gradients, g.encoding);
  w.f32(s, F.loss.byte, g.loss);
  w.u64(s, F.timestamp.byte, g.timestamp, "timestamp");
  w.text(s, F.nodeId.ptr, g.nodeId);
  w.text(s, F.batchId.ptr, g.batchId);
  w.u64(s, F.leaseId.byte, g.leaseId, "leaseId");
  w.u64(s, F.baseVersion.byte, g.baseVersion, "baseVersion");
  w.u32(s, F.sampleCount.byte, g.sampleCount);
  w.u16(s, F.encoding.byte, enumIndex("Encoding", g.encoding));
  w.u16(s, F.kind.byte, enumIndex("UpdateKind", g.kind));
  w.u32(s, F.correct.byte, g.correct ?? 0);
  w.u32(s, F.innerSteps.byte, g.innerSteps ?? 0);
  if (g.pieceHashes) writeBytes(w, s, F.pieceHashes.ptr, g.pieceHashes);
}

function writeTensors(
  w: FrameWriter,
  s: StructSlot,
  index: number,
  tensors: readonly Tensor[],
  encoding: Encoding,
): void {
  const slots = w.structs(s, index, structs.Tensor, tensors.length);
  for (const [i, t] of tensors.entries()) writeTensor(w, slots[i]!, t, encoding);
}

/** Writes a tensor; float32 data is converted to fp16 or int8 when `encoding` asks for it. */
function writeTensor(w: FrameWriter, s: StructSlot, t: Tensor, encoding: Encoding): void {
  const F = structs.Tensor.fields;
  const count = elementCount(t.shape, "tensor shape");
  let dtype = t.dtype;
  if (dtype === "float32" && encoding !== "fp32") dtype = encoding === "fp16" ? "float16" : "int8";
  const expectedArray = dtype === t.dtype ? t.dtype : "float32";
  if (!matchesArray(t.data, expectedArray) || t.data.length !== count) {
    throw new WireError(
      "encode",
      `tensor ${t.name ?? ""} of shape [${t.shape}] needs ${count} ${t.dtype} values, got a ${t.data.constructor.name} of ${t.data.length}`,
    );
  }
  w.scalars(s, F.shape.ptr, 32, t.shape);
  w.u16(s, F.dtype.byte, enumIndex("DataType", dtype));
  if (t.name) w.text(s, F.name.ptr, t.name);
  const byteLength = count * BYTES_PER[dtype];
  const at = w.reserveData(s, F.data.ptr, byteLength);
  const buffer = w.arrayBuffer;
  if (dtype !== t.dtype) {
    // Quantize straight into the frame: no staging array.
    const src = t.data as Float32Array;
    if (dtype === "float16") fp32ToFp16(src, new Uint16Array(buffer, at, count));
    else w.f32(s, F.scale.byte, fp32ToInt8(src, new Int8Array(buffer, at, count)));
  } else {
    w.bytesAt(at, byteLength).set(new Uint8Array(t.data.buffer, t.data.byteOffset, byteLength));
    if (dtype === "int8") w.f32(s, F.scale.byte, t.scale ?? 0);
  }
}

function writeBytes(w: FrameWriter, s: StructSlot, index: number, bytes: Uint8Array): void {
  if (bytes.byteLength === 0) return;
  const at = w.reserveData(s, index, bytes.byteLength);
  w.bytesAt(at, bytes.byteLength).set(bytes);
}

function matchesArray(data: Tensor["data"], dtype: DataType): boolean {
  switch (dtype) {
    case "float32":
      return data instanceof Float32Array;
    case "float16":
      return data instanceof Uint16Array;
    case "int32":
      return data instanceof Int32Array;
    case "int8":
      return data instanceof Int8Array;
    case "uint8":
      return data instanceof Uint8Array;
  }
}

/** A close upper bound of a payload's frame size, so the writer rarely has to grow. */
function estimateBytes(payload: Payload): number {
  let bytes = 4096;
  const add = (t: Tensor | undefined) => {
    if (!t) return;
    bytes += t.data.byteLength + 8 * t.shape.length + (t.name?.length ?? 0) * 3 + 96;
  };
  switch (payload.type) {
    case "raw":
      bytes += payload.bytes.byteLength;
      break;
    case "signal":
      bytes += payload.payload.byteLength;
      break;
    case "reducedPart":
      bytes += payload.data.byteLength;
      break;
    case "reducePlan":
      for (const m of payload.members)
        bytes += m.pieceHashes.byteLength + m.session.length * 3 + 64;
      break;
    case "welcome":
      payload.parameters.forEach(add);
      break;
    case "parameters":
      payload.tensors.forEach(add);
      break;
    case "gradientUpdate":
      payload.gradients.forEach(add);
      break;
    case "lease":
      add(payload.batch.samples);
      add(payload.batch.labels);
      bytes += 4 * (payload.batch.offsets?.length ?? 0);
      bytes +=
        4 * (payload.heldOut?.offsets.length ?? 0) + 3 * (payload.heldOut?.prompt.length ?? 0);
      break;
    case "evaluation":
      bytes += 3 * payload.sample.length;
      break;
    case "trainingBatch":
      add(payload.samples);
      add(payload.labels);
      bytes += 4 * (payload.offsets?.length ?? 0);
      break;
    default:
      break;
  }
  return bytes;
}

// ---------------------------------------------------------------------------------------------
// Decoding
// ---------------------------------------------------------------------------------------------

const noLimits: Partial<DecodeLimits> = Object.freeze({});

/**
 * Decodes one frame. Never throws: any frame that fails a check (size, segment table, pointers,
 * traversal, nesting, text, enums, tensor sizes) comes back as `{ ok: false, error }`.
 */
export function decodeMessage(
  frame: Uint8Array | ArrayBuffer,
  limits: Partial<DecodeLimits> = noLimits,
): DecodeResult {
  const bytes = frame instanceof Uint8Array ? frame : new Uint8Array(frame);
  try {
    const merged =
      limits === noLimits ? defaultDecodeLimits : { ...defaultDecodeLimits, ...limits };
    const reader = new FrameReader(bytes, merged);
    return { ok: true, message: readMessage(reader) };
  } catch (error) {
    if (error instanceof WireError) return { ok: false, error };
    // Every check above should have caught a bad frame first; if one did not, the frame is
    // still refused (never the process), and the fuzz test fails on this code.
    return { ok: false, error: new WireError("unchecked", `undecodable frame: ${String(error)}`) };
  }
}

const variantByDiscriminant: PayloadType[] = [];
for (const [name, field] of Object.entries(structs["Message.payload"].fields)) {
  variantByDiscriminant[field.when] = name as PayloadType;
}

function readMessage(r: FrameReader): WireMessage {
  const M = structs.Message;
  const root = r.root();
  const messageType = enumName(r, "MessageType", r.u16(root, M.fields.messageType.byte));
  const P = structs["Message.payload"];
  const which = r.u16(root, P.unionAt);
  const variant = variantByDiscriminant[which];
  if (!variant) throw new WireError("message", `unknown payload variant ${which}`);
  const payload = readPayload(r, root, variant, messageType);
  const expected = payload.type === "raw" ? payload.messageType : messageTypeOf[payload.type];
  if (expected !== messageType) {
    throw new WireError(
      "message",
      `a ${variant} payload cannot travel as messageType ${messageType}`,
    );
  }
  return {
    messageId: r.text(root, M.fields.messageId.ptr, "messageId"),
    sender: r.text(root, M.fields.sender.ptr, "sender"),
    recipient: r.text(root, M.fields.recipient.ptr, "recipient"),
    timestamp: r.u64(root, M.fields.timestamp.byte, "timestamp"),
    payload,
  };
}

function readPayload(
  r: FrameReader,
  root: StructView,
  variant: PayloadType,
  messageType: string,
): Payload {
  const P = structs["Message.payload"].fields;
  const at = P[variant].ptr;
  const need = (what: string) => {
    const s = r.struct(root, at);
    if (!s) throw new WireError("message", `the ${what} payload is missing`);
    return s;
  };
  switch (variant) {
    case "raw": {
      if (messageType !== "request" && messageType !== "response") {
        throw new WireError("message", `a raw payload cannot travel as messageType ${messageType}`);
      }
      return { type: "raw", messageType, bytes: readBytes(r, root, at, "raw") };
    }
    case "join": {
      const s = need(variant);
      const F = structs.Join.fields;
      return {
        type: "join",
        runId: r.text(s, F.runId.ptr, "join.runId"),
        sessionToken: r.text(s, F.sessionToken.ptr, "join.sessionToken"),
        client: readClientInfo(r, r.struct(s, F.client.ptr)),
        encodings: r
          .scalars(s, F.encodings.ptr, 16, "join.encodings")
          .map((e) => enumName(r, "Encoding", e)),
        protocolVersion: r.u16(s, F.protocolVersion.byte),
        ...(r.bool(s, F.evaluates.bit) ? { evaluates: true } : {}),
        ...nonEmpty("displayName", r.text(s, F.displayName.ptr, "join.displayName")),
        ...(r.bool(s, F.peers.bit) ? { peers: true } : {}),
      };
    }
    case "welcome": {
      const s = need(variant);
      const F = structs.Welcome.fields;
      return {
        type: "welcome",
        runId: r.text(s, F.runId.ptr, "welcome.runId"),
        sessionId: r.text(s, F.sessionId.ptr, "welcome.sessionId"),
        sessionToken: r.text(s, F.sessionToken.ptr, "welcome.sessionToken"),
        model: readModelSpec(r, r.struct(s, F.model.ptr)),
        version: r.u64(s, F.version.byte, "welcome.version"),
        parameters: readTensors(r, s, F.parameters.ptr, "welcome.parameters"),
        training: readTrainingConfig(r, r.struct(s, F.training.ptr)),
        heartbeatMs: r.u32(s, F.heartbeatMs.byte),
        maxFrameBytes: r.u32(s, F.maxFrameBytes.byte),
        ...readDataSource(r, r.struct(s, F.data.ptr)),
        ...readIceServers(r, s, F.iceServers.ptr),
      };
    }
    case "leaseRequest": {
      const s = need(variant);
      return {
        type: "leaseRequest",
        maxBatches: r.u32(s, structs.LeaseRequest.fields.maxBatches.byte),
      };
    }
    case "lease": {
      const s = need(variant);
      const F = structs.Lease.fields;
      const batch = r.struct(s, F.batch.ptr);
      const held = readHeldOut(r, r.struct(s, F.heldOut.ptr));
      // An evaluation lease's batch only names it: its data is the held-out part.
      if (!batch && !held.heldOut) throw new WireError("message", "the lease carries no batch");
      return {
        type: "lease",
        leaseId: r.u64(s, F.leaseId.byte, "lease.leaseId"),
        batch: held.heldOut
          ? {
              batchId: batch
                ? r.text(batch, structs.TrainingBatch.fields.batchId.ptr, "batchId")
                : "",
              metadata: {},
            }
          : readTrainingBatch(r, batch!),
        baseVersion: r.u64(s, F.baseVersion.byte, "lease.baseVersion"),
        deadline: r.u64(s, F.deadline.byte, "lease.deadline"),
        innerSteps: r.u32(s, F.innerSteps.byte),
        ...held,
        ...nonEmpty("parametersFrom", r.text(s, F.parametersFrom.ptr, "lease.parametersFrom")),
        ...nonEmpty(
          "parametersSha256",
          r.text(s, F.parametersSha256.ptr, "lease.parametersSha256"),
        ),
      };
    }
    case "gradientUpdate":
      return { type: "gradientUpdate", ...readGradientUpdate(r, need(variant)) };
    case "parameters": {
      const s = need(variant);
      const B = structs.ParameterBroadcast;
      const F = B.fields;
      const which = r.u16(s, B.unionAt);
      if (which !== F.full.when && which !== F.deltaFrom.when) {
        throw new WireError("message", `unknown parameter broadcast kind ${which}`);
      }
      const version = r.u64(s, F.version.byte, "parameters.version");
      const tensors = readTensors(r, s, F.tensors.ptr, "parameters.tensors");
      return which === F.deltaFrom.when
        ? {
            type: "parameters",
            version,
            deltaFrom: r.u64(s, F.deltaFrom.byte, "parameters.deltaFrom"),
            tensors,
          }
        : { type: "parameters", version, tensors };
    }
    case "ack": {
      const s = need(variant);
      const F = structs.Ack.fields;
      return {
        type: "ack",
        ref: r.text(s, F.ref.ptr, "ack.ref"),
        leaseId: r.u64(s, F.leaseId.byte, "ack.leaseId"),
        version: r.u64(s, F.version.byte, "ack.version"),
      };
    }
    case "error": {
      const s = need(variant);
      const F = structs.Error.fields;
      return {
        type: "error",
        code: enumName(r, "ErrorCode", r.u16(s, F.code.byte)),
        message: r.text(s, F.message.ptr, "error.message"),
        ref: r.text(s, F.ref.ptr, "error.ref"),
        retryAfterMs: r.u32(s, F.retryAfterMs.byte),
      };
    }
    case "heartbeat": {
      const s = need(variant);
      const F = structs.Heartbeat.fields;
      return {
        type: "heartbeat",
        sentAt: r.u64(s, F.sentAt.byte, "heartbeat.sentAt"),
        samplesPerSecond: r.f32(s, F.samplesPerSecond.byte),
      };
    }
    case "signal": {
      const s = need(variant);
      return {
        type: "signal",
        payload: readBytes(r, s, structs.Signal.fields.payload.ptr, "signal"),
      };
    }
    case "leave": {
      const s = need(variant);
      return { type: "leave", reason: r.text(s, structs.Leave.fields.reason.ptr, "leave.reason") };
    }
    case "trainingBatch":
      return { type: "trainingBatch", ...readTrainingBatch(r, need(variant)) };
    case "evaluation": {
      const s = need(variant);
      const F = structs.EvaluationReport.fields;
      return {
        type: "evaluation",
        leaseId: r.u64(s, F.leaseId.byte, "evaluation.leaseId"),
        version: r.u64(s, F.version.byte, "evaluation.version"),
        loss: r.f64(s, F.loss.byte),
        correct: r.u32(s, F.correct.byte),
        sample: r.text(s, F.sample.ptr, "evaluation.sample"),
      };
    }
    case "parametersRequest": {
      const s = need(variant);
      const F = structs.ParametersRequest.fields;
      return {
        type: "parametersRequest",
        version: r.u64(s, F.version.byte, "parametersRequest.version"),
        peer: r.text(s, F.peer.ptr, "parametersRequest.peer"),
        failure: enumName(r, "PeerFailure", r.u16(s, F.failure.byte)),
      };
    }
    case "reducePlan": {
      const s = need(variant);
      const F = structs.ReducePlan.fields;
      const M = structs.ReduceMember.fields;
      return {
        type: "reducePlan",
        group: r.u64(s, F.group.byte, "reducePlan.group"),
        version: r.u64(s, F.version.byte, "reducePlan.version"),
        members: r.structs(s, F.members.ptr, "reducePlan.members").map((m) => ({
          session: r.text(m, M.session.ptr, "reduceMember.session"),
          leaseId: r.u64(m, M.leaseId.byte, "reduceMember.leaseId"),
          weight: r.f64(m, M.weight.byte),
          pieceHashes: readBytes(r, m, M.pieceHashes.ptr, "reduceMember.pieceHashes"),
        })),
        deadline: r.u64(s, F.deadline.byte, "reducePlan.deadline"),
        aggregator: enumName(r, "Aggregator", r.u16(s, F.aggregator.byte)),
        trim: r.f32(s, F.trim.byte),
      };
    }
    case "reducedPart": {
      const s = need(variant);
      const F = structs.ReducedPart.fields;
      const list = (text: string) => (text === "" ? [] : text.split(","));
      return {
        type: "reducedPart",
        group: r.u64(s, F.group.byte, "reducedPart.group"),
        part: r.u32(s, F.part.byte),
        data: readBytes(r, s, F.data.ptr, "reducedPart.data"),
        sha256: r.text(s, F.sha256.ptr, "reducedPart.sha256"),
        badBytes: list(r.text(s, F.badBytes.ptr, "reducedPart.badBytes")),
        missing: list(r.text(s, F.missing.ptr, "reducedPart.missing")),
      };
    }
  }
}

function readIceServers(
  r: FrameReader,
  s: StructView,
  index: number,
): { iceServers?: IceServer[] } {
  const I = structs.IceServer.fields;
  const servers = r.structs(s, index, "welcome.iceServers").map((slot) => ({
    url: r.text(slot, I.url.ptr, "iceServer.url"),
    ...nonEmpty("username", r.text(slot, I.username.ptr, "iceServer.username")),
    ...nonEmpty("credential", r.text(slot, I.credential.ptr, "iceServer.credential")),
  }));
  return servers.length ? { iceServers: servers } : {};
}

function readHeldOut(r: FrameReader, s: StructView | null): { heldOut?: HeldOut } {
  if (!s) return {};
  const F = structs.HeldOut.fields;
  return {
    heldOut: {
      offsets: r.scalars(s, F.offsets.ptr, 32, "heldOut.offsets"),
      sampleTokens: r.u32(s, F.sampleTokens.byte),
      prompt: r.text(s, F.prompt.ptr, "heldOut.prompt"),
      seed: r.u32(s, F.seed.byte),
    },
  };
}

function readClientInfo(r: FrameReader, s: StructView | null): ClientInfo {
  const F = structs.ClientInfo.fields;
  if (!s) return { kind: "", adapter: "", softwareFallback: false, userAgent: "" };
  return {
    kind: r.text(s, F.kind.ptr, "client.kind"),
    adapter: r.text(s, F.adapter.ptr, "client.adapter"),
    softwareFallback: r.bool(s, F.softwareFallback.bit),
    userAgent: r.text(s, F.userAgent.ptr, "client.userAgent"),
  };
}

function readModelSpec(r: FrameReader, s: StructView | null): ModelSpec {
  if (!s) throw new WireError("message", "the welcome carries no model spec");
  const F = structs.ModelSpec.fields;
  const K = structs["Layer.kind"];
  const layers = r
    .structs(s, F.layers.ptr, "model.layers")
    .map((layer): ModelSpec["layers"][number] => {
      const which = r.u16(layer, K.unionAt);
      if (which === K.fields.flatten.when) return { kind: "flatten" };
      if (which !== K.fields.dense.when)
        throw new WireError("message", `unknown layer kind ${which}`);
      const d = r.struct(layer, K.fields.dense.ptr);
      if (!d) throw new WireError("message", "a dense layer has no settings");
      const D = structs.DenseLayer.fields;
      return {
        kind: "dense",
        inputs: r.u32(d, D.inputs.byte),
        outputs: r.u32(d, D.outputs.byte),
        activation: enumName(r, "Activation", r.u16(d, D.activation.byte)),
      };
    });
  const t = r.struct(s, F.transformer.ptr);
  const X = structs.Transformer.fields;
  return {
    name: r.text(s, F.name.ptr, "model.name"),
    inputShape: r.scalars(s, F.inputShape.ptr, 32, "model.inputShape"),
    layers,
    loss: enumName(r, "Loss", r.u16(s, F.loss.byte)),
    seed: r.u32(s, F.seed.byte),
    ...(t
      ? {
          transformer: {
            vocabSize: r.u32(t, X.vocabSize.byte),
            contextLength: r.u32(t, X.contextLength.byte),
            layers: r.u32(t, X.layers.byte),
            heads: r.u32(t, X.heads.byte),
            width: r.u32(t, X.width.byte),
            dropout: r.f32(t, X.dropout.byte),
          },
        }
      : {}),
  };
}

function readTrainingConfig(r: FrameReader, s: StructView | null): TrainingConfig {
  if (!s) throw new WireError("message", "the welcome carries no training config");
  const F = structs.TrainingConfig.fields;
  return {
    strategy: enumName(r, "Strategy", r.u16(s, F.strategy.byte)),
    batchSize: r.u32(s, F.batchSize.byte),
    innerSteps: r.u32(s, F.innerSteps.byte),
    localOptimizer: enumName(r, "LocalOptimizer", r.u16(s, F.localOptimizer.byte)),
    learningRate: r.f32(s, F.learningRate.byte),
    momentum: r.f32(s, F.momentum.byte),
    weightDecay: r.f32(s, F.weightDecay.byte),
    updateEncoding: enumName(r, "Encoding", r.u16(s, F.updateEncoding.byte)),
    ...(r.u32(s, F.reduceGroup.byte) > 0 ? { reduceGroup: r.u32(s, F.reduceGroup.byte) } : {}),
  };
}

function readTrainingBatch(r: FrameReader, s: StructView): TrainingBatch {
  const F = structs.TrainingBatch.fields;
  const samples = r.struct(s, F.samples.ptr);
  const labels = r.struct(s, F.labels.ptr);
  const offsets = r.scalars(s, F.offsets.ptr, 32, "batch.offsets");
  // A batch is carried by value (samples and labels) or by reference (offsets), never neither.
  if ((!samples || !labels) && offsets.length === 0)
    throw new WireError("message", "a training batch has neither samples and labels nor offsets");
  const metadata: Record<string, string> = {};
  for (const entry of r.structs(s, F.metadata.ptr, "batch.metadata")) {
    const E = structs.MetadataEntry.fields;
    metadata[r.text(entry, E.key.ptr, "metadata.key")] = r.text(
      entry,
      E.value.ptr,
      "metadata.value",
    );
  }
  return {
    batchId: r.text(s, F.batchId.ptr, "batch.batchId"),
    ...(samples && labels
      ? {
          samples: readTensor(r, samples, "batch.samples"),
          labels: readTensor(r, labels, "batch.labels"),
        }
      : {}),
    ...(offsets.length > 0 ? { offsets } : {}),
    metadata,
    epoch: r.u32(s, F.epoch.byte),
    index: r.u32(s, F.index.byte),
  };
}

function readDataSource(r: FrameReader, s: StructView | null): { data?: DataSource } {
  if (!s) return {};
  const D = structs.DataSource.fields;
  return {
    data: {
      name: r.text(s, D.name.ptr, "data.name"),
      url: r.text(s, D.url.ptr, "data.url"),
      sha256: r.text(s, D.sha256.ptr, "data.sha256"),
      bytes: r.u64(s, D.bytes.byte, "data.bytes"),
    },
  };
}

function readGradientUpdate(r: FrameReader, s: StructView): GradientUpdate {
  const F = structs.GradientUpdate.fields;
  return {
    gradientId: r.text(s, F.gradientId.ptr, "update.gradientId"),
    gradients: readTensors(r, s, F.gradients.ptr, "update.gradients"),
    loss: r.f32(s, F.loss.byte),
    timestamp: r.u64(s, F.timestamp.byte, "update.timestamp"),
    nodeId: r.text(s, F.nodeId.ptr, "update.nodeId"),
    batchId: r.text(s, F.batchId.ptr, "update.batchId"),
    leaseId: r.u64(s, F.leaseId.byte, "update.leaseId"),
    baseVersion: r.u64(s, F.baseVersion.byte, "update.baseVersion"),
    sampleCount: r.u32(s, F.sampleCount.byte),
    encoding: enumName(r, "Encoding", r.u16(s, F.encoding.byte)),
    kind: enumName(r, "UpdateKind", r.u16(s, F.kind.byte)),
    correct: r.u32(s, F.correct.byte),
    innerSteps: r.u32(s, F.innerSteps.byte),
    ...(r.data(s, F.pieceHashes.ptr, "update.pieceHashes")
      ? { pieceHashes: readBytes(r, s, F.pieceHashes.ptr, "update.pieceHashes") }
      : {}),
  };
}

function readTensors(r: FrameReader, s: StructView, index: number, what: string): Tensor[] {
  return r.structs(s, index, what).map((t, i) => readTensor(r, t, `${what}[${i}]`));
}

function readTensor(r: FrameReader, s: StructView, what: string): Tensor {
  const F = structs.Tensor.fields;
  const shape = r.scalars(s, F.shape.ptr, 32, `${what}.shape`);
  const dtype = enumName(r, "DataType", r.u16(s, F.dtype.byte));
  const count = elementCount(shape, what);
  const data = r.data(s, F.data.ptr, `${what}.data`) ?? { offset: 0, length: 0 };
  const expected = count * BYTES_PER[dtype];
  if (data.length !== expected) {
    throw new WireError(
      "tensor",
      `${what}: shape [${shape}] of ${dtype} needs ${expected} bytes, the frame carries ${data.length}`,
    );
  }
  const name = r.text(s, F.name.ptr, `${what}.name`);
  const bytes = r.bytes;
  let tensor: Tensor;
  switch (dtype) {
    case "float32":
      tensor = { shape, dtype, data: view(bytes, data.offset, count, Float32Array) };
      break;
    case "int32":
      tensor = { shape, dtype, data: view(bytes, data.offset, count, Int32Array) };
      break;
    case "uint8":
      tensor = { shape, dtype, data: bytes.subarray(data.offset, data.offset + count) };
      break;
    case "float16": {
      const out = new Float32Array(count);
      fp16ToFp32(view(bytes, data.offset, count, Uint16Array), out);
      tensor = { shape, dtype: "float32", data: out, wire: "float16" };
      break;
    }
    case "int8": {
      const scale = r.f32(s, F.scale.byte);
      if (!Number.isFinite(scale))
        throw new WireError("tensor", `${what}: the int8 scale is not finite`);
      const out = new Float32Array(count);
      int8ToFp32(new Int8Array(bytes.buffer, bytes.byteOffset + data.offset, count), scale, out);
      tensor = { shape, dtype: "float32", data: out, wire: "int8", scale };
      break;
    }
  }
  if (name) tensor.name = name;
  return tensor;
}

type ViewConstructor<T> = {
  new (buffer: ArrayBuffer, byteOffset: number, length: number): T;
  BYTES_PER_ELEMENT: number;
};

/** A view over the frame's bytes when aligned; otherwise a copy (a frame at an odd offset). */
function view<T>(bytes: Uint8Array, offset: number, count: number, Type: ViewConstructor<T>): T {
  const at = bytes.byteOffset + offset;
  if (at % Type.BYTES_PER_ELEMENT === 0) return new Type(bytes.buffer as ArrayBuffer, at, count);
  const copy = bytes.slice(offset, offset + count * Type.BYTES_PER_ELEMENT);
  return new Type(copy.buffer, 0, count);
}

function readBytes(r: FrameReader, s: StructView, index: number, what: string): Uint8Array {
  const data = r.data(s, index, what);
  return data ? r.bytes.subarray(data.offset, data.offset + data.length) : new Uint8Array(0);
}

function elementCount(shape: readonly number[], what: string): number {
  let count = 1;
  for (const d of shape) {
    if (!Number.isInteger(d) || d < 0 || d > 0xffffffff) {
      throw new WireError(
        what === "tensor shape" ? "encode" : "tensor",
        `${what}: bad dimension ${d}`,
      );
    }
    count *= d;
  }
  if (count > 2 ** 31) throw new WireError("tensor", `${what}: ${count} elements is too many`);
  return count;
}

type EnumName = keyof typeof enums;

function enumIndex<E extends EnumName>(name: E, value: (typeof enums)[E][number]): number {
  const index = (enums[name] as readonly string[]).indexOf(value);
  if (index < 0) throw new WireError("encode", `${String(value)} is not a ${name}`);
  return index;
}

function enumName<E extends EnumName>(
  _r: FrameReader,
  name: E,
  index: number,
): (typeof enums)[E][number] {
  const value = (enums[name] as readonly string[])[index];
  if (value === undefined) throw new WireError("enum", `${index} is not a known ${name}`);
  return value as (typeof enums)[E][number];
}

/** `{ [key]: text }` when the text is not empty, else nothing (optional Text fields). */
function nonEmpty<K extends string>(key: K, text: string): { [P in K]?: string } {
  return (text === "" ? {} : { [key]: text }) as { [P in K]?: string };
}
