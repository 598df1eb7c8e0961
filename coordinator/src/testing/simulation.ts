// Many headless workers and one coordinator in one process, on a simulated clock: frames go
// through the real codec and the real core, delivered one at a time from a queue (so no call
// stack grows with the run), and time moves only when nothing else is left to do. Used by the
// core's tests; nothing here is a stand-in for the code under test.
import { mnistShard } from "@pangea/shared/mnist";
import { Coordinator, type CoordinatorOptions } from "../core/coordinator.ts";
import { runEvaluation } from "../core/evaluation.ts";
import { MemoryStore } from "../core/memory-store.ts";
import type { Clock, Peer, Store } from "../core/ports.ts";
import {
  AWAIT_FRAME_MS,
  emptyPeerStats,
  PeerFetchError,
  type PeerNetwork,
  type PeerStats,
} from "@pangea/shared/client";
import { HeadlessWorker, type HeadlessWorkerOptions } from "../worker/headless-worker.ts";

/**
 * MNIST through its JSON imports, which load in Node and in workerd alike; evaluations run at
 * once, inside the event that made them due, so that a simulated run is deterministic.
 */
const SIMULATED: CoordinatorOptions = { datasets: { mnist: mnistShard }, evaluator: runEvaluation };

export class SimulatedClock implements Clock {
  constructor(public t = 1_700_000_000_000) {}
  now(): number {
    return this.t;
  }
}

interface Delivery {
  to: "coordinator" | HeadlessWorker;
  from: SimulatedPeer;
  frame: Uint8Array;
}

class SimulatedPeer implements Peer {
  open = true;
  worker!: HeadlessWorker;
  constructor(private readonly sim: Simulation) {}
  send(frame: Uint8Array): void {
    if (this.open) this.sim.queue.push({ to: this.worker, from: this, frame: frame.slice() });
  }
  close(): void {
    this.open = false;
  }
  bufferedAmount(): number {
    return 0;
  }
}

export class Simulation {
  readonly clock = new SimulatedClock();
  readonly store: Store;
  coordinator: Coordinator;
  readonly queue: Delivery[] = [];
  private timers: Array<{ at: number; fn: () => void }> = [];
  readonly workers = new Map<HeadlessWorker, SimulatedPeer>();
  /** Simulated milliseconds each lease takes a worker (its compute time). */
  computeMs = 50;
  /** The simulated peer network's members, by session id (see addWorker's `peer`). */
  readonly peerNetworks = new Map<string, SimulatedPeers>();

  constructor(
    store: Store = new MemoryStore(),
    /** Beyond MNIST and inline evaluation: more datasets, platform limits. */
    readonly options: CoordinatorOptions = {},
  ) {
    this.store = store;
    this.coordinator = new Coordinator(store, this.clock, this.coordinatorOptions());
  }

  private coordinatorOptions(): CoordinatorOptions {
    const datasets = { ...SIMULATED.datasets, ...this.options.datasets };
    return { ...SIMULATED, ...this.options, datasets };
  }

  /**
   * `peer`: the worker fetches and serves parameter frames through the simulated peer network
   * (SimulatedPeers), behaving as told when it serves.
   */
  addWorker(options: HeadlessWorkerOptions & { peer?: PeerBehaviour } = {}): HeadlessWorker {
    const peer = new SimulatedPeer(this);
    let worker!: HeadlessWorker;
    const behaviour = options.peer;
    worker = new HeadlessWorker({
      ...options,
      ...(behaviour
        ? {
            peers: () => new SimulatedPeers(this, () => worker.sessionId, behaviour),
          }
        : {}),
      schedule: (fn, ms) => this.timers.push({ at: this.clock.t + ms, fn }),
      now: () => this.clock.t,
      // The shard a run serves over HTTP, handed over in process (and checked by its hash).
      loadShard:
        options.loadShard ??
        ((source) => {
          for (const run of this.coordinator.runs.values())
            if (run.data.sha256 === source.sha256) return run.data.bytes;
          throw new Error(`no run serves ${source.name}`);
        }),
    });
    peer.worker = worker;
    this.workers.set(worker, peer);
    this.coordinator.connect(peer);
    worker.connect((frame) => {
      if (peer.open) this.queue.push({ to: "coordinator", from: peer, frame });
    });
    return worker;
  }

