// A contributor without a browser: joins a run, leases batches, computes updates with the float64
// CPU reference and sends them back. `pnpm pangea worker <url>` runs it over a WebSocket; the
// tests run many of them in one process. It speaks only frames, through `send`, so the same class
// serves any transport. `attack` makes it a misbehaving contributor for the adversarial tests.
import {
  type ClientInfo,
  decodeMessage,
  encodeMessage,
  type ModelSpec,
  type Payload,
  parameterLayout,
  type Tensor,
  type TrainingConfig,
} from "@pangea/shared";
import { lossAndGradient } from "@pangea/shaders/reference";
import { PROTOCOL_VERSION } from "../core/coordinator.ts";

export type Attack = "signFlip" | "nan" | "wrongShape" | "foreignLease";

export interface HeadlessWorkerOptions {
  /** "" lets the coordinator pick an active run. */
  runId?: string;
  /** A token from an earlier session, to resume it after a reconnect. */
  sessionToken?: string;
  /** Misbehaviours cycled through, one per update (honest when absent). */
  attacks?: Attack[];
  /** How a worker waits; setTimeout by default. */
  schedule?: (fn: () => void, ms: number) => void;
  /** Called for every message the worker receives (tests and logs). */
  onMessage?: (payload: Payload) => void;
}

export class HeadlessWorker {
  runId = "";
  sessionId = "";
  sessionToken: string;
  version = -1;
  updatesSent = 0;
  acks = 0;
  refusals: string[] = [];
  finished = false;
  private model: ModelSpec | undefined;
  private training: TrainingConfig | undefined;
  private params: Float32Array | undefined;
  private messages = 0;
  /** The id of the lease request awaiting its answer: one at a time, so that retries never multiply. */
  private leaseRequest = "";
  private joinRequest = "";
  private attackIndex = 0;
  private stopped = false;
  private readonly schedule: (fn: () => void, ms: number) => void;

  constructor(
    private readonly send: (frame: Uint8Array) => void,
    private readonly options: HeadlessWorkerOptions = {},
  ) {
    this.sessionToken = options.sessionToken ?? "";
    this.schedule = options.schedule ?? ((fn, ms) => setTimeout(fn, ms));
  }

  /** Sends the join; call again after a reconnect (the token resumes the session). */
  start(): void {
    this.stopped = false;
    const client: ClientInfo = {
      kind: "headless",
      adapter: "CPU reference (float64)",
      softwareFallback: true,
      userAgent: "pangea-worker",
    };
    // A reconnect loses whatever was in flight on the old connection.
    this.leaseRequest = "";
    this.joinRequest = this.post({
      type: "join",
      runId: this.options.runId ?? this.runId,
      sessionToken: this.sessionToken,
      client,
      encodings: ["fp32"],
      protocolVersion: PROTOCOL_VERSION,
    });
  }

  stop(): void {
    this.stopped = true;
  }

  receive(frame: Uint8Array): void {
    const decoded = decodeMessage(frame);
    if (!decoded.ok) throw new Error(`the coordinator sent a bad frame: ${decoded.error.message}`);
    const p = decoded.message.payload;
    this.options.onMessage?.(p);
    switch (p.type) {
      case "welcome":
        this.runId = p.runId;
        this.sessionId = p.sessionId;
        this.sessionToken = p.sessionToken;
        this.model = p.model;
        this.training = p.training;
        this.setParameters(p.version, p.parameters);
        this.heartbeat(p.heartbeatMs);
        this.requestLease();
        return;
      case "parameters":
        if (p.deltaFrom === undefined && p.version > this.version)
          this.setParameters(p.version, p.tensors);
        return;
      case "lease":
        this.leaseRequest = "";
        this.train(p);
        return;
      case "ack":
        this.acks++;
        return;
      case "error":
        this.refusals.push(p.code);
        // A refused update needs nothing more: the next lease was already asked for.
        if (p.ref !== "" && p.ref !== this.leaseRequest && p.ref !== this.joinRequest) return;
        if (p.ref === this.leaseRequest) this.leaseRequest = "";
        if (p.code === "rateLimited" || (p.code === "runNotActive" && p.retryAfterMs > 0)) {
          this.schedule(() => this.requestLease(), p.retryAfterMs || 500);
        } else if (p.code === "unknownRun" && p.retryAfterMs > 0) {
          // No run is active yet: ask to join again later.
          this.schedule(() => this.start(), p.retryAfterMs);
        } else if (
          p.code === "runNotActive" ||
          p.code === "quarantined" ||
          p.code === "unknownRun"
        ) {
          this.finished = true;
        } else if (p.ref === "" && p.code !== "internal") {
          return;
        } else {
          // A refused update or lease: carry on with the next batch.
          this.requestLease();
        }
        return;
      default:
        return;
    }
  }

