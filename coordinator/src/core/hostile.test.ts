// A hostile stranger with well-formed frames from our own codec: claims it did not earn, many
// sessions from one socket, sockets that vanish, and the signal relay as a pipe. Each attack is
// repeated here and its outcome asserted; the suite also runs inside workerd.
import {
  decodeMessage,
  encodeMessage,
  type GradientUpdate,
  mlpSpec,
  type Payload,
  PROTOCOL_VERSION,
} from "@pangea/shared";
import { describe, expect, it } from "vitest";
import { SimulatedClock } from "../testing/simulation.ts";
import { withStore } from "../testing/with-store.ts";
import { DEFAULT_ADMISSION, MAX_SIGNAL_BYTES, SIGNAL_BURST } from "./admission.ts";
import { Coordinator, FORGET_AFTER_MS, HEARTBEAT_MS, JOIN_TIMEOUT_MS } from "./coordinator.ts";
import type { Peer, Store } from "./ports.ts";

const model = mlpSpec([16, 24, 4], { seed: 3 });

/** A socket the test drives by hand: it sends frames and keeps every reply, decoded. */
class RawClient implements Peer {
  readonly replies: Payload[] = [];
  bytesIn = 0;
  bytesOut = 0;
  closed: number | undefined;
  private count = 0;
  constructor(
    private readonly coordinator: Coordinator,
    readonly address = "203.0.113.7",
  ) {
    coordinator.connect(this);
  }
  send(frame: Uint8Array): void {
    this.bytesIn += frame.byteLength;
    const d = decodeMessage(frame);
    if (!d.ok) throw new Error(d.error.message);
    this.replies.push(d.message.payload);
  }
  close(code: number): void {
    this.closed = code;
  }
  bufferedAmount(): number {
    return 0;
  }
  post(payload: Payload, recipient = "coordinator"): string {
    const messageId = `m${++this.count}`;
    const frame = encodeMessage({ messageId, sender: "", recipient, timestamp: 0, payload });
    this.bytesOut += frame.byteLength;
    this.coordinator.receive(this, frame);
    return messageId;
  }
  join(runId: string, sessionToken = ""): string {
    return this.post({
      type: "join",
      runId,
      sessionToken,
      client: { kind: "headless", adapter: "", softwareFallback: false, userAgent: "hostile" },
      encodings: ["fp32"],
      protocolVersion: PROTOCOL_VERSION,
    });
  }
  last<T extends Payload["type"]>(type: T): Extract<Payload, { type: T }> | undefined {
    return this.replies.findLast((p) => p.type === type) as Extract<Payload, { type: T }>;
  }
  errors(): string[] {
    return this.replies.flatMap((p) => (p.type === "error" ? [p.code] : []));
  }
}

function setup(store: Store, admission = {}) {
  const clock = new SimulatedClock();
  const coordinator = new Coordinator(store, clock, { admission });
  const run = coordinator.createRun({
    name: "target",
    model,
    dataset: "blobs",
    batchSize: 32,
    strategy: { kind: "asynchronous", maxStaleness: 4, buffer: 1 },
  });
  return { clock, coordinator, run };
}

/** An update that is honest in every respect but the ones `over` changes. */
function updateFor(
  lease: Extract<Payload, { type: "lease" }>,
  coordinator: Coordinator,
  runId: string,
  over: Partial<GradientUpdate> = {},
): Payload {
  const run = coordinator.runs.get(runId)!;
  return {
    type: "gradientUpdate",
    gradientId: "g",
    gradients: run.layout.slots.map((s) => ({
      shape: s.shape,
      dtype: "float32",
      name: s.name,
      data: new Float32Array(s.size).fill(1e-3),
    })),
    loss: 1,
    timestamp: 0,
    nodeId: "",
    batchId: lease.batch.batchId,
    leaseId: lease.leaseId,
    baseVersion: lease.baseVersion,
    sampleCount: lease.batch.offsets!.length,
    encoding: "fp32",
    kind: "gradient",
    innerSteps: 1,
    ...over,
  };
}