  /** The worker's connection drops (a closed tab): no leave message, just gone. */
  dropWorker(worker: HeadlessWorker): void {
    const peer = this.workers.get(worker)!;
    peer.open = false;
    worker.disconnect();
    this.workers.delete(worker);
    this.coordinator.disconnect(peer);
  }

  /** Replaces the coordinator with a new one over the same Store (a restart). */
  restart(): void {
    this.queue.length = 0;
    this.coordinator = new Coordinator(this.store, this.clock, this.coordinatorOptions());
  }

  /**
   * Delivers frames and advances time until `done()` or `maxSteps` deliveries. Worker frames
   * that carry an update arrive `computeMs` after the lease, so time moves as training would.
   */
  runUntil(done: () => boolean, maxSteps = 1_000_000): boolean {
    for (let step = 0; step < maxSteps; step++) {
      if (done()) return true;
      if (!this.deliver()) this.advance();
    }
    return done();
  }

  /**
   * runUntil for workers whose steps take promises (peer fetches): before the clock moves, the
   * microtasks those left behind run, so a simulated run stays deterministic.
   */
  async runUntilSettled(done: () => boolean, maxSteps = 1_000_000): Promise<boolean> {
    for (let step = 0; step < maxSteps; step++) {
      if (done()) return true;
      if (this.deliver()) continue;
      for (let i = 0; i < 20; i++) await null;
      if (this.queue.length === 0) this.advance();
    }
    return done();
  }

  /** Delivers the next frame in flight; false when there is none. */
  private deliver(): boolean {
    const d = this.queue.shift();
    if (!d) return false;
    this.clock.t += 1;
    if (d.to === "coordinator") {
      if (d.from.open) this.coordinator.receive(d.from, d.frame);
    } else if (d.from.open) {
      d.to.receive(d.frame);
    }
    return true;
  }

  /** Nothing in flight: moves the clock to the next timer (or a compute time later), fires
   * every timer that is due by then, and ticks. */
  private advance(): void {
    this.timers.sort((a, b) => a.at - b.at);
    this.clock.t = Math.max(this.clock.t + this.computeMs, this.timers[0]?.at ?? 0);
    const due = this.timers.filter((t) => t.at <= this.clock.t);
    this.timers = this.timers.filter((t) => t.at > this.clock.t);
    for (const t of due) t.fn();
    this.coordinator.tick();
  }

  /** Runs `fn` `ms` simulated milliseconds from now. */
  later(fn: () => void, ms: number): void {
    this.timers.push({ at: this.clock.t + ms, fn });
  }
}

/**
 * How a simulated peer serves: honestly, with a flipped byte, not at all (a stalled tab), or,
 * "twoFaced", parts of its declared update with a changed value to every other asker (different
 * bytes to the two owners of a part; its parameter frames are honest).
 */
export type PeerBehaviour = "honest" | "liar" | "silent" | "twoFaced";

/**
 * The peer network between a simulation's workers, in process: what WebRtcPeers does over data
 * channels (peers.ts), minus the channels. A fetch answers after a simulated millisecond from the
 * named worker's kept frames, as that worker's behaviour says.
 */