  /** Keeps the session alive while it waits (a paused run, an idle epoch end). */
  private heartbeat(everyMs: number): void {
    const session = this.sessionId;
    this.schedule(() => {
      if (this.stopped || this.finished || session !== this.sessionId) return;
      this.post({ type: "heartbeat", sentAt: Date.now(), samplesPerSecond: 0 });
      this.heartbeat(everyMs);
    }, everyMs);
  }

  private setParameters(version: number, tensors: Tensor[]): void {
    const layout = parameterLayout(this.model!);
    const params = new Float32Array(layout.size);
    for (const [i, slot] of layout.slots.entries())
      params.set(tensors[i]!.data as Float32Array, slot.offset);
    this.params = params;
    this.version = version;
  }

  private requestLease(): void {
    if (this.stopped || this.finished || this.leaseRequest) return;
    this.leaseRequest = this.post({ type: "leaseRequest", maxBatches: 1 });
  }

  private train(lease: Extract<Payload, { type: "lease" }>): void {
    if (this.stopped) return;
    const model = this.model!;
    const training = this.training!;
    const inputs = lease.batch.samples.data as Float32Array;
    const labels = lease.batch.labels.data as Int32Array;
    const n = labels.length;
    // The lease names the version to start from; a worker that has not received it yet trains
    // from what it has and says so (baseVersion), and the coordinator judges the staleness.
    const start = this.params!;
    let update: Float32Array;
    let loss: number;
    let correct: number;
    if (training.strategy === "localSgd") {
      const local = Float64Array.from(start);
      const velocity = new Float64Array(local.length);
      const mu = training.localOptimizer === "sgd" ? 0 : training.momentum;
      loss = 0;
      correct = 0;
      for (let s = 0; s < lease.innerSteps; s++) {
        const r = lossAndGradient(model, local, inputs, labels, n);
        if (s === 0) {
          loss = r.loss;
          correct = r.correct;
        }
        for (let i = 0; i < local.length; i++) {
          velocity[i] = mu * velocity[i]! + r.grad[i]! + training.weightDecay * local[i]!;
          local[i]! -= training.learningRate * velocity[i]!;
        }
      }
      update = new Float32Array(local.length);
      for (let i = 0; i < local.length; i++) update[i] = start[i]! - local[i]!;
    } else {
      const r = lossAndGradient(model, start, inputs, labels, n);
      update = Float32Array.from(r.grad);
      loss = r.loss;
      correct = r.correct;
    }
    const layout = parameterLayout(model);
    let tensors: Tensor[] = layout.slots.map((slot) => ({
      shape: slot.shape,
      dtype: "float32",
      name: slot.name,
      data: update.subarray(slot.offset, slot.offset + slot.size),
    }));
    let leaseId = lease.leaseId;
    const attacks = this.options.attacks;
    if (attacks && attacks.length > 0) {
      const attack = attacks[this.attackIndex++ % attacks.length]!;
      if (attack === "signFlip")
        for (let i = 0; i < update.length; i++) update[i] = -10 * update[i]!;
      if (attack === "nan") update[Math.floor(update.length / 2)] = Number.NaN;
      if (attack === "wrongShape") tensors = tensors.slice(0, -1);
      if (attack === "foreignLease") leaseId = lease.leaseId - 1;
    }
    this.updatesSent++;
    this.post({
      type: "gradientUpdate",
      gradientId: `${this.sessionId}:${lease.leaseId}`,
      gradients: tensors,
      loss,
      correct,
      timestamp: Date.now(),
      nodeId: this.sessionId,
      batchId: lease.batch.batchId,
      leaseId,
      baseVersion: Math.min(this.version, lease.baseVersion),
      sampleCount: n,
      encoding: "fp32",
      kind: training.strategy === "localSgd" ? "parameterDelta" : "gradient",
      innerSteps: lease.innerSteps,
    });
    this.requestLease();
  }

  private post(payload: Payload): string {
    const messageId = `w${++this.messages}`;
    this.send(
      encodeMessage({
        messageId,
        sender: this.sessionId || "new",
        recipient: "coordinator",
        timestamp: Date.now(),
        payload,
      }),
    );
    return messageId;
  }
}
