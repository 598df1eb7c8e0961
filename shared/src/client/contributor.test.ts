// The contributor's protocol against a scripted coordinator: frames in, frames out, on a manual
// clock. (The whole loop against the real coordinator runs in coordinator/ and playwright/.)
import { describe, expect, it } from "vitest";
import { decodeMessage, encodeMessage } from "../wire/codec.ts";
import { mlpSpec, parameterLayout } from "../model/model-spec.ts";
import type { Payload, TrainingConfig } from "../wire/messages.ts";
import { Contributor, type Lease, type Trainer } from "./contributor.ts";

const model = mlpSpec([4, 3], { seed: 1 });
const training: TrainingConfig = {
  strategy: "asynchronous",
  batchSize: 2,
  innerSteps: 1,
  localOptimizer: "sgd",
  learningRate: 0.1,
  momentum: 0,
  weightDecay: 0,
  updateEncoding: "fp32",
};
const layout = parameterLayout(model);
const tensors = () =>
  layout.slots.map((s) => ({
    name: s.name,
    shape: s.shape,
    dtype: "float32" as const,
    data: new Float32Array(s.size),
  }));

function setup(options: { prefetch?: boolean; workMs?: number } = {}) {
  let now = 0;
  const timers: { at: number; fn: () => void }[] = [];
  const sent: Payload[] = [];
  const ids: string[] = [];
  const trainer: Trainer = {
    client: { kind: "test", adapter: "none", softwareFallback: true, userAgent: "test" },
    prepare: () => {},
    setParameters: () => {},
    work: () => {
      now += options.workMs ?? 100;
      return { tensors: tensors(), encoding: "fp32", loss: 1, correct: 0 };
    },
  };
  const c = new Contributor(trainer, {
    schedule: (fn, ms) => timers.push({ at: now + ms, fn }),
    now: () => now,
    prefetch: options.prefetch,
  });
  c.connect((frame) => {
    const m = decodeMessage(frame);
    if (!m.ok) throw new Error(m.error.message);
    sent.push(m.message.payload);
    ids.push(m.message.messageId);
  });
  const deliver = (payload: Payload) =>
    c.receive(
      encodeMessage({
        messageId: "c",
        sender: "coordinator",
        recipient: "",
        timestamp: 0,
        payload,
      }),
    );
  const lease = (id: number): Lease => ({
    type: "lease",
    leaseId: id,
    baseVersion: 0,
    deadline: 0,
    innerSteps: 1,
    batch: {
      batchId: `0:${id}`,
      epoch: 0,
      index: id,
      samples: { shape: [2, 4], dtype: "float32", data: new Float32Array(8) },
      labels: { shape: [2], dtype: "int32", data: new Int32Array(2) },
    },
  });
  const advance = (ms: number) => {
    now += ms;
    for (const t of timers.splice(0).sort((a, b) => a.at - b.at)) {
      if (t.at <= now) t.fn();
      else timers.push(t);
    }
  };
  const welcome = () =>
    deliver({
      type: "welcome",
      runId: "run",
      sessionId: "s",
      sessionToken: "t",
      model,
      version: 0,
      parameters: tensors(),
      training,
      heartbeatMs: 60_000,
      maxFrameBytes: 1 << 20,
    });
  const types = () => sent.map((p) => p.type);
  return { c, sent, ids, deliver, lease, advance, welcome, types };
}

describe("a contributor", () => {
  it("keeps one lease request in flight, however many refusals come back", () => {
    const t = setup();
    t.welcome();
    expect(t.types()).toEqual(["join", "leaseRequest"]);
    const request = t.ids[1]!;
    // Refusals of earlier updates (their own refs) start no new requests.
    for (let i = 0; i < 5; i++)
      t.deliver({
        type: "error",
        code: "unknownLease",
        message: "",
        ref: `w${90 + i}`,
        retryAfterMs: 0,
      });
    expect(t.types().filter((x) => x === "leaseRequest")).toHaveLength(1);
    // The answer to the request itself schedules exactly one retry.
    t.deliver({ type: "error", code: "rateLimited", message: "", ref: request, retryAfterMs: 250 });
    t.advance(300);
    expect(t.types().filter((x) => x === "leaseRequest")).toHaveLength(2);
  });

  it("trains a lease, sends the update, and asks for the next; prefetching asks while working", () => {
    const t = setup();
    t.welcome();
    t.deliver(t.lease(1));
    expect(t.types()).toEqual(["join", "leaseRequest", "gradientUpdate", "leaseRequest"]);
    const p = setup({ prefetch: true });
    p.welcome();
    p.deliver(p.lease(1));
    // The synchronous trainer finished lease 1 before the prefetch check: one request follows.
    expect(p.types().filter((x) => x === "gradientUpdate")).toHaveLength(1);
    expect(p.types().at(-1)).toBe("leaseRequest");
  });

  it("rests in proportion to its work when throttled", () => {
    const t = setup({ workMs: 100 });
    t.c.duty = 0.5;
    t.welcome();
    t.deliver(t.lease(1));
    expect(t.types().at(-1)).toBe("gradientUpdate");
    t.advance(99);
    expect(t.types().at(-1)).toBe("gradientUpdate");
    t.advance(2);
    expect(t.types().at(-1)).toBe("leaseRequest");
  });

  it("asks for nothing while paused, and again on resume; leaves with a goodbye", () => {
    const t = setup();
    t.welcome();
    t.c.pause();
    t.deliver(t.lease(1));
    expect(t.types().at(-1)).toBe("gradientUpdate");
    t.advance(10_000);
    expect(t.types().at(-1)).toBe("gradientUpdate");
    t.c.resume();
    expect(t.types().at(-1)).toBe("leaseRequest");
    t.c.leave();
    expect(t.types().at(-1)).toBe("leave");
    expect(t.c.finished).toBe(true);
  });

  it("rejoins with its session token after a reconnect, and waits for the welcome", () => {
    const t = setup();
    t.welcome();
    t.c.disconnect();
    const again: Payload[] = [];
    t.c.connect((frame) => {
      const m = decodeMessage(frame);
      if (m.ok) again.push(m.message.payload);
    });
    expect(again).toHaveLength(1);
    const join = again[0]!;
    expect(join.type === "join" && join.sessionToken).toBe("t");
  });
});