describe("a hostile client", () => {
  it("cannot weigh, count or credit samples its lease did not hand out", () =>
    withStore((store) => {
      const { coordinator, run } = setup(store);
      const c = new RawClient(coordinator);
      c.join(run.id);
      for (const [claim, code] of [
        [1e9, "claimMismatch"],
        [-5, "claimMismatch"],
        [0, "claimMismatch"],
      ] as const) {
        c.post({ type: "leaseRequest", maxBatches: 1 });
        const lease = c.last("lease")!;
        c.post(updateFor(lease, coordinator, run.id, { sampleCount: claim }));
        expect(c.errors().at(-1)).toBe(code);
      }
      c.post({ type: "leaseRequest", maxBatches: 1 });
      const lease = c.last("lease")!;
      c.post(updateFor(lease, coordinator, run.id, { innerSteps: 64 }));
      expect(c.errors().at(-1)).toBe("claimMismatch");
      expect(run.record.counters.updatesRefused).toEqual({ claimMismatch: 4 });
      expect(run.record.counters.samples).toBe(0);
      expect(run.record.version).toBe(0);
      // The session is a stranger now: claims that disagree are strikes.
      expect(run.sessions.get(c.last("welcome")!.sessionId)!.strikes).toBe(4);

      // An honest update counts the lease's samples, whatever else it says.
      const honest = new RawClient(coordinator, "198.51.100.1");
      honest.join(run.id);
      honest.post({ type: "leaseRequest", maxBatches: 1 });
      const l = honest.last("lease")!;
      honest.post(updateFor(l, coordinator, run.id, { loss: 0.5 }));
      expect(honest.last("ack")).toBeDefined();
      expect(run.record.version).toBe(1);
      expect(run.record.counters.samples).toBe(l.batch.offsets!.length);
    }));

  it("speaks for one session per connection, and a join costs less than it sends back", () =>
    withStore((store) => {
      const { coordinator, run } = setup(store);
      const c = new RawClient(coordinator);
      for (let i = 0; i < 3000; i++) c.join(run.id);
      const welcomes = c.replies.filter((p) => p.type === "welcome");
      expect(welcomes).toHaveLength(1);
      expect(c.errors()).toHaveLength(2999);
      expect(new Set(c.errors())).toEqual(new Set(["alreadyJoined"]));
      expect(run.sessions.size).toBe(1);
      expect(coordinator.counters.joinsRefused).toBe(2999);
      // The welcome carries no parameters: the model comes with the first lease.
      expect(welcomes[0]!.type === "welcome" && welcomes[0]!.parameters).toEqual([]);
      // What came back, the one welcome included, is no more than what was sent.
      expect(c.bytesIn).toBeLessThanOrEqual(c.bytesOut);
      c.post({ type: "leaseRequest", maxBatches: 1 });
      const params = c.last("parameters");
      expect(params?.version).toBe(0);
      expect(params?.tensors.length).toBe(run.layout.slots.length);
    }));

  it("limits new and open sessions per address", () =>
    withStore((store) => {
      const { coordinator, run, clock } = setup(store);
      const { sessionsPerAddress, newSessionsPerMinute } = DEFAULT_ADMISSION;
      const sockets = Array.from({ length: 300 }, () => new RawClient(coordinator));
      for (const s of sockets) s.join(run.id);
      const welcomed = sockets.filter((s) => s.last("welcome"));
      expect(welcomed).toHaveLength(sessionsPerAddress);
      expect(run.sessions.size).toBe(sessionsPerAddress);
      const refused = sockets.filter((s) => !s.last("welcome"));
      for (const s of refused) expect(s.errors()).toEqual(["rateLimited"]);
      // Another address is not held back by this one.
      const neighbour = new RawClient(coordinator, "192.0.2.55");
      neighbour.join(run.id);
      expect(neighbour.last("welcome")).toBeDefined();

      // Closing sessions frees room, but the rate of new ones is bounded too.
      for (const s of welcomed) coordinator.disconnect(s);
      const burst = Array.from({ length: 100 }, () => new RawClient(coordinator));
      for (const s of burst) s.join(run.id);
      const started = sessionsPerAddress + burst.filter((s) => s.last("welcome")).length;
      expect(started).toBe(newSessionsPerMinute);
      // A resume by token is not a new session: a tab that reconnects is let back in.
      for (const s of burst) coordinator.disconnect(s);
      const token = welcomed[0]!.last("welcome")!.sessionToken;
      const back = new RawClient(coordinator);
      back.join(run.id, token);
      expect(back.last("welcome")?.sessionId).toBe(welcomed[0]!.last("welcome")!.sessionId);
      // A minute later the address may start sessions again.
      clock.t += 60_000;
      const later = new RawClient(coordinator);
      later.join(run.id);
      expect(later.last("welcome")).toBeDefined();
    }));

  it("leaves no ghost sessions: silent ones are disconnected, then forgotten, and come back by token", () =>
    withStore((store) => {
      const { coordinator, run, clock } = setup(store, {
        sessionsPerAddress: 10_000,
        newSessionsPerMinute: 10_000,
      });
      const sockets = Array.from({ length: 50 }, () => new RawClient(coordinator));
      for (const s of sockets) s.join(run.id);
      const idle = new RawClient(coordinator); // connects, never joins
      expect(3 * HEARTBEAT_MS).toBeGreaterThanOrEqual(JOIN_TIMEOUT_MS);
      expect([...run.sessions.values()].filter((s) => s.connected)).toHaveLength(50);
      // The sockets go silent (no close event ever comes, as with a dead network).
      clock.t += 3 * HEARTBEAT_MS + 1;
      coordinator.tick();
      expect([...run.sessions.values()].filter((s) => s.connected)).toHaveLength(0);
      for (const s of sockets) expect(s.closed).toBe(4000);
      expect(idle.closed).toBe(4002);
      clock.t += FORGET_AFTER_MS + 1;
      coordinator.tick();
      expect(run.sessions.size).toBe(0);
      expect(coordinator.sessionsInMemory).toBe(0);
      // The Store kept them: a token brings its session back, counts and all.
      const w = sockets[7]!.last("welcome")!;
      const back = new RawClient(coordinator);
      back.join(run.id, w.sessionToken);
      expect(back.last("welcome")?.sessionId).toBe(w.sessionId);
      expect(run.sessions.get(w.sessionId)?.connected).toBe(true);
    }));

  it("relays signals only between introduced sessions, within a size and a rate", () =>
    withStore((store) => {
      const { coordinator, run } = setup(store);
      const a = new RawClient(coordinator, "192.0.2.1");
      const b = new RawClient(coordinator, "192.0.2.2");
      a.join(run.id);
      b.join(run.id);
      const bId = b.last("welcome")!.sessionId;
      const small = new Uint8Array(1000);
      a.post({ type: "signal", payload: small }, bId);
      expect(a.errors().at(-1)).toBe("notIntroduced");
      expect(b.last("signal")).toBeUndefined();

      expect(coordinator.introduce(a.last("welcome")!.sessionId, bId)).toBe(true);
      a.post({ type: "signal", payload: small }, bId);
      expect(b.last("signal")?.payload.byteLength).toBe(1000);
      a.post({ type: "signal", payload: new Uint8Array(MAX_SIGNAL_BYTES + 1) }, bId);
      expect(a.errors().at(-1)).toBe("frameTooLarge");

      const before = b.replies.length;
      for (let i = 0; i < 2000; i++) a.post({ type: "signal", payload: small }, bId);
      const relayed = b.replies.length - before;
      expect(relayed).toBeLessThanOrEqual(SIGNAL_BURST);
      expect(a.errors().filter((e) => e === "rateLimited").length).toBe(2000 - relayed);
      expect(coordinator.counters.signalsRefused).toBe(2 + 2000 - relayed);
    }));
});