export class SimulatedPeers implements PeerNetwork {
  private readonly frames = new Map<number, Uint8Array>();
  private readonly updates = new Map<number, Uint8Array>();
  private readonly awaiting = new Set<{
    version: number;
    answer: (frame: Uint8Array | undefined) => void;
  }>();
  private readonly counts = emptyPeerStats();
  private partsServed = 0;
  constructor(
    private readonly sim: Simulation,
    private readonly id: () => string,
    readonly behaviour: PeerBehaviour,
  ) {}
  configure(): void {}
  fetch(peer: string, version: number, timeoutMs: number): Promise<Uint8Array> {
    this.sim.peerNetworks.set(this.id(), this);
    return new Promise((resolve, reject) => {
      const from = this.sim.peerNetworks.get(peer);
      const answer = (frame: Uint8Array | undefined) => {
        if (!frame) {
          reject(new PeerFetchError("missing", `${peer} lacks ${version}`));
          return;
        }
        this.sim.later(() => {
          this.counts.bytesIn += frame.byteLength;
          this.counts.framesFetched++;
          resolve(frame);
        }, 1);
      };
      if (!from) reject(new PeerFetchError("unreachable", `no route to ${peer}`));
      else if (from.behaviour === "silent")
        this.sim.later(
          () => reject(new PeerFetchError("timeout", `${peer} sent nothing`)),
          timeoutMs,
        );
      else from.frameFor(version, answer);
    });
  }
  /** A frame to a peer that asks, or (as WebRtcPeers does) the wait for a newer one. */
  private frameFor(version: number, answer: (frame: Uint8Array | undefined) => void): void {
    if ([...this.frames.keys()].some((v) => v >= version)) {
      answer(this.serve(version));
      return;
    }
    const waiting = { version, answer };
    this.awaiting.add(waiting);
    this.sim.later(() => {
      if (this.awaiting.delete(waiting)) answer(undefined);
    }, AWAIT_FRAME_MS);
  }
  fetchPart(
    peer: string,
    leaseId: number,
    start: number,
    end: number,
    timeoutMs: number,
  ): Promise<Uint8Array> {
    this.sim.peerNetworks.set(this.id(), this);
    return new Promise((resolve, reject) => {
      const from = this.sim.peerNetworks.get(peer);
      const bytes = from?.servePart(leaseId, start, end);
      if (!from) reject(new PeerFetchError("unreachable", `no route to ${peer}`));
      else if (from.behaviour === "silent")
        this.sim.later(
          () => reject(new PeerFetchError("timeout", `${peer} sent nothing`)),
          timeoutMs,
        );
      else if (!bytes) reject(new PeerFetchError("missing", `${peer} lacks update ${leaseId}`));
      else
        this.sim.later(() => {
          this.counts.bytesIn += bytes.byteLength;
          resolve(bytes);
        }, 1);
    });
  }
  share(leaseId: number, update: Uint8Array): void {
    this.sim.peerNetworks.set(this.id(), this);
    this.updates.set(leaseId, update);
  }
  unshare(leaseId: number): void {
    this.updates.delete(leaseId);
  }
  private servePart(leaseId: number, start: number, end: number): Uint8Array | undefined {
    const update = this.updates.get(leaseId);
    if (!update || end > update.byteLength || start >= end) return undefined;
    this.counts.bytesOut += end - start;
    const bytes = update.slice(start, end);
    if (this.behaviour === "twoFaced" && this.partsServed++ % 2 === 1) bytes[0]! ^= 0x40;
    return bytes;
  }
  offer(version: number, frame: Uint8Array): void {
    this.sim.peerNetworks.set(this.id(), this);
    this.frames.set(version, frame);
    for (const v of this.frames.keys()) if (v < version - 1) this.frames.delete(v);
    for (const w of [...this.awaiting])
      if (w.version <= version) {
        this.awaiting.delete(w);
        w.answer(this.serve(w.version));
      }
  }
  private serve(version: number): Uint8Array | undefined {
    const frame = this.frames.get(version);
    if (!frame) return undefined;
    this.counts.framesServed++;
    this.counts.bytesOut += frame.byteLength;
    if (this.behaviour !== "liar") return frame;
    const bad = frame.slice();
    bad[bad.length - 9]! ^= 0x40;
    return bad;
  }
  signal(): void {}
  stats(): PeerStats {
    return { ...this.counts };
  }
  close(): void {
    this.sim.peerNetworks.delete(this.id());
  }
}
